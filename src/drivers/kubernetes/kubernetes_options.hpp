#pragma once
// Settings of the Kubernetes driver, from DriverContext::options (the server config's
// `drivers.kubernetes` section: flat scalars; durations arrive as `<key>_ms` numbers).
// Unknown keys and wrong types are invalid_config naming the key.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

struct KubernetesOptions {
  std::string kubeconfig;  // "" = $KUBECONFIG, else ~/.kube/config
  std::string context;     // "" = the kubeconfig's current-context
  bool in_cluster = false; // the pod's service account instead of a kubeconfig
  // Value of the idp.dev/managed-by label: which idp server owns a namespace (the orphan
  // sweep and start() only touch namespaces with their own server id).
  std::string server_id = "idp";
  std::string domain; // hosts are <env>.<domain>; "" = the server's domain
  std::string ingress_class = "nginx";
  std::string ingress_namespace = "ingress-nginx"; // the only other namespace allowed in
  std::string tls_secret;                          // Ingress TLS secret name; "" = no TLS section
  // routing: "ingress" (an Ingress per environment) or "gateway" (a Gateway API HTTPRoute
  // attached to the Gateway gateway_name in gateway_namespace, both then required;
  // gateway_section picks its listener). The NetworkPolicy then admits
  // gateway_proxy_namespace (default gateway_namespace) instead of ingress_namespace;
  // gateway_tls says whether the listener serves https (the environments' URLs).
  std::string routing = "ingress";
  std::string gateway_name;
  std::string gateway_namespace;
  std::string gateway_section;
  std::string gateway_proxy_namespace;
  bool gateway_tls = true;
  int replicas = 1;
  // idp exec runs `kubectl exec` (the REST API's exec is a SPDY/WebSocket stream): this
  // program, looked up on PATH unless it is a path.
  std::string kubectl = "kubectl";
  // The "database" component (api-database): the StatefulSet's image, the volume's size and
  // class, and what runs PostgreSQL: auto (a CloudNativePG Cluster when the cluster serves
  // postgresql.cnpg.io/v1, else a StatefulSet) | statefulset | cloudnative-pg.
  std::string postgres_image = "postgres:15.10-alpine";
  std::string postgres_storage = "1Gi";
  std::string storage_class; // "" = the cluster's default StorageClass
  std::string database = "auto";
  std::string cnpg_namespace = "cnpg-system"; // the CloudNativePG operator's namespace
  // static-site without container_image (manifests_static.hpp): the web server's image, the
  // image local.build runs in (in the pod), and the most the site's files may weigh
  // (compressed; they travel in ConfigMaps of 768 KiB each).
  std::string static_image = "nginx:1.27-alpine";
  std::string static_build_image = "node:20-alpine";
  int64_t static_max_bytes = 8 * 1024 * 1024;
  int64_t rollout_timeout_ms = 5 * 60000; // a deploy's rollout must complete within this
  int64_t destroy_timeout_ms = 5 * 60000; // a namespace must be gone within this
  // routing gateway: how long apply waits for the Gateway's controller to report on the
  // HTTPRoute (status.parents) before it warns that none did.
  int64_t route_timeout_ms = 30000;
  int64_t poll_interval_ms = 1000;
  int64_t request_timeout_ms = 30000;
  // observe answers from one watch of this server's Deployments (no request per idle
  // environment); false: every observe reads the namespace and the Deployment.
  bool watch = true;
  int64_t watch_timeout_ms = 5 * 60000; // a watch is renewed this often (the server's timeoutSeconds)

  // Argo CD mode (argocd.hpp): idp applies the namespace-level objects and an Argo CD
  // Application; Argo CD syncs the repository's `argocd_path` at the deployed commit.
  enum class Mode { direct, argocd };
  Mode mode = Mode::direct;
  std::string argocd_namespace = "argocd"; // where the Applications live (Argo CD's namespace)
  std::string argocd_project = "default";  // the AppProject of the Applications
  std::string argocd_path = "k8s";         // the manifests' directory in the repository
  std::string argocd_repo_url;             // "" = the environment's repository

  // Parses `options` (an object; null means every default). invalid_config naming the key.
  static Expected<KubernetesOptions> parse(const nlohmann::json& options);
  // The rules between options (`options` as parsed into *this): routing gateway needs
  // gateway_name and gateway_namespace; gateway_* options need routing gateway; tls_secret
  // is the Ingress's. Kept out of parse because the server config checks each option alone
  // to say which line is wrong, and a rule between options would blame a line that is fine.
  Expected<void> check_combinations(const nlohmann::json& options) const;
};

} // namespace idp::drivers::kubernetes
