#include "drivers/kubernetes/kubernetes_options.hpp"

#include <functional>
#include <map>
#include <regex>

#include "util/git.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using Setter = std::function<std::string(const nlohmann::json&, KubernetesOptions&)>; // "" = ok, else what was expected

Setter string_opt(std::string KubernetesOptions::*field) {
  return [field](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    if (!v.is_string()) {
      return "expected a string";
    }
    o.*field = v.get<std::string>();
    return "";
  };
}

// A Kubernetes name (RFC 1123 label): namespaces, classes, secrets, label values here.
Setter name_opt(std::string KubernetesOptions::*field, bool allow_empty) {
  return [field, allow_empty](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    static const std::regex k_re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
    if (!v.is_string() || (v.get<std::string>().empty() && !allow_empty) ||
        (!v.get<std::string>().empty() &&
         (v.get<std::string>().size() > 63 || !std::regex_match(v.get<std::string>(), k_re)))) {
      return "expected a Kubernetes name (lowercase letters, digits and '-', at most 63)";
    }
    o.*field = v.get<std::string>();
    return "";
  };
}

// A Gateway listener name (Gateway API SectionName: a DNS subdomain, at most 253).
Setter section_opt(std::string KubernetesOptions::*field) {
  return [field](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    static const std::regex k_re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
    if (!v.is_string() || v.get<std::string>().size() > 253 || !std::regex_match(v.get<std::string>(), k_re)) {
      return "expected a listener name (lowercase letters, digits, '-' and '.')";
    }
    o.*field = v.get<std::string>();
    return "";
  };
}

Setter bool_opt(bool KubernetesOptions::*field) {
  return [field](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    if (!v.is_boolean()) {
      return "expected true or false";
    }
    o.*field = v.get<bool>();
    return "";
  };
}

Setter image_opt(std::string KubernetesOptions::*field, std::string example) {
  return [field, example](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    if (!v.is_string() || v.get<std::string>().empty() ||
        v.get<std::string>().find_first_of(" \t\n") != std::string::npos) {
      return "expected an image reference like " + example;
    }
    o.*field = v.get<std::string>();
    return "";
  };
}

Setter ms_opt(int64_t KubernetesOptions::*field, int64_t min) {
  return [field, min](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
    if (!v.is_number_integer() || v.get<int64_t>() < min) {
      return "expected a duration (or milliseconds) of at least " + std::to_string(min) + "ms";
    }
    o.*field = v.get<int64_t>();
    return "";
  };
}

const std::map<std::string, Setter>& table() {
  static const std::map<std::string, Setter> k_table = {
      {"kubeconfig", string_opt(&KubernetesOptions::kubeconfig)},
      {"context", string_opt(&KubernetesOptions::context)},
      {"kubectl",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_string() || v.get<std::string>().empty()) {
           return "expected a program name or path, like kubectl or /usr/local/bin/kubectl";
         }
         o.kubectl = v.get<std::string>();
         return "";
       }},
      {"in_cluster",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_boolean()) {
           return "expected true or false";
         }
         o.in_cluster = v.get<bool>();
         return "";
       }},
      {"server_id", name_opt(&KubernetesOptions::server_id, false)},
      {"domain", string_opt(&KubernetesOptions::domain)},
      {"ingress_class", name_opt(&KubernetesOptions::ingress_class, false)},
      {"ingress_namespace", name_opt(&KubernetesOptions::ingress_namespace, false)},
      {"tls_secret", name_opt(&KubernetesOptions::tls_secret, true)},
      {"routing",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_string() || (v != "ingress" && v != "gateway")) {
           return "expected ingress or gateway";
         }
         o.routing = v.get<std::string>();
         return "";
       }},
      {"gateway_name", name_opt(&KubernetesOptions::gateway_name, false)},
      {"gateway_namespace", name_opt(&KubernetesOptions::gateway_namespace, false)},
      {"gateway_section", section_opt(&KubernetesOptions::gateway_section)},
      {"gateway_proxy_namespace", name_opt(&KubernetesOptions::gateway_proxy_namespace, false)},
      {"gateway_tls", bool_opt(&KubernetesOptions::gateway_tls)},
      {"replicas",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > 10) {
           return "expected a number from 1 to 10";
         }
         o.replicas = v.get<int>();
         return "";
       }},
      {"postgres_image", image_opt(&KubernetesOptions::postgres_image, "postgres:15.10-alpine")},
      {"static_image", image_opt(&KubernetesOptions::static_image, "nginx:1.27-alpine")},
      {"static_build_image", image_opt(&KubernetesOptions::static_build_image, "node:20-alpine")},
      {"static_max_bytes",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 1024 || v.get<int64_t>() > 64 * 1024 * 1024) {
           return "expected a number of bytes from 1024 to 67108864 (64 MiB)";
         }
         o.static_max_bytes = v.get<int64_t>();
         return "";
       }},
      {"postgres_storage",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         static const std::regex k_re("^[0-9]+(Ki|Mi|Gi|Ti|Pi|Ei)$");
         if (!v.is_string() || !std::regex_match(v.get<std::string>(), k_re)) {
           return "expected a size like 1Gi or 500Mi";
         }
         o.postgres_storage = v.get<std::string>();
         return "";
       }},
      {"storage_class",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         static const std::regex k_re("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$");
         if (!v.is_string() || (!v.get<std::string>().empty() &&
                                (v.get<std::string>().size() > 253 || !std::regex_match(v.get<std::string>(), k_re)))) {
           return "expected a StorageClass name (lowercase letters, digits, '-' and '.')";
         }
         o.storage_class = v.get<std::string>();
         return "";
       }},
      {"database",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_string() || (v != "auto" && v != "statefulset" && v != "cloudnative-pg")) {
           return "expected auto, statefulset or cloudnative-pg";
         }
         o.database = v.get<std::string>();
         return "";
       }},
      {"cnpg_namespace", name_opt(&KubernetesOptions::cnpg_namespace, false)},
      {"rollout_timeout_ms", ms_opt(&KubernetesOptions::rollout_timeout_ms, 1000)},
      {"destroy_timeout_ms", ms_opt(&KubernetesOptions::destroy_timeout_ms, 1000)},
      {"route_timeout_ms", ms_opt(&KubernetesOptions::route_timeout_ms, 1)},
      {"poll_interval_ms", ms_opt(&KubernetesOptions::poll_interval_ms, 1)},
      {"request_timeout_ms", ms_opt(&KubernetesOptions::request_timeout_ms, 100)},
      {"watch_timeout_ms", ms_opt(&KubernetesOptions::watch_timeout_ms, 1000)},
      {"watch",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (!v.is_boolean()) {
           return "expected true or false";
         }
         o.watch = v.get<bool>();
         return "";
       }},
      // Argo CD mode.
      {"mode",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         if (v == "direct" || v == "argocd") {
           o.mode = v == "argocd" ? KubernetesOptions::Mode::argocd : KubernetesOptions::Mode::direct;
           return "";
         }
         return "expected direct or argocd";
       }},
      {"argocd_namespace", name_opt(&KubernetesOptions::argocd_namespace, false)},
      {"argocd_project", name_opt(&KubernetesOptions::argocd_project, false)},
      {"argocd_path",
       [](const nlohmann::json& v, KubernetesOptions& o) -> std::string {
         std::string p = v.is_string() ? v.get<std::string>() : "";
         bool dotdot = false;
         for (const auto& part : util::split(p, '/')) {
           dotdot = dotdot || part == "..";
         }
         if (p.empty() || p.front() == '/' || dotdot) {
           return "expected a relative directory of the repository (no leading '/', no '..')";
         }
         o.argocd_path = p;
         return "";
       }},
      {"argocd_repo_url", string_opt(&KubernetesOptions::argocd_repo_url)},
  };
  return k_table;
}

} // namespace

Expected<void> KubernetesOptions::check_combinations(const nlohmann::json& options) const {
  const KubernetesOptions& o = *this;
  if (o.routing == "gateway" && (o.gateway_name.empty() || o.gateway_namespace.empty())) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: routing gateway needs gateway_name and gateway_namespace (the Gateway "
                      "the environments' HTTPRoutes attach to)" +
                          std::string(o.gateway_name.empty() ? "; gateway_name is missing" : "") +
                          (o.gateway_namespace.empty() ? "; gateway_namespace is missing" : ""));
  }
  if (o.routing != "gateway") {
    for (const char* key :
         {"gateway_name", "gateway_namespace", "gateway_section", "gateway_proxy_namespace", "gateway_tls"}) {
      if (options.is_object() && options.contains(key)) {
        return make_error(ErrorCode::invalid_config, "drivers.kubernetes: option " + util::quote(key) +
                                                         " is for routing gateway; set routing: gateway or drop it");
      }
    }
  }
  if (o.routing == "gateway" && (options.is_object() && options.contains("tls_secret"))) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: tls_secret is the Ingress's TLS secret; with routing gateway the "
                      "Gateway's listener terminates TLS (gateway_tls says whether it does)");
  }
  return {};
}

Expected<KubernetesOptions> KubernetesOptions::parse(const nlohmann::json& options) {
  KubernetesOptions o;
  if (options.is_null()) {
    return o;
  }
  if (!options.is_object()) {
    return make_error(ErrorCode::invalid_config, "drivers.kubernetes: expected a mapping of options");
  }
  std::vector<std::string> known;
  for (const auto& [k, s] : table()) {
    known.push_back(k);
  }
  for (const auto& [k, v] : options.items()) {
    auto it = table().find(k);
    if (it == table().end()) {
      std::string hint = util::closest_match(k, known);
      return make_error(ErrorCode::invalid_config,
                        "drivers.kubernetes: unknown option " + util::quote(k) +
                            (hint.empty() ? "" : "; did you mean " + util::quote(hint) + "?"));
    }
    std::string problem = it->second(v, o);
    if (!problem.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "drivers.kubernetes: option " + util::quote(k) + ": " + problem + ", got " + v.dump());
    }
  }
  if (o.in_cluster && (!o.kubeconfig.empty() || !o.context.empty())) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: in_cluster uses the pod's service account; drop kubeconfig and context");
  }
  if (util::url_has_credentials(o.argocd_repo_url)) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: option \"argocd_repo_url\": expected a URL without credentials (an "
                      "Application is readable by everyone who can read Argo CD's namespace; give Argo CD the "
                      "credential as a repository secret)");
  }
  return o;
}

} // namespace idp::drivers::kubernetes
