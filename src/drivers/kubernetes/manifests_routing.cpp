#include "drivers/kubernetes/manifests_routing.hpp"

#include <algorithm>

#include "core/command_line.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

json route_object(const char* api_version, const char* kind, const DeploySpec& spec, const json& labels) {
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"metadata", {{"name", k_workload_name}, {"namespace", spec.env.name}, {"labels", labels}}}};
}

json ingress(const DeploySpec& spec, const RenderSettings& s, const json& labels) {
  std::string host = environment_host(spec.env, s.domain);
  auto [api_version, kind] = route_kind(k_routing_ingress);
  json ing = route_object(api_version, kind, spec, labels);
  ing["spec"] = {{"ingressClassName", s.ingress_class},
                 {"rules",
                  {{{"host", host},
                    {"http",
                     {{"paths",
                       {{{"path", "/"},
                         {"pathType", "Prefix"},
                         {"backend", {{"service", {{"name", k_workload_name}, {"port", {{"name", "http"}}}}}}}}}}}}}}}};
  if (!s.tls_secret.empty()) {
    ing["spec"]["tls"] = {{{"hosts", {host}}, {"secretName", s.tls_secret}}};
  }
  return ing;
}

// An HTTPRoute in the environment's namespace attached to the shared Gateway (a
// cross-namespace parentRef: the Gateway's listener must allow routes from the
// environments' namespaces, docs/kubernetes.md). TLS is the listener's business.
json http_route(const DeploySpec& spec, const RenderSettings& s, const json& labels) {
  auto [api_version, kind] = route_kind(k_routing_gateway);
  json route = route_object(api_version, kind, spec, labels);
  json parent = {{"group", "gateway.networking.k8s.io"},
                 {"kind", "Gateway"},
                 {"name", s.gateway_name},
                 {"namespace", s.gateway_namespace}};
  if (!s.gateway_section.empty()) {
    parent["sectionName"] = s.gateway_section;
  }
  route["spec"] = {
      {"parentRefs", {parent}},
      {"hostnames", {environment_host(spec.env, s.domain)}},
      {"rules",
       {{{"matches", {{{"path", {{"type", "PathPrefix"}, {"value", "/"}}}}}},
         {"backendRefs", {{{"group", ""}, {"kind", "Service"}, {"name", k_workload_name}, {"port", 80}}}}}}}};
  return route;
}

} // namespace

Expected<void> check_routing(const RenderSettings& s) {
  if (s.routing == k_routing_ingress) {
    return {};
  }
  if (s.routing != k_routing_gateway) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: routing: expected ingress or gateway, got " + util::quote(s.routing));
  }
  if (s.gateway_name.empty() || s.gateway_namespace.empty()) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: routing gateway needs gateway_name and gateway_namespace (the Gateway "
                      "the environments' HTTPRoutes attach to)");
  }
  return {};
}

json render_route(const DeploySpec& spec, const RenderSettings& s, const json& labels) {
  return s.routing == k_routing_gateway ? http_route(spec, s, labels) : ingress(spec, s, labels);
}

std::string routing_source_namespace(const RenderSettings& s) {
  if (s.routing != k_routing_gateway) {
    return s.ingress_namespace;
  }
  return s.gateway_proxy_namespace.empty() ? s.gateway_namespace : s.gateway_proxy_namespace;
}

std::string routing_scheme(const RenderSettings& s) {
  bool tls = s.routing == k_routing_gateway ? s.gateway_tls : !s.tls_secret.empty();
  return tls ? "https://" : "http://";
}

std::pair<const char*, const char*> route_kind(const std::string& routing) {
  if (routing == k_routing_gateway) {
    return {"gateway.networking.k8s.io/v1", "HTTPRoute"};
  }
  return {"networking.k8s.io/v1", "Ingress"};
}

bool is_static_site(const DeploySpec& spec) {
  return std::find(spec.components.begin(), spec.components.end(), "static") != spec.components.end();
}

Expected<void> check_static_site(const DeploySpec& spec) {
  if (spec.config.has_key("container_image")) {
    return {}; // the image serves the site
  }
  if (spec.config.static_site.dir.empty()) {
    return make_error(ErrorCode::invalid_config,
                      "static.dir: the static-site template needs the directory to serve (e.g. dist)");
  }
  if (!spec.config.local.build.empty()) {
    if (auto argv = core::split_command_line(spec.config.local.build); !argv) {
      return make_error(ErrorCode::invalid_config, "local.build: " + argv.error().message);
    }
  }
  return {};
}

std::vector<std::string> static_site_warnings(const DeploySpec& spec) {
  std::vector<std::string> out;
  if (spec.config.static_site.spa && spec.config.has_key("container_image")) {
    out.push_back("static.spa is not applied by the kubernetes runtime to an image of yours: the web server in " +
                  util::quote(spec.config.container_image) + " must answer unknown paths with index.html itself");
  }
  return out;
}

std::vector<std::string> deployment_warnings(const json& deployment) {
  std::string text = annotation_of(deployment, k_annotation_warnings);
  json list = json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (list.is_array()) {
    for (const auto& w : list) {
      if (w.is_string()) {
        out.push_back(w.get<std::string>());
      }
    }
  }
  std::string route = annotation_of(deployment, k_annotation_route_problem);
  if (!route.empty()) {
    out.push_back(route);
  }
  return out;
}

RouteVerdict route_verdict(const json& route, const RenderSettings& s) {
  RouteVerdict v;
  const json& md = route.value("metadata", json::object());
  int64_t gen = md.value("generation", 0);
  std::string route_ns = md.value("namespace", "");
  std::string gateway = s.gateway_namespace + "/" + s.gateway_name;
  for (const auto& p : route.value("status", json::object()).value("parents", json::array())) {
    const json& ref = p.value("parentRef", json::object());
    if (ref.value("name", "") != s.gateway_name || ref.value("namespace", route_ns) != s.gateway_namespace ||
        (!s.gateway_section.empty() && ref.value("sectionName", "") != s.gateway_section)) {
      continue;
    }
    for (const auto& c : p.value("conditions", json::array())) {
      std::string type = c.value("type", "");
      if ((type != "Accepted" && type != "ResolvedRefs") || c.value("observedGeneration", gen) < gen) {
        continue;
      }
      v.reported = v.reported || type == "Accepted";
      if (c.value("status", "") == "False" && v.problem.empty()) {
        std::string message = c.value("message", "");
        v.problem = "Gateway " + gateway + (type == "Accepted" ? " did not accept" : " cannot resolve the backend of") +
                    " HTTPRoute " + md.value("name", "") + ": " + type + " is False (" + c.value("reason", "") + ")" +
                    (message.empty() ? "" : ": " + message);
      }
    }
  }
  return v;
}

} // namespace idp::drivers::kubernetes
