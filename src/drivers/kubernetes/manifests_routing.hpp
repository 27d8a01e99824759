#pragma once
// How an environment's web workload is reached from outside the cluster, and what the
// static-site template becomes (parts of render_environment, kept apart from manifests.cpp).
//
// routing "ingress": an Ingress `web` of `ingress_class` for <env>.<domain>, the
// NetworkPolicy admitting `ingress_namespace`. routing "gateway": a Gateway API HTTPRoute
// `web` (gateway.networking.k8s.io/v1) attached to the shared Gateway `gateway_name` in
// `gateway_namespace` (listener `gateway_section` when set) for <env>.<domain>, the
// NetworkPolicy admitting the gateway's proxy pods' namespace (`gateway_proxy_namespace`,
// default `gateway_namespace`) instead of the ingress controller's.

#include <string>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/manifests.hpp"
#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

inline constexpr const char* k_routing_ingress = "ingress";
inline constexpr const char* k_routing_gateway = "gateway";
// On the Namespace of a web workload: the routing its last apply used ("ingress" when
// absent), so the apply that switches routing deletes the object of the other kind.
inline constexpr const char* k_annotation_routing = "idp.dev/routing";

// invalid_config when the routing settings cannot render: an unknown routing, or gateway
// routing without gateway_name and gateway_namespace.
Expected<void> check_routing(const RenderSettings& s);

// The object routing <env>.<domain> to Service `web` port 80: an Ingress or an HTTPRoute,
// named k_workload_name in the environment's namespace, carrying `labels`.
nlohmann::json render_route(const DeploySpec& spec, const RenderSettings& s, const nlohmann::json& labels);

// The namespace whose pods reach the environment's pods (besides the environment's own):
// the ingress controller's, or the gateway's proxies'.
std::string routing_source_namespace(const RenderSettings& s);

// "http://" or "https://": what the environment's URL starts with.
std::string routing_scheme(const RenderSettings& s);

// The apiVersion and kind of the route object `routing` renders ("ingress" or "gateway").
std::pair<const char*, const char*> route_kind(const std::string& routing);

// static-site: true when `spec` is the static-site template (component "static").
bool is_static_site(const DeploySpec& spec);
// static-site on Kubernetes serves either an image the app's CI builds with the built files
// in it (the config's container_image, {commit}/{branch} substituted, listening on port 80)
// or, without container_image, static.dir from the repository, built in the pod when the
// config has local.build (manifests_static.hpp). invalid_config for a missing static.dir or
// a local.build that is not a command line.
Expected<void> check_static_site(const DeploySpec& spec);
// What the config says that this runtime does not do itself (ApplyResult::warnings):
// static.spa with an image of the config's (its server must fall back to index.html).
std::vector<std::string> static_site_warnings(const DeploySpec& spec);
// The Deployment carries them (annotation idp.dev/warnings, a JSON array), so observe
// reports them as long as they hold, not only the apply that found them.
inline constexpr const char* k_annotation_warnings = "idp.dev/warnings";
// What the Gateway said of the route (route_verdict's problem), carried the same way by
// the Deployment under its own field manager (the apply of the workload leaves it be).
inline constexpr const char* k_annotation_route_problem = "idp.dev/route-problem";
inline constexpr const char* k_route_field_manager = "idp-route-status";
// The annotations' warnings, the route's problem last.
std::vector<std::string> deployment_warnings(const nlohmann::json& deployment);

// What the controller of the server's Gateway wrote in an HTTPRoute's status.parents for
// the route's current generation: `reported` once it has (Accepted set); `problem` when
// Accepted or ResolvedRefs is False ("" when the route is attached). Entries of other
// parents, and conditions of an older generation, are not read.
struct RouteVerdict {
  bool reported = false;
  std::string problem;
};
RouteVerdict route_verdict(const nlohmann::json& route, const RenderSettings& s);

} // namespace idp::drivers::kubernetes
