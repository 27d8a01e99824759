// The Kubernetes driver's lifecycle against the API-server double: apply with server-side
// apply and a rollout wait, rollback of a rollout that never completes, destroy waiting
// for the namespace, the orphan sweep, and what it refuses.

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"

namespace idp::drivers::kubernetes {

// Outside the anonymous namespace: unity builds turn a fixture there into
// -Wsubobject-linkage errors.
class KubeRecordingProgress final : public Progress {
public:
  void step(std::string_view what) override { steps.emplace_back(what); }
  void revision_status(core::RevisionStatus, std::string_view) override {}
  bool cancelled() const override { return false; }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }
  std::vector<std::string> steps;

private:
  std::atomic<bool> m_cancel{false};
};

class KubernetesDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_api.fail_pods_with_image("never-ready", "CrashLoopBackOff");
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    DriverContext ctx;
    ctx.home = m_tmp.sub("home");
    ctx.domain = "preview.test";
    ctx.options = {{"kubeconfig", m_kubeconfig}, {"rollout_timeout_ms", 1000}, {"poll_interval_ms", 10}};
    ctx.options.update(extra);
    auto d = kubernetes_driver_factory().create(ctx);
    EXPECT_TRUE(d.has_value()) << d.error().full_message();
    return std::unique_ptr<KubernetesDriver>(static_cast<KubernetesDriver*>(d->release()));
  }
  int count(const std::string& method) {
    int n = 0;
    for (const auto& r : m_api.requests()) {
      n += r.method == method;
    }
    return n;
  }

  testing::TempDir m_tmp;
  testing::FakeKubeApiServer m_api;
  std::string m_kubeconfig;
  KubeRecordingProgress m_progress;
};

namespace {

using json = nlohmann::json;
using testing::FakeKubeApiServer;
using testing::TempDir;

TEST_F(KubernetesDriverTest, ApplyServerSideAppliesEveryObjectAndWaitsForTheRollout) {
  auto d = make_driver();
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->url, "http://pr-42.preview.test");
  auto reqs = m_api.requests();
  int applies = 0;
  bool polled_after_apply = false;
  for (const auto& q : reqs) {
    if (q.method == "PATCH") {
      ++applies;
      EXPECT_EQ(q.content_type, "application/apply-patch+yaml") << q.path;
      EXPECT_NE(q.query.find("fieldManager=idp"), std::string::npos) << q.path;
    }
    if (q.method == "GET" && q.path == "/apis/apps/v1/namespaces/pr-42/deployments/web" && applies == 9) {
      polled_after_apply = true;
    }
  }
  EXPECT_EQ(applies, 9);
  EXPECT_TRUE(polled_after_apply) << "the rollout is read back, not assumed";
  EXPECT_LE(reqs.size(), 12u) << "issue 11's budget: at most 12 requests per create";
  auto ns = m_api.object("namespaces", "", "pr-42");
  ASSERT_TRUE(ns.has_value());
  EXPECT_EQ((*ns)["metadata"]["labels"]["idp.dev/managed-by"], "idp");
  auto secret = m_api.object("secrets", "pr-42", "app-env");
  ASSERT_TRUE(secret.has_value());
  EXPECT_TRUE((*secret)["data"].contains("LOG_LEVEL"));
  auto obs = d->observe(testing::kube::sample_spec().env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_F(KubernetesDriverTest, ARedeployWhosePodsNeverBecomeReadyIsRolledBackWithTheReason) {
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto bad = good;
  bad.revision_id = 2;
  bad.config.container_image = "registry.example.com/never-ready:2";
  auto r = d->apply(bad, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  const std::string& msg = r.error().full_message();
  EXPECT_NE(msg.find("rollout of revision 2 did not complete"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CrashLoopBackOff"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rolled back to the pod template of revision 1"), std::string::npos) << msg;
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");
  auto obs = d->observe(good.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << "the old pods kept serving: " << obs->detail;
}

TEST_F(KubernetesDriverTest, ReadLogsReturnsThePodsLinesWithTheirTimes) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  auto logs = d->read_logs(spec.env, {});
  ASSERT_TRUE(logs.has_value()) << logs.error().full_message();
  ASSERT_EQ(logs->lines.size(), 1u);
  EXPECT_EQ(logs->lines[0].text,
            "listening with image registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");
  EXPECT_GT(logs->lines[0].at, 0) << "the timestamp kubernetes prefixes is parsed, not kept in the text";
  bool asked_with_timestamps = false;
  for (const auto& q : m_api.requests()) {
    if (q.path.find("/log") != std::string::npos) {
      asked_with_timestamps =
          q.query.find("container=app") != std::string::npos && q.query.find("timestamps=true") != std::string::npos;
    }
  }
  EXPECT_TRUE(asked_with_timestamps);
}

TEST_F(KubernetesDriverTest, AFirstDeployThatNeverBecomesReadyFailsWithThePodsReason) {
  auto d = make_driver();
  auto bad = testing::kube::sample_spec();
  bad.config.container_image = "registry.example.com/never-ready:1";
  auto r = d->apply(bad, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().full_message().find("container app: CrashLoopBackOff"), std::string::npos)
      << r.error().full_message();
  auto obs = d->observe(bad.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::unhealthy);
  EXPECT_NE(obs->detail.find("CrashLoopBackOff"), std::string::npos) << obs->detail;
}

TEST_F(KubernetesDriverTest, AScheduledWorkerIsAppliedAsACronJobAndObservedHealthy) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec("nightly");
  spec.env.template_name = "scheduled-worker";
  spec.components = {"schedule"};
  spec.config.schedule_expression = "rate(15 minutes)";
  auto r = d->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  auto cj = m_api.object("cronjobs", "nightly", "job");
  ASSERT_TRUE(cj.has_value());
  EXPECT_EQ((*cj)["spec"]["schedule"], "*/15 * * * *");
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value()) << obs.error().full_message();
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  spec.config.schedule_expression = "cron(0 12 ? * 6#3 *)";
  EXPECT_EQ(d->plan(spec).error().code, ErrorCode::invalid_config);
}

TEST_F(KubernetesDriverTest, ANamespaceItDoesNotManageIsNeitherTakenOverNorDeleted) {
  m_api.put_object({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "pr-42"}}}});
  auto d = make_driver();
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::conflict);
  EXPECT_NE(r.error().message.find("not managed by idp server \"idp\""), std::string::npos) << r.error().message;
  EXPECT_EQ(count("PATCH"), 0);
  ASSERT_TRUE(d->destroy(testing::kube::sample_spec().env, m_progress).has_value());
  EXPECT_EQ(count("DELETE"), 0);
  EXPECT_TRUE(m_api.object("namespaces", "", "pr-42").has_value());
}

TEST_F(KubernetesDriverTest, DestroyDeletesTheNamespaceAndWaitsUntilItIsGone) {
  auto d = make_driver();
  ASSERT_TRUE(d->apply(testing::kube::sample_spec(), m_progress).has_value());
  m_api.set_namespace_finalize_reads(3);
  m_api.clear_requests();
  ASSERT_TRUE(d->destroy(testing::kube::sample_spec().env, m_progress).has_value());
  EXPECT_FALSE(m_api.object("namespaces", "", "pr-42").has_value());
  EXPECT_FALSE(m_api.object("deployments", "pr-42", "web").has_value());
  bool foreground = false;
  for (const auto& q : m_api.requests()) {
    if (q.method == "DELETE") {
      foreground = q.body.find("\"propagationPolicy\":\"Foreground\"") != std::string::npos;
    }
  }
  EXPECT_TRUE(foreground);
  EXPECT_GE(count("GET"), 4) << "polled until the namespace was gone";
  // Idempotent: a second destroy finds nothing (404) and is ok.
  ASSERT_TRUE(d->destroy(testing::kube::sample_spec().env, m_progress).has_value());
}

TEST_F(KubernetesDriverTest, TheOrphanSweepDeletesOnlyThisServersNamespacesWithoutEnvironment) {
  auto d = make_driver();
  auto a = testing::kube::sample_spec("pr-1");
  auto b = testing::kube::sample_spec("pr-2");
  ASSERT_TRUE(d->apply(a, m_progress).has_value());
  ASSERT_TRUE(d->apply(b, m_progress).has_value());
  m_api.put_object({{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata", {{"name", "pr-3"}, {"labels", {{"idp.dev/managed-by", "another-idp"}}}}}});
  auto swept = d->sweep_orphans({a.env});
  ASSERT_TRUE(swept.has_value()) << swept.error().full_message();
  EXPECT_EQ(*swept, std::vector<std::string>{"pr-2"});
  EXPECT_EQ((*m_api.object("namespaces", "", "pr-2"))["status"]["phase"], "Terminating");
  EXPECT_EQ((*m_api.object("namespaces", "", "pr-1"))["status"]["phase"], "Active");
  EXPECT_EQ((*m_api.object("namespaces", "", "pr-3"))["status"]["phase"], "Active");
}

TEST_F(KubernetesDriverTest, ServerErrorsKeepTheirKindForTheEngine) {
  auto d = make_driver();
  m_api.fail("PATCH", "/deployments/", 503);
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient) << r.error().full_message();
  EXPECT_NE(r.error().full_message().find("patch deployments \"web\" in namespace \"pr-42\": 503"), std::string::npos)
      << r.error().full_message();
  m_api.forbid("patch", "networkpolicies");
  auto f = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().full_message().find("refused to patch networkpolicies"), std::string::npos)
      << f.error().full_message();
}

TEST_F(KubernetesDriverTest, WithoutAClusterTheDaemonStartsAndEachOperationSaysWhy) {
  DriverContext ctx;
  ctx.home = m_tmp.sub("home");
  ctx.options = {{"kubeconfig", m_tmp.sub("no-such-kubeconfig")}};
  auto d = kubernetes_driver_factory().create(ctx);
  ASSERT_TRUE(d.has_value()) << d.error().full_message();
  EXPECT_TRUE((*d)->start({}).has_value());
  EXPECT_TRUE((*d)->plan(testing::kube::sample_spec()).has_value()) << "plan renders only";
  auto r = (*d)->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().full_message().find("no-such-kubeconfig"), std::string::npos) << r.error().full_message();
}

TEST(KubernetesOptionsTest, UnknownOrWrongOptionsAreNamed) {
  auto unknown = kubernetes_driver_factory().check_options({{"ingress_clas", "nginx"}});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message.find("did you mean \"ingress_class\"?"), std::string::npos)
      << unknown.error().message;
  auto bad = kubernetes_driver_factory().check_options({{"server_id", "Not A Label"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("option \"server_id\": expected a Kubernetes name"), std::string::npos)
      << bad.error().message;
  auto both = kubernetes_driver_factory().check_options({{"in_cluster", true}, {"context", "dev"}});
  ASSERT_FALSE(both.has_value());
  EXPECT_TRUE(
      kubernetes_driver_factory().check_options({{"rollout_timeout_ms", 60000}, {"tls_secret", ""}}).has_value());
}

} // namespace
} // namespace idp::drivers::kubernetes
