#pragma once
// What an environment becomes on Kubernetes: the manifests of its namespace (Namespace,
// ResourceQuota, LimitRange, NetworkPolicy, ServiceAccount, Secret) and of its template's
// workload. Pure functions of the spec and settings: no cluster, no I/O (idp render and
// the schema tests use them as the driver does).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/manifests_database.hpp"
#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

struct RenderSettings {
  std::string server_id = "idp"; // idp.dev/managed-by
  std::string domain = "preview.localhost";
  std::string ingress_class = "nginx";
  std::string ingress_namespace = "ingress-nginx";
  std::string tls_secret; // "" = no TLS on the Ingress
  // How the web workload is reached (manifests_routing.hpp): an Ingress (routing "ingress")
  // or a Gateway API HTTPRoute attached to a shared Gateway (routing "gateway").
  std::string routing = "ingress";
  std::string gateway_name;
  std::string gateway_namespace;
  std::string gateway_section;         // the Gateway listener (parentRef sectionName); "" = every listener
  std::string gateway_proxy_namespace; // the gateway's pods' namespace, allowed in; "" = gateway_namespace
  bool gateway_tls = true;             // the Gateway's listener terminates TLS: URLs are https://
  int replicas = 1;
  // static-site without container_image (manifests_static.hpp): the web server serving the
  // built directory, and the image local.build runs in (in the pod, not on the server).
  std::string static_image = "nginx:1.27-alpine";
  std::string static_build_image = "node:20-alpine";
  DatabaseSettings database; // the "database" component (api-database)
  // Networks an untrusted environment's pods may reach besides DNS and their namespace
  // (server config forks.egress_cidrs).
  std::vector<std::string> untrusted_egress_cidrs;
};

// Labels every object of the environment carries (the orphan sweep selects on them).
inline constexpr const char* k_label_environment = "idp.dev/environment";
inline constexpr const char* k_label_owner = "idp.dev/owner";
inline constexpr const char* k_label_managed_by = "idp.dev/managed-by";
inline constexpr const char* k_annotation_expires_at = "idp.dev/expires-at";
// The Secret with the config's variables: `app-env` in Argo CD mode (the repository's
// manifests name it); in direct mode `app-env-<hash of its data>`, a new one for every
// change, so that a pod template keeps the variables it was rolled out with (a rollback
// to it brings them back, env_secret_name) and the driver prunes the unused ones.
inline constexpr const char* k_env_secret = "app-env";
// An object's annotation `key` ("" when absent).
std::string annotation_of(const nlohmann::json& obj, const char* key);
// Whether a Secret of this name is one of the environment's variable Secrets.
bool is_env_secret_name(const std::string& name);
// The Secrets a pod template takes its variables from (envFrom secretRef).
std::vector<std::string> env_secrets_of(const nlohmann::json& pod_template);
// The workload's name (Deployment, Service, Ingress) in the environment's namespace.
inline constexpr const char* k_workload_name = "web";
// The scheduled-worker's CronJob.
inline constexpr const char* k_cronjob_name = "job";

struct SiteArchive;
// The objects to apply, in order (the Namespace first). `secret_values` are the resolved
// values of the config's `secrets:` (variable -> value), stored in the environment's
// Secret with `environment:` (k_env_secret). invalid_config for a template or component this runtime
// does not support yet, or a config value Kubernetes cannot take. `site`: the files of a
// static-site without container_image (manifests_static.hpp; required for one).
Expected<std::vector<nlohmann::json>> render_environment(const DeploySpec& spec, const RenderSettings& settings,
                                                         const std::map<std::string, std::string>& secret_values,
                                                         const SiteArchive* site = nullptr);

// The environment's namespace-level objects, the first six of render_environment:
// Namespace, ResourceQuota, LimitRange, NetworkPolicy, ServiceAccount and the Secret
// app-env (last). Any template: the workload is not among them (Argo CD mode takes it
// from the repository).
// `extra_pods`: room in the quota beyond the rolling update's (api-database: 2).
Expected<std::vector<nlohmann::json>> render_namespace_objects(const DeploySpec& spec, const RenderSettings& settings,
                                                               const std::map<std::string, std::string>& secret_values,
                                                               int extra_pods = 0);

// An EventBridge schedule (rate() or cron(), UTC) as a CronJob schedule (5 fields, run
// with timeZone Etc/UTC). invalid_config for what a CronJob cannot express exactly: L, W
// and # in the day fields, a year other than *, a rate that does not divide an hour (in
// minutes) or a day (in hours), or of more than one day.
Expected<std::string> cronjob_schedule(std::string_view expression);

// "<env>.<domain>"
std::string environment_host(const core::Environment& env, const std::string& domain);

// The config's image with {commit} and {branch} substituted (the branch made a valid image
// tag: characters other than [A-Za-z0-9_.-] become '-').
std::string image_for(const DeploySpec& spec);

// `value` as a valid label value: invalid characters become '_', at most 63, starting and
// ending alphanumeric ("" when nothing is left).
std::string label_value(const std::string& value);

} // namespace idp::drivers::kubernetes
