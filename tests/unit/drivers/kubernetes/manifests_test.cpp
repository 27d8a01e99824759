// What an api-service environment becomes on Kubernetes (schemas: tests/kubernetes).

#include <gtest/gtest.h>

#include "drivers/kubernetes/manifests.hpp"
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

TEST(KubernetesManifestsTest, TheSecretHoldsEnvironmentAndResolvedSecrets) {
  auto spec = testing::kube::sample_spec();
  spec.config.secrets = {{"API_KEY", "api-key"}};
  auto objs = render_environment(spec, RenderSettings{}, {{"API_KEY", "s3cr3t"}});
  ASSERT_TRUE(objs.has_value());
  json secret = find(*objs, "Secret");
  EXPECT_EQ(secret["stringData"]["LOG_LEVEL"], "debug");
  EXPECT_EQ(secret["stringData"]["API_KEY"], "s3cr3t");
  json dep = find(*objs, "Deployment");
  EXPECT_EQ(dep["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"], "app-env");
  // A changed secret changes the pod template, so the pods restart with it.
  auto other = render_environment(spec, RenderSettings{}, {{"API_KEY", "rotated"}});
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(find(*other, "Deployment")["spec"]["template"], dep["spec"]["template"]);
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
  spec.env.template_name = "static-site";
  spec.components = {"static"};
  auto r = render_environment(spec, RenderSettings{}, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("component \"static\""), std::string::npos) << r.error().message;
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
