// Every manifest the driver renders, for every supported template × mode (direct, argocd)
// and setting, is valid against the official Kubernetes OpenAPI schemas (npm
// kubernetes-models) and the CRD schemas (@kubernetes-models/argo-cd for the Application),
// fixture kubernetes_models: 0 errors. Skips, visibly, when node or a package is missing.

#include <fstream>
#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "drivers/kubernetes/argocd.hpp"
#include "drivers/kubernetes/manifests.hpp"
#include "drivers/kubernetes/manifests_static.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/json.hpp"
#include "util/subprocess.hpp"

#ifndef IDP_KUBERNETES_MODELS_DIR
#error "IDP_KUBERNETES_MODELS_DIR must name the node_modules directory of the fixture"
#endif

namespace idp::testing {
namespace {

using drivers::kubernetes::ArgoCdSettings;
using drivers::kubernetes::render_argocd_environment;
using drivers::kubernetes::render_environment;
using drivers::kubernetes::RenderSettings;

struct RenderCase {
  std::string name;
  drivers::DeploySpec spec;
  RenderSettings settings;
  std::map<std::string, std::string> secrets;
  std::optional<ArgoCdSettings> argocd;                 // set: Argo CD mode
  std::optional<drivers::kubernetes::SiteArchive> site; // static-site without an image: its files
};

// render_environment of a case (direct mode).
Expected<std::vector<nlohmann::json>> render_direct(const RenderCase& c) {
  return render_environment(c.spec, c.settings, c.secrets, c.site ? &*c.site : nullptr);
}

// The model packages the fixture installs (tests/kubernetes/CMakeLists.txt).
const std::vector<std::string>& model_packages() {
  static const std::vector<std::string> k_packages = {"kubernetes-models", "@kubernetes-models/argo-cd"};
  return k_packages;
}

std::string missing_models(const std::string& modules) {
  for (const auto& p : model_packages()) {
    if (!util::path_exists(modules + "/" + p + "/package.json")) {
      return p;
    }
  }
  return "";
}

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
  RenderCase fork{"api-service/direct/untrusted-fork", kube::sample_spec("pr-3"), RenderSettings{}, {}};
  fork.spec.env.profile = "untrusted"; // egress only to DNS and the namespace
  out.push_back(fork);
  RenderCase mirror = fork; // and to the networks of forks.egress_cidrs
  mirror.name = "api-service/direct/untrusted-fork+egress-cidrs";
  mirror.settings.untrusted_egress_cidrs = {"10.20.0.0/16", "2001:db8::/32"};
  out.push_back(mirror);
  RenderCase worker{"scheduled-worker/direct", kube::sample_spec("nightly"), RenderSettings{}, {}};
  worker.spec.env.template_name = "scheduled-worker";
  worker.spec.components = {"schedule"};
  worker.spec.config.schedule_expression = "cron(0/15 8-17 ? * MON-FRI *)";
  out.push_back(worker);
  // api-database: the StatefulSet (with a seed, a storage class) and the CloudNativePG Cluster.
  RenderCase db{"api-database/statefulset+seed",
                kube::database_spec("pr-7", "CREATE TABLE items (id int);\n"),
                RenderSettings{},
                {}};
  db.spec.template_values["database_password"] = "0123456789abcdef0123456789abcdef";
  db.settings.database.storage = "2Gi";
  db.settings.database.storage_class = "fast-ssd";
  out.push_back(db);
  RenderCase cnpg{"api-database/cloudnative-pg+seed", db.spec, RenderSettings{}, {}};
  cnpg.settings.database.cloudnative_pg = true;
  cnpg.settings.database.storage_class = "standard";
  out.push_back(cnpg);
  RenderCase placeholder{"api-database/statefulset/render", kube::database_spec("pr-8"), RenderSettings{}, {}};
  out.push_back(placeholder);

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
  // static-site without container_image: the committed directory in ConfigMaps (two parts),
  // and a build in the pod.
  RenderCase files{"static-site/direct/committed-files", kube::static_site_spec("docs-10"), RenderSettings{}, {}};
  files.spec.config.keys_set = {"template", "static.dir"};
  files.spec.config.static_site.spa = true;
  files.site = drivers::kubernetes::SiteArchive{std::string(drivers::kubernetes::k_site_part_bytes + 10, 'x'), false};
  out.push_back(files);
  RenderCase built{"static-site/direct/built-in-the-pod", kube::static_site_spec("docs-11"), gateway.settings, {}};
  built.spec.config.keys_set = {"template", "static.dir", "local.build"};
  built.spec.config.local.build = "npm run build -- --base '/docs/'";
  built.site = drivers::kubernetes::SiteArchive{"tar.gz bytes", true};
  out.push_back(built);

  // Argo CD mode: each template (its workload comes from the repository, so any template
  // renders), default and custom settings.
  std::vector<RenderCase> direct = out;
  for (auto c : direct) {
    if (c.name.find("/direct") == std::string::npos) {
      continue; // api-database's direct cases: Argo CD renders no database (argo_db below)
    }
    c.name.replace(c.name.find("/direct"), 7, "/argocd");
    c.argocd = ArgoCdSettings{};
    out.push_back(c);
  }
  RenderCase argo_db{
      "api-database/argocd/custom-project-path-repo", kube::sample_spec("pr-9"), RenderSettings{}, {}, {}};
  argo_db.spec.env.template_name = "api-database";
  argo_db.spec.components = {"web", "database"};
  argo_db.spec.env.repo = "https://bot:token@github.com/acme/shop.git";
  argo_db.argocd = ArgoCdSettings{};
  argo_db.argocd->ns = "gitops";
  argo_db.argocd->project = "previews";
  argo_db.argocd->path = "deploy/preview";
  out.push_back(argo_db);
  RenderCase branch{"api-service/argocd/branch-target-ssh", kube::sample_spec("pr-10"), RenderSettings{}, {}, {}};
  branch.spec.env.commit = "";
  branch.argocd = ArgoCdSettings{};
  branch.argocd->repo_url = "git@github.com:acme/shop-deploy.git";
  out.push_back(branch);
  return out;
}

// The kinds the cases render: each must have been validated, not merely skipped.
TEST(KubernetesManifestSchemaTest, TheCasesCoverEveryRouteKind) {
  std::set<std::string> kinds;
  for (const auto& c : render_cases()) {
    auto objs = render_direct(c);
    ASSERT_TRUE(objs.has_value()) << c.name << ": " << objs.error().full_message();
    for (const auto& o : *objs) {
      kinds.insert(o["kind"].get<std::string>());
    }
  }
  for (const char* k : {"Ingress", "HTTPRoute", "Deployment", "CronJob", "NetworkPolicy", "ConfigMap"}) {
    EXPECT_TRUE(kinds.count(k)) << k;
  }
}

TEST(KubernetesManifestSchemaTest, EveryRenderedManifestIsValidAgainstTheOfficialSchemas) {
  std::string modules = IDP_KUBERNETES_MODELS_DIR;
  if (!util::find_executable("node")) {
    GTEST_SKIP() << "node is not installed: manifests not validated";
  }
  if (!missing_models(modules).empty()) {
    GTEST_SKIP() << missing_models(modules) << " is not installed in " << modules
                 << " (fixture kubernetes_models needs npm and the registry)";
  }
  TempDir tmp;
  nlohmann::json sets = nlohmann::json::array();
  size_t count = 0;
  for (const auto& c : render_cases()) {
    auto objs = c.argocd ? render_argocd_environment(c.spec, c.settings, *c.argocd, c.secrets) : render_direct(c);
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
  if (!util::find_executable("node") || !missing_models(modules).empty()) {
    GTEST_SKIP() << "node or the model packages (" << modules << ") missing";
  }
  TempDir tmp;
  auto objs = render_environment(kube::sample_spec(), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  for (auto& o : *objs) {
    if (o["kind"] == "Deployment") {
      o["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"; // a string
    }
  }
  // The Application's own schema (the CRD's) is checked too.
  auto app = drivers::kubernetes::render_application(kube::sample_spec(), RenderSettings{}, ArgoCdSettings{});
  ASSERT_TRUE(app.has_value());
  (*app)["spec"]["syncPolicy"]["automated"]["selfHeal"] = "yes";
  objs->push_back(*app);
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
  EXPECT_NE(r->out.find("Application/pr-42: data/spec/syncPolicy/automated/selfHeal must be boolean"),
            std::string::npos)
      << r->out;
}

// The CloudNativePG Cluster is checked against its CRD's schema, not waved through.
TEST(KubernetesManifestSchemaTest, TheValidatorRejectsAnInvalidCloudNativePgCluster) {
  std::string modules = IDP_KUBERNETES_MODELS_DIR;
  if (!util::find_executable("node") ||
      !util::path_exists(modules + "/@kubernetes-models/cloudnative-pg/package.json")) {
    GTEST_SKIP() << "node or @kubernetes-models/cloudnative-pg (" << modules << ") missing";
  }
  TempDir tmp;
  RenderSettings s;
  s.database.cloudnative_pg = true;
  auto objs = render_environment(kube::database_spec("pr-7"), s, {});
  ASSERT_TRUE(objs.has_value());
  std::vector<nlohmann::json> clusters;
  for (auto& o : *objs) {
    if (o["kind"] == "Cluster") {
      o["spec"]["instances"] = "one";
      clusters.push_back(o);
    }
  }
  ASSERT_EQ(clusters.size(), 1u);
  nlohmann::json sets = nlohmann::json::array({{{"name", "broken"}, {"objects", clusters}}});
  std::ofstream(tmp.sub("manifests.json")) << util::json_dump(sets);
  util::Command cmd;
  cmd.argv = {"node", source_dir() + "/tests/kubernetes/validate_manifests.mjs", modules, tmp.sub("manifests.json")};
  util::RunOptions opts;
  opts.timeout_ms = 120000;
  opts.merge_stderr = true;
  auto r = util::run(cmd, opts);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 1) << r->out;
  EXPECT_NE(r->out.find("instances must be integer"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("no schema"), std::string::npos) << r->out;
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
