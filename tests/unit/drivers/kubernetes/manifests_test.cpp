// What an api-service environment becomes on Kubernetes (schemas: tests/kubernetes).

#include <gtest/gtest.h>

#include "drivers/kubernetes/manifests.hpp"
#include "drivers/kubernetes/manifests_routing.hpp"
#include "drivers/kubernetes/manifests_static.hpp"
#include "drivers/kubernetes/yaml_json.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"

namespace idp::drivers::kubernetes {
namespace {

using json = nlohmann::json;

json find(const std::vector<json>& objs, const std::string& kind) {
  for (const auto& o : objs) {
    if (o["kind"] == kind) {
      return o;
    }
  }
  ADD_FAILURE() << "no " << kind;
  return json::object();
}

TEST(KubernetesManifestsTest, TheNamespaceIsLabelledWithEnvironmentOwnerAndServerAndAnnotatedWithItsExpiry) {
  RenderSettings s;
  s.server_id = "idp-eu";
  auto objs = render_environment(testing::kube::sample_spec(), s, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_EQ((*objs)[0]["kind"], "Namespace") << "the namespace is applied first";
  json ns = find(*objs, "Namespace");
  EXPECT_EQ(ns["metadata"]["name"], "pr-42");
  EXPECT_EQ(ns["metadata"]["labels"]["idp.dev/environment"], "pr-42");
  EXPECT_EQ(ns["metadata"]["labels"]["idp.dev/managed-by"], "idp-eu");
  EXPECT_EQ(ns["metadata"]["labels"]["idp.dev/owner"], "alice_example.com") << "'@' is not allowed in a label value";
  EXPECT_EQ(ns["metadata"]["annotations"]["idp.dev/owner"], "alice@example.com");
  EXPECT_EQ(ns["metadata"]["annotations"]["idp.dev/expires-at"], "2026-01-02T00:00:00Z");
  for (const auto& o : *objs) {
    EXPECT_EQ(o["metadata"]["labels"]["idp.dev/environment"], "pr-42") << o["kind"];
    if (o["kind"] != "Namespace") {
      EXPECT_EQ(o["metadata"]["namespace"], "pr-42") << o["kind"];
    }
  }
}

TEST(KubernetesManifestsTest, QuotaLimitsPolicyAndServiceAccountComeFromTheConfig) {
  auto spec = testing::kube::sample_spec();
  spec.config.cpu = 512;
  spec.config.memory = 1024;
  RenderSettings s;
  s.ingress_namespace = "traefik";
  auto objs = render_environment(spec, s, {});
  ASSERT_TRUE(objs.has_value());
  json quota = find(*objs, "ResourceQuota");
  EXPECT_EQ(quota["spec"]["hard"]["limits.memory"], "2048Mi") << "room for the old and the new pod of a rollout";
  EXPECT_EQ(quota["spec"]["hard"]["limits.cpu"], "1000m");
  json limits = find(*objs, "LimitRange");
  EXPECT_EQ(limits["spec"]["limits"][0]["default"]["cpu"], "500m");
  EXPECT_EQ(limits["spec"]["limits"][0]["max"]["memory"], "1024Mi");
  json np = find(*objs, "NetworkPolicy");
  EXPECT_EQ(np["spec"]["podSelector"], json::object()) << "applies to every pod of the namespace";
  EXPECT_EQ(np["spec"]["policyTypes"], json::array({"Ingress"}));
  EXPECT_EQ(np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "traefik");
  json sa = find(*objs, "ServiceAccount");
  EXPECT_EQ(sa["automountServiceAccountToken"], false);
}

// A fork's pull request (the untrusted profile): egress only to the cluster's DNS and the
// namespace's own pods; every other environment keeps egress open.
TEST(KubernetesManifestsTest, AnUntrustedEnvironmentMayReachOnlyDnsAndItsOwnNamespace) {
  auto spec = testing::kube::sample_spec();
  spec.env.profile = "untrusted";
  auto objs = render_environment(spec, RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  json np = find(*objs, "NetworkPolicy");
  EXPECT_EQ(np["spec"]["policyTypes"], json::array({"Ingress", "Egress"}));
  ASSERT_EQ(np["spec"]["egress"].size(), 2u);
  const json& dns = np["spec"]["egress"][0];
  EXPECT_EQ(dns["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "kube-system");
  EXPECT_EQ(dns["to"][0]["podSelector"]["matchLabels"]["k8s-app"], "kube-dns");
  EXPECT_EQ(dns["ports"].size(), 2u);
  EXPECT_EQ(dns["ports"][0]["port"], 53);
  EXPECT_EQ(np["spec"]["egress"][1]["to"][0]["podSelector"], json::object());
  auto trusted = render_environment(testing::kube::sample_spec(), RenderSettings{}, {});
  ASSERT_TRUE(trusted.has_value());
  EXPECT_FALSE(find(*trusted, "NetworkPolicy")["spec"].contains("egress"));

  // forks.egress_cidrs: one more rule, to exactly those networks; a trusted environment's
  // policy is unchanged by it.
  RenderSettings with_cidrs;
  with_cidrs.untrusted_egress_cidrs = {"10.20.0.0/16", "2001:db8::/32"};
  objs = render_environment(spec, with_cidrs, {});
  ASSERT_TRUE(objs.has_value());
  np = find(*objs, "NetworkPolicy");
  ASSERT_EQ(np["spec"]["egress"].size(), 3u);
  EXPECT_EQ(np["spec"]["egress"][2], json::parse(R"({"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}},
                                                          {"ipBlock": {"cidr": "2001:db8::/32"}}]})"));
  trusted = render_environment(testing::kube::sample_spec(), with_cidrs, {});
  ASSERT_TRUE(trusted.has_value());
  EXPECT_FALSE(find(*trusted, "NetworkPolicy")["spec"].contains("egress"));
}

TEST(KubernetesManifestsTest, TheSecretHoldsEnvironmentAndResolvedSecrets) {
  auto spec = testing::kube::sample_spec();
  spec.config.secrets = {{"API_KEY", "api-key"}};
  auto objs = render_environment(spec, RenderSettings{}, {{"API_KEY", "s3cr3t"}});
  ASSERT_TRUE(objs.has_value());
  json secret = find(*objs, "Secret");
  EXPECT_EQ(secret["stringData"]["LOG_LEVEL"], "debug");
  EXPECT_EQ(secret["stringData"]["API_KEY"], "s3cr3t");
  json dep = find(*objs, "Deployment");
  std::string name = secret["metadata"]["name"];
  EXPECT_EQ(name.rfind("app-env-", 0), 0u) << name;
  EXPECT_EQ(dep["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"], name);
  EXPECT_EQ(env_secrets_of(dep["spec"]["template"]), std::vector<std::string>{name});
  // A changed secret is a new Secret (the old pod template keeps its variables for a
  // rollback) and changes the pod template, so the pods restart with it.
  auto other = render_environment(spec, RenderSettings{}, {{"API_KEY", "rotated"}});
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(find(*other, "Secret")["metadata"]["name"], name);
  EXPECT_NE(find(*other, "Deployment")["spec"]["template"], dep["spec"]["template"]);
  auto same = render_environment(spec, RenderSettings{}, {{"API_KEY", "s3cr3t"}});
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(find(*same, "Secret")["metadata"]["name"], name) << "named by its data alone";
}

TEST(KubernetesManifestsTest, TheDeploymentProbesTheHealthPathAndNeverDropsBelowItsReplicas) {
  auto objs = render_environment(testing::kube::sample_spec(), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  json dep = find(*objs, "Deployment");
  EXPECT_EQ(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
  json c = dep["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/healthz");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/healthz");
  EXPECT_EQ(c["ports"][0]["containerPort"], 8080);
  EXPECT_EQ(c["image"], "registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(dep["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
  EXPECT_EQ(dep["spec"]["selector"]["matchLabels"]["idp.dev/environment"], "pr-42");
  json ing = find(*objs, "Ingress");
  EXPECT_EQ(ing["spec"]["rules"][0]["host"], "pr-42.preview.localhost");
  EXPECT_EQ(ing["spec"]["ingressClassName"], "nginx");
  EXPECT_FALSE(ing["spec"].contains("tls"));
  json svc = find(*objs, "Service");
  EXPECT_EQ(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);
}

TEST(KubernetesManifestsTest, TheImageTakesCommitAndATagSafeBranch) {
  auto spec = testing::kube::sample_spec();
  spec.config.container_image = "ghcr.io/acme/shop:{branch}-{commit}";
  EXPECT_EQ(image_for(spec), "ghcr.io/acme/shop:feature-login-0123456789abcdef0123456789abcdef01234567");
}

TEST(KubernetesManifestsTest, EventBridgeSchedulesBecomeCronJobSchedules) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const auto& c : std::vector<Case>{{"rate(1 minute)", "* * * * *"},
                                         {"rate(15 minutes)", "*/15 * * * *"},
                                         {"rate(1 hour)", "0 * * * *"},
                                         {"rate(6 hours)", "0 */6 * * *"},
                                         {"rate(1 day)", "0 0 * * *"},
                                         {"cron(0 9 ? * MON-FRI *)", "0 9 * * MON-FRI"},
                                         {"cron(30 2 ? * 2-6 *)", "30 2 * * 1-5"},
                                         {"cron(0/15 8-17 1,15 * ? *)", "0-59/15 8-17 1,15 * *"},
                                         {"cron(0 0 1 JAN ? *)", "0 0 1 JAN *"}}) {
    auto r = cronjob_schedule(c.in);
    ASSERT_TRUE(r.has_value()) << c.in << ": " << r.error().full_message();
    EXPECT_EQ(*r, c.out) << c.in;
  }
}

TEST(KubernetesManifestsTest, SchedulesACronJobCannotExpressAreAClearConfigError) {
  struct Case {
    const char* in;
    const char* why;
  };
  for (const auto& c : std::vector<Case>{{"cron(0 12 L * ? *)", "L, W and #"},
                                         {"cron(0 12 15W * ? *)", "L, W and #"},
                                         {"cron(0 12 ? * 6#3 *)", "L, W and #"},
                                         {"cron(0 12 ? * 6L *)", "L, W and #"},
                                         {"cron(0 12 * * ? 2027)", "the year must be *"},
                                         {"rate(7 minutes)", "must divide an hour"},
                                         {"rate(2 days)", "must divide an hour"}}) {
    auto r = cronjob_schedule(c.in);
    ASSERT_FALSE(r.has_value()) << c.in;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config) << c.in;
    EXPECT_NE(r.error().message.find(std::string("schedule_expression \"") + c.in + "\" cannot run on the kubernetes"),
              std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(c.why), std::string::npos) << r.error().message;
  }
  auto invalid = cronjob_schedule("cron(61 * * * ? *)");
  ASSERT_FALSE(invalid.has_value());
  EXPECT_EQ(invalid.error().code, ErrorCode::invalid_config);
}

TEST(KubernetesManifestsTest, AScheduledWorkerIsACronJobInUtc) {
  auto spec = testing::kube::sample_spec();
  spec.env.template_name = "scheduled-worker";
  spec.components = {"schedule"};
  spec.config.schedule_expression = "cron(0 9 ? * MON-FRI *)";
  auto objs = render_environment(spec, RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  json cj = find(*objs, "CronJob");
  EXPECT_EQ(cj["spec"]["schedule"], "0 9 * * MON-FRI");
  EXPECT_EQ(cj["spec"]["timeZone"], "Etc/UTC");
  EXPECT_EQ(cj["spec"]["concurrencyPolicy"], "Forbid");
  EXPECT_EQ(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], "Never");
  for (const auto& o : *objs) {
    EXPECT_NE(o["kind"], "Deployment");
    EXPECT_NE(o["kind"], "Ingress");
  }
  spec.config.schedule_expression = "cron(0 12 L * ? *)";
  EXPECT_FALSE(render_environment(spec, RenderSettings{}, {}).has_value());
}

TEST(KubernetesManifestsTest, TemplatesThisRuntimeDoesNotRunYetAreAConfigError) {
  auto spec = testing::kube::sample_spec();
  spec.env.template_name = "my-queue-worker"; // a user template with a component of its own
  spec.components = {"web", "queue"};
  auto r = render_environment(spec, RenderSettings{}, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("component \"queue\""), std::string::npos) << r.error().message;
}

RenderSettings gateway_settings() {
  RenderSettings s;
  s.routing = "gateway";
  s.gateway_name = "previews";
  s.gateway_namespace = "gateways";
  return s;
}

bool has_kind(const std::vector<json>& objs, const std::string& kind) {
  for (const auto& o : objs) {
    if (o["kind"] == kind) {
      return true;
    }
  }
  return false;
}

TEST(KubernetesManifestsTest, GatewayRoutingRendersAnHttpRouteToTheServiceInsteadOfAnIngress) {
  RenderSettings s = gateway_settings();
  s.gateway_section = "https";
  s.domain = "previews.example.com";
  auto objs = render_environment(testing::kube::sample_spec(), s, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_FALSE(has_kind(*objs, "Ingress"));
  json route = find(*objs, "HTTPRoute");
  EXPECT_EQ(route["apiVersion"], "gateway.networking.k8s.io/v1");
  EXPECT_EQ(route["metadata"]["name"], "web");
  EXPECT_EQ(route["metadata"]["namespace"], "pr-42");
  EXPECT_EQ(route["metadata"]["labels"]["idp.dev/managed-by"], "idp");
  EXPECT_EQ(route["spec"]["hostnames"], json::array({"pr-42.previews.example.com"}));
  ASSERT_EQ(route["spec"]["parentRefs"].size(), 1u);
  json parent = route["spec"]["parentRefs"][0];
  EXPECT_EQ(parent["kind"], "Gateway");
  EXPECT_EQ(parent["name"], "previews");
  EXPECT_EQ(parent["namespace"], "gateways");
  EXPECT_EQ(parent["sectionName"], "https");
  json backend = route["spec"]["rules"][0]["backendRefs"][0];
  EXPECT_EQ(backend["kind"], "Service");
  EXPECT_EQ(backend["name"], "web");
  EXPECT_EQ(backend["port"], 80) << "the Service's port, not the container's";
  EXPECT_EQ(find(*objs, "Service")["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(route["spec"]["rules"][0]["matches"][0]["path"], json({{"type", "PathPrefix"}, {"value", "/"}}));
  EXPECT_EQ(find(*objs, "Namespace")["metadata"]["annotations"]["idp.dev/routing"], "gateway");

  s.gateway_section = "";
  auto any_listener = render_environment(testing::kube::sample_spec(), s, {});
  ASSERT_TRUE(any_listener.has_value());
  EXPECT_FALSE(find(*any_listener, "HTTPRoute")["spec"]["parentRefs"][0].contains("sectionName"));

  auto ingress = render_environment(testing::kube::sample_spec(), RenderSettings{}, {});
  ASSERT_TRUE(ingress.has_value());
  EXPECT_FALSE(has_kind(*ingress, "HTTPRoute"));
  EXPECT_EQ(find(*ingress, "Namespace")["metadata"]["annotations"]["idp.dev/routing"], "ingress");
}

TEST(KubernetesManifestsTest, WithGatewayRoutingOnlyTheGatewaysNamespaceIsAllowedIn) {
  RenderSettings s = gateway_settings();
  s.ingress_namespace = "ingress-nginx";
  auto objs = render_environment(testing::kube::sample_spec(), s, {});
  ASSERT_TRUE(objs.has_value());
  json from = find(*objs, "NetworkPolicy")["spec"]["ingress"][0]["from"];
  ASSERT_EQ(from.size(), 2u);
  EXPECT_EQ(from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "gateways")
      << "the ingress controller routes nothing here any more: its namespace is not let in";
  EXPECT_EQ(from[1]["podSelector"], json::object());
  // Implementations whose proxies run elsewhere (Envoy Gateway: envoy-gateway-system).
  s.gateway_proxy_namespace = "envoy-gateway-system";
  auto proxied = render_environment(testing::kube::sample_spec(), s, {});
  ASSERT_TRUE(proxied.has_value());
  EXPECT_EQ(find(*proxied, "NetworkPolicy")["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
                                           ["kubernetes.io/metadata.name"],
            "envoy-gateway-system");
}

TEST(KubernetesManifestsTest, GatewayRoutingWithoutAGatewayIsAConfigError) {
  RenderSettings no_name = gateway_settings();
  no_name.gateway_name = "";
  RenderSettings no_ns = gateway_settings();
  no_ns.gateway_namespace = "";
  RenderSettings unknown;
  unknown.routing = "mesh";
  for (const auto& s : {no_name, no_ns, unknown}) {
    auto r = render_environment(testing::kube::sample_spec(), s, {});
    ASSERT_FALSE(r.has_value()) << s.routing;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
    EXPECT_NE(r.error().message.find("routing"), std::string::npos) << r.error().message;
  }
  // A CronJob has no route: a scheduled worker does not need the gateway.
  auto worker = testing::kube::sample_spec("nightly");
  worker.env.template_name = "scheduled-worker";
  worker.components = {"schedule"};
  worker.config.schedule_expression = "rate(1 hour)";
  RenderSettings s = gateway_settings();
  auto objs = render_environment(worker, s, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_FALSE(has_kind(*objs, "HTTPRoute"));
  EXPECT_FALSE(find(*objs, "Namespace")["metadata"]["annotations"].contains("idp.dev/routing"));
}

TEST(KubernetesManifestsTest, AStaticSiteIsTheImageItsCiBuiltServedLikeAnApiServiceWithProbesOnTheRoot) {
  auto spec = testing::kube::static_site_spec();
  auto objs = render_environment(spec, RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  json dep = find(*objs, "Deployment");
  json c = dep["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "registry.example.com/docs-site:0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/");
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"], "/");
  EXPECT_EQ(c["ports"][0]["containerPort"], 80);
  EXPECT_FALSE(c.contains("env")) << "a file server needs no PORT";
  EXPECT_EQ(find(*objs, "Service")["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);
  EXPECT_EQ(find(*objs, "Ingress")["spec"]["rules"][0]["host"], "docs-7.preview.localhost");
  EXPECT_FALSE(has_kind(*objs, "CronJob"));
  // Even a health_check_path in the spec (the engine's default) does not move the probes.
  spec.config.health_check_path = "/healthz";
  auto again = render_environment(spec, RenderSettings{}, {});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(
      find(*again, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"],
      "/");

  auto routed = render_environment(testing::kube::static_site_spec(), gateway_settings(), {});
  ASSERT_TRUE(routed.has_value());
  EXPECT_EQ(find(*routed, "HTTPRoute")["spec"]["hostnames"][0], "docs-7.preview.localhost");
  EXPECT_FALSE(has_kind(*routed, "Ingress"));
}

// Without its own image a static site is served from its files (kubernetes_static_site_test):
// rendering needs them, and a config without static.dir has nothing to serve. With an image,
// static.spa is the image's business: a warning.
TEST(KubernetesManifestsTest, AStaticSiteWithoutItsOwnImageNeedsItsFilesAndSpaIsAWarningOnlyWithAnImage) {
  auto spec = testing::kube::static_site_spec();
  spec.config.keys_set = {"template", "static.dir"}; // container_image left at nginx:alpine
  auto r = render_environment(spec, RenderSettings{}, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument) << "the driver reads the files first";
  SiteArchive files{"tar.gz", false};
  auto served = render_environment(spec, RenderSettings{}, {}, &files);
  ASSERT_TRUE(served.has_value()) << served.error().full_message();
  EXPECT_EQ(find(*served, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27-alpine");
  spec.config.static_site.spa = true;
  EXPECT_TRUE(static_site_warnings(spec).empty()) << "the runtime's nginx applies static.spa";
  spec.config.static_site.dir = "";
  auto no_dir = render_environment(spec, RenderSettings{}, {}, &files);
  ASSERT_FALSE(no_dir.has_value());
  EXPECT_EQ(no_dir.error().code, ErrorCode::invalid_config);
  EXPECT_NE(no_dir.error().message.find("static.dir"), std::string::npos) << no_dir.error().message;

  auto spa = testing::kube::static_site_spec();
  EXPECT_TRUE(static_site_warnings(spa).empty());
  spa.config.static_site.spa = true;
  auto warnings = static_site_warnings(spa);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("static.spa"), std::string::npos) << warnings[0];
  auto objs = render_environment(spa, RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  EXPECT_EQ(deployment_warnings(find(*objs, "Deployment")), warnings) << "the Deployment carries them for observe";
  auto quiet = render_environment(testing::kube::static_site_spec(), RenderSettings{}, {});
  ASSERT_TRUE(quiet.has_value());
  EXPECT_FALSE(find(*quiet, "Deployment")["metadata"]["annotations"].contains("idp.dev/warnings"));
}

TEST(KubernetesManifestsTest, YamlOutputReadsBackAsTheSameDocuments) {
  auto objs = render_environment(testing::kube::sample_spec(), RenderSettings{}, {{"X", "true"}, {"Y", "0123"}});
  ASSERT_TRUE(objs.has_value());
  std::string yaml = json_to_yaml(*objs);
  std::vector<json> back;
  size_t start = 0;
  while (start < yaml.size()) {
    size_t sep = yaml.find("\n---\n", start);
    std::string doc = yaml.substr(start, sep == std::string::npos ? std::string::npos : sep + 1 - start);
    auto j = yaml_to_json(doc, "render");
    ASSERT_TRUE(j.has_value()) << j.error().full_message();
    back.push_back(*j);
    start = sep == std::string::npos ? yaml.size() : sep + 5;
  }
  ASSERT_EQ(back.size(), objs->size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i], (*objs)[i]) << yaml;
  }
}

} // namespace
} // namespace idp::drivers::kubernetes
