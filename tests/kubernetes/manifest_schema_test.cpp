// Every manifest the driver renders, for every supported template and setting, is valid
// against the official Kubernetes OpenAPI schemas (npm kubernetes-models, fixture
// kubernetes_models): 0 errors. Skips, visibly, when node or the package is missing.

#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "drivers/kubernetes/manifests.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/json.hpp"
#include "util/subprocess.hpp"

#ifndef IDP_KUBERNETES_MODELS_DIR
#error "IDP_KUBERNETES_MODELS_DIR must name the node_modules directory of the fixture"
#endif

namespace idp::testing {
namespace {

using drivers::kubernetes::render_environment;
using drivers::kubernetes::RenderSettings;

struct RenderCase {
  std::string name;
  drivers::DeploySpec spec;
  RenderSettings settings;
  std::map<std::string, std::string> secrets;
};

std::vector<RenderCase> render_cases() {
  std::vector<RenderCase> out;
  out.push_back({"api-service/direct/defaults", kube::sample_spec(), RenderSettings{}, {}});
  RenderCase tls{"api-service/direct/tls+secrets+replicas", kube::sample_spec("preview-login"), RenderSettings{}, {}};
  tls.settings.tls_secret = "preview-wildcard";
  tls.settings.replicas = 3;
  tls.settings.domain = "previews.example.com";
  tls.settings.ingress_class = "traefik";
  tls.settings.ingress_namespace = "kube-system";
  tls.spec.config.cpu = 1024;
  tls.spec.config.memory = 2048;
  tls.spec.config.secrets = {{"STRIPE_KEY", "stripe-test"}};
  tls.secrets = {{"STRIPE_KEY", "sk_test_123"}};
  out.push_back(tls);
  RenderCase plain{"api-service/direct/no-owner-no-expiry", kube::sample_spec("pr-1"), RenderSettings{}, {}};
  plain.spec.env.owner = "";
  plain.spec.env.expires_at = 0;
  plain.spec.config.environment.clear();
  plain.spec.config.container_image = "nginx:alpine";
  out.push_back(plain);
  RenderCase worker{"scheduled-worker/direct", kube::sample_spec("nightly"), RenderSettings{}, {}};
  worker.spec.env.template_name = "scheduled-worker";
  worker.spec.components = {"schedule"};
  worker.spec.config.schedule_expression = "cron(0/15 8-17 ? * MON-FRI *)";
  out.push_back(worker);
  // Gateway API routing: an HTTPRoute (validated by @kubernetes-models/gateway-api).
  RenderCase gateway{"api-service/direct/gateway", kube::sample_spec("pr-7"), RenderSettings{}, {}};
  gateway.settings.routing = "gateway";
  gateway.settings.gateway_name = "previews";
  gateway.settings.gateway_namespace = "gateways";
  gateway.settings.gateway_section = "https";
  gateway.settings.gateway_proxy_namespace = "envoy-gateway-system";
  out.push_back(gateway);
  out.push_back({"static-site/direct/ingress", kube::static_site_spec(), RenderSettings{}, {}});
  RenderCase site_gateway{"static-site/direct/gateway-tls", kube::static_site_spec("docs-9"), gateway.settings, {}};
  site_gateway.settings.gateway_section = "";
  site_gateway.settings.gateway_proxy_namespace = "";
  site_gateway.spec.config.static_site.spa = true;
  out.push_back(site_gateway);
  return out;
}

// The kinds the cases render: each must have been validated, not merely skipped.
TEST(KubernetesManifestSchemaTest, TheCasesCoverEveryRouteKind) {
  std::set<std::string> kinds;
  for (const auto& c : render_cases()) {
    auto objs = render_environment(c.spec, c.settings, c.secrets);
    ASSERT_TRUE(objs.has_value()) << c.name << ": " << objs.error().full_message();
    for (const auto& o : *objs) {
      kinds.insert(o["kind"].get<std::string>());
    }
  }
  for (const char* k : {"Ingress", "HTTPRoute", "Deployment", "CronJob", "NetworkPolicy"}) {
    EXPECT_TRUE(kinds.count(k)) << k;
  }
}

TEST(KubernetesManifestSchemaTest, EveryRenderedManifestIsValidAgainstTheOfficialSchemas) {
  std::string modules = IDP_KUBERNETES_MODELS_DIR;
  if (!util::find_executable("node")) {
    GTEST_SKIP() << "node is not installed: manifests not validated";
  }
  if (!util::path_exists(modules + "/kubernetes-models/package.json")) {
    GTEST_SKIP() << "kubernetes-models is not installed in " << modules
                 << " (fixture kubernetes_models needs npm and the registry)";
  }
  TempDir tmp;
  nlohmann::json sets = nlohmann::json::array();
  size_t count = 0;
  for (const auto& c : render_cases()) {
    auto objs = render_environment(c.spec, c.settings, c.secrets);
    ASSERT_TRUE(objs.has_value()) << c.name << ": " << objs.error().full_message();
    count += objs->size();
    sets.push_back({{"name", c.name}, {"objects", *objs}});
  }
  std::ofstream(tmp.sub("manifests.json")) << util::json_dump(sets);
  util::Command cmd;
  cmd.argv = {"node", source_dir() + "/tests/kubernetes/validate_manifests.mjs", modules, tmp.sub("manifests.json")};
  util::RunOptions opts;
  opts.timeout_ms = 120000;
  opts.merge_stderr = true;
  auto r = util::run(cmd, opts);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->exit_code, 0) << r->out;
  EXPECT_NE(r->out.find(std::to_string(count) + " manifests valid, 0 errors"), std::string::npos) << r->out;
}

// The validator is not a rubber stamp: a manifest a real server would reject fails it.
TEST(KubernetesManifestSchemaTest, TheValidatorRejectsAnInvalidManifest) {
  std::string modules = IDP_KUBERNETES_MODELS_DIR;
  if (!util::find_executable("node") || !util::path_exists(modules + "/kubernetes-models/package.json")) {
    GTEST_SKIP() << "node or kubernetes-models (" << modules << ") missing";
  }
  TempDir tmp;
  auto objs = render_environment(kube::sample_spec(), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  for (auto& o : *objs) {
    if (o["kind"] == "Deployment") {
      o["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"; // a string
    }
  }
  nlohmann::json sets = nlohmann::json::array({{{"name", "broken"}, {"objects", *objs}}});
  std::ofstream(tmp.sub("manifests.json")) << util::json_dump(sets);
  util::Command cmd;
  cmd.argv = {"node", source_dir() + "/tests/kubernetes/validate_manifests.mjs", modules, tmp.sub("manifests.json")};
  util::RunOptions opts;
  opts.timeout_ms = 120000;
  opts.merge_stderr = true;
  auto r = util::run(cmd, opts);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 1) << r->out;
  EXPECT_NE(r->out.find("containerPort must be integer"), std::string::npos) << r->out;
}

// Nor for the Gateway API: an HTTPRoute a real server would reject fails it.
TEST(KubernetesManifestSchemaTest, TheValidatorRejectsAnInvalidHttpRoute) {
  std::string modules = IDP_KUBERNETES_MODELS_DIR;
  if (!util::find_executable("node") || !util::path_exists(modules + "/@kubernetes-models/gateway-api/package.json")) {
    GTEST_SKIP() << "node or @kubernetes-models/gateway-api (" << modules << ") missing";
  }
  TempDir tmp;
  RenderSettings s;
  s.routing = "gateway";
  s.gateway_name = "previews";
  s.gateway_namespace = "gateways";
  s.domain = "Previews_Example.com"; // not a hostname
  auto objs = render_environment(kube::sample_spec(), s, {});
  ASSERT_TRUE(objs.has_value());
  nlohmann::json route;
  for (const auto& o : *objs) {
    if (o["kind"] == "HTTPRoute") {
      route = o;
    }
  }
  ASSERT_FALSE(route.is_null());
  nlohmann::json sets = nlohmann::json::array({{{"name", "broken"}, {"objects", {route}}}});
  std::ofstream(tmp.sub("manifests.json")) << util::json_dump(sets);
  util::Command cmd;
  cmd.argv = {"node", source_dir() + "/tests/kubernetes/validate_manifests.mjs", modules, tmp.sub("manifests.json")};
  util::RunOptions opts;
  opts.timeout_ms = 120000;
  opts.merge_stderr = true;
  auto r = util::run(cmd, opts);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 1) << r->out;
  EXPECT_NE(r->out.find("HTTPRoute/web: data/spec/hostnames/0 must match pattern"), std::string::npos) << r->out;
}

} // namespace
} // namespace idp::testing
