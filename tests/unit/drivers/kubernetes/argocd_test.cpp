// Argo CD mode: the Application rendered (repository without credentials, the deployed
// commit, the k8s/ path, automated sync with self-heal), its status mapped to apply's
// verdict and observe's health, and the driver's lifecycle against the double playing
// Argo CD's controller.

#include <gtest/gtest.h>

#include "drivers/kubernetes/argocd.hpp"
#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/json.hpp"

namespace idp::drivers::kubernetes {

using ArgoCdRecordingProgress = testing::kube::RecordingProgress;

class KubernetesArgoCdTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_api.put_object({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "argocd"}}}});
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    DriverContext ctx;
    ctx.home = m_tmp.sub("home");
    ctx.domain = "preview.test";
    ctx.options = {
        {"kubeconfig", m_kubeconfig}, {"mode", "argocd"}, {"rollout_timeout_ms", 1000}, {"poll_interval_ms", 10}};
    ctx.options.update(extra);
    auto d = kubernetes_driver_factory().create(ctx);
    EXPECT_TRUE(d.has_value()) << d.error().full_message();
    return std::unique_ptr<KubernetesDriver>(static_cast<KubernetesDriver*>(d->release()));
  }

  testing::TempDir m_tmp;
  testing::FakeKubeApiServer m_api;
  std::string m_kubeconfig;
  ArgoCdRecordingProgress m_progress;
};

namespace {

using json = nlohmann::json;

constexpr const char* k_bad_commit = "bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0";

json app_with(const std::string& target, const json& status) {
  return {{"spec", {{"source", {{"targetRevision", target}}}}}, {"status", status}};
}

TEST(ArgoCdRenderTest, TheApplicationSyncsTheRepositoryAtTheDeployedCommitIntoTheNamespace) {
  auto spec = testing::kube::sample_spec();
  auto objs = render_argocd_environment(spec, RenderSettings{}, ArgoCdSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  std::vector<std::string> kinds;
  for (const auto& o : *objs) {
    kinds.push_back(o["kind"]);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy",
                                             "ServiceAccount", "Secret", "Application"}))
      << "the workload comes from the repository, not from idp";
  const json& app = objs->back();
  EXPECT_EQ(app["apiVersion"], "argoproj.io/v1alpha1");
  EXPECT_EQ(app["metadata"]["name"], "pr-42");
  EXPECT_EQ(app["metadata"]["namespace"], "argocd");
  EXPECT_EQ(app["metadata"]["labels"]["idp.dev/managed-by"], "idp");
  EXPECT_EQ(app["metadata"]["labels"]["idp.dev/environment"], "pr-42");
  EXPECT_EQ(app["metadata"]["labels"]["idp.dev/owner"], "alice_example.com");
  EXPECT_EQ(app["metadata"]["finalizers"], json::array({"resources-finalizer.argocd.argoproj.io"}));
  EXPECT_EQ(app["spec"]["project"], "default");
  EXPECT_EQ(app["spec"]["source"]["repoURL"], "https://github.com/acme/shop.git");
  // The commit, not the branch: a redeploy of a revision is exactly that commit, and a
  // push to the branch is deployed by idp (a new revision), not behind its back.
  EXPECT_EQ(app["spec"]["source"]["targetRevision"], spec.env.commit);
  EXPECT_EQ(app["spec"]["source"]["path"], "k8s");
  EXPECT_EQ(app["spec"]["destination"], json({{"server", "https://kubernetes.default.svc"}, {"namespace", "pr-42"}}));
  EXPECT_EQ(app["spec"]["syncPolicy"]["automated"], json({{"prune", true}, {"selfHeal", true}}));
  EXPECT_EQ(app["spec"]["syncPolicy"]["syncOptions"], json::array({"CreateNamespace=false"}));

  ArgoCdSettings custom;
  custom.ns = "gitops";
  custom.project = "previews";
  custom.path = "deploy/preview";
  custom.repo_url = "git@github.com:acme/shop-deploy.git";
  auto other = render_application(spec, RenderSettings{}, custom);
  ASSERT_TRUE(other.has_value()) << other.error().full_message();
  EXPECT_EQ((*other)["metadata"]["namespace"], "gitops");
  EXPECT_EQ((*other)["spec"]["project"], "previews");
  EXPECT_EQ((*other)["spec"]["source"]["path"], "deploy/preview");
  EXPECT_EQ((*other)["spec"]["source"]["repoURL"], "git@github.com:acme/shop-deploy.git");
}

TEST(ArgoCdRenderTest, CredentialsInTheRepositoryUrlNeverReachTheCluster) {
  auto spec = testing::kube::sample_spec();
  spec.env.repo = "https://ci-bot:ghp_s3cr3tT0ken@github.com/acme/shop.git";
  auto objs = render_argocd_environment(spec, RenderSettings{}, ArgoCdSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_EQ(objs->back()["spec"]["source"]["repoURL"], "https://github.com/acme/shop.git");
  for (const auto& o : *objs) {
    EXPECT_EQ(util::json_dump(o).find("s3cr3t"), std::string::npos) << util::json_dump(o);
  }
}

TEST(ArgoCdRenderTest, ARepositoryArgoCdCannotPullIsAClearConfigError) {
  for (const char* repo : {"/srv/git/shop", "file:///srv/git/shop", "shop"}) {
    auto spec = testing::kube::sample_spec();
    spec.env.repo = repo;
    auto r = render_application(spec, RenderSettings{}, ArgoCdSettings{});
    ASSERT_FALSE(r.has_value()) << repo;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
    EXPECT_NE(r.error().message.find("is not a URL Argo CD can pull"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(repo), std::string::npos) << r.error().message;
  }
  for (const char* repo :
       {"https://github.com/acme/shop.git", "ssh://git@git.example.com/shop.git", "git@github.com:acme/shop.git"}) {
    auto spec = testing::kube::sample_spec();
    spec.env.repo = repo;
    EXPECT_TRUE(render_application(spec, RenderSettings{}, ArgoCdSettings{}).has_value()) << repo;
  }
}

TEST(ArgoCdRenderTest, AnyTemplateRendersItsWorkloadComesFromTheRepository) {
  auto spec = testing::kube::sample_spec();
  spec.env.template_name = "api-database";
  spec.components = {"web", "database"};
  spec.config.container_image = "";
  EXPECT_FALSE(render_environment(spec, RenderSettings{}, {}).has_value()) << "direct mode cannot run it";
  auto objs = render_argocd_environment(spec, RenderSettings{}, ArgoCdSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_EQ(objs->size(), 7u);
}

TEST(ArgoCdStatusTest, ApplyWaitsForSyncedAndHealthyAtTheTargetRevision) {
  const std::string c = "0123456789abcdef0123456789abcdef01234567";
  const std::string old = "1111111111111111111111111111111111111111";
  auto verdict = [](const json& app) { return argocd_verdict(application_state(app)); };
  EXPECT_EQ(verdict(app_with(c, json::object())), RolloutVerdict::waiting) << "not reconciled yet";
  EXPECT_EQ(
      verdict(app_with(c, {{"sync", {{"status", "Synced"}, {"revision", old}}}, {"health", {{"status", "Healthy"}}}})),
      RolloutVerdict::waiting)
      << "a status of the previous commit says nothing about this one";
  EXPECT_EQ(
      verdict(app_with(c, {{"sync", {{"status", "Synced"}, {"revision", c}}}, {"health", {{"status", "Healthy"}}}})),
      RolloutVerdict::done);
  EXPECT_EQ(verdict(app_with(
                c, {{"sync", {{"status", "Synced"}, {"revision", c}}}, {"health", {{"status", "Progressing"}}}})),
            RolloutVerdict::waiting);
  EXPECT_EQ(verdict(app_with(c, {{"sync", {{"status", "Synced"}, {"revision", old}}},
                                 {"health", {{"status", "Degraded"}, {"message", "old"}}}})),
            RolloutVerdict::waiting)
      << "the previous commit's degradation is not this one's";
  auto degraded = application_state(app_with(c, {{"sync", {{"status", "Synced"}, {"revision", c}}},
                                                 {"health", {{"status", "Degraded"}, {"message", "crash looping"}}}}));
  EXPECT_EQ(argocd_verdict(degraded), RolloutVerdict::failed);
  EXPECT_EQ(degraded.message, "crash looping");
  auto failed_sync = application_state(app_with(
      c, {{"sync", {{"status", "OutOfSync"}, {"revision", c}}},
          {"operationState",
           {{"phase", "Failed"}, {"message", "one or more objects failed"}, {"syncResult", {{"revision", c}}}}},
          {"conditions", {{{"type", "SyncError"}, {"message", "Deployment.apps \"web\" is invalid"}}}}}));
  EXPECT_EQ(argocd_verdict(failed_sync), RolloutVerdict::failed);
  EXPECT_NE(failed_sync.message.find("sync Failed: one or more objects failed"), std::string::npos)
      << failed_sync.message;
  EXPECT_NE(failed_sync.message.find("SyncError: Deployment.apps \"web\" is invalid"), std::string::npos)
      << failed_sync.message;
  auto invalid = application_state(
      app_with(c, {{"conditions", {{{"type", "InvalidSpecError"}, {"message", "app path does not exist"}}}}}));
  EXPECT_EQ(argocd_verdict(invalid), RolloutVerdict::failed);
  // A branch target: Argo CD reports the commit it resolved, any one will do.
  EXPECT_EQ(verdict(app_with("main",
                             {{"sync", {{"status", "Synced"}, {"revision", c}}}, {"health", {{"status", "Healthy"}}}})),
            RolloutVerdict::done);
}

TEST(ArgoCdStatusTest, ObserveMapsHealthAndReportsDrift) {
  const std::string c = "0123456789abcdef0123456789abcdef01234567";
  auto observe = [&](const std::string& sync, const std::string& health) {
    return argocd_observation(application_state(app_with(c, {{"sync", {{"status", sync}, {"revision", c}}},
                                                             {"health", {{"status", health}}}})),
                              "pr-42", "argocd");
  };
  auto ok = observe("Synced", "Healthy");
  EXPECT_EQ(ok.health, Health::healthy);
  EXPECT_EQ(ok.status["application"], "argocd/pr-42");
  EXPECT_EQ(ok.status["revision"], c);
  EXPECT_EQ(ok.detail.find("drift"), std::string::npos) << ok.detail;
  auto drift = observe("OutOfSync", "Healthy");
  EXPECT_EQ(drift.health, Health::healthy) << "still serving";
  EXPECT_NE(drift.detail.find("drift"), std::string::npos) << drift.detail;
  EXPECT_EQ(drift.status["sync"], "OutOfSync");
  EXPECT_FALSE(drift.warnings.empty());
  EXPECT_EQ(observe("Synced", "Degraded").health, Health::unhealthy);
  EXPECT_EQ(observe("OutOfSync", "Missing").health, Health::unhealthy);
  EXPECT_EQ(observe("Synced", "Progressing").health, Health::unhealthy);
  EXPECT_EQ(observe("Synced", "Suspended").health, Health::stopped);
  EXPECT_EQ(observe("Unknown", "Unknown").health, Health::unknown);
}

TEST_F(KubernetesArgoCdTest, ApplyAppliesTheNamespaceObjectsAndTheApplicationAndWaitsForArgoCd) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  auto r = d->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  int applies = 0;
  bool read_after_apply = false;
  for (const auto& q : m_api.requests()) {
    applies += q.method == "PATCH";
    EXPECT_EQ(q.path.find("/deployments"), std::string::npos) << "idp does not apply the workload: " << q.path;
    read_after_apply =
        read_after_apply || (applies == 7 && q.method == "GET" &&
                             q.path == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/pr-42");
  }
  EXPECT_EQ(applies, 7);
  EXPECT_EQ(m_api.requests().size(), 10u) << "2 reads (namespace, Application), 7 applies, 1 status read";
  EXPECT_TRUE(read_after_apply) << "the sync is read back, not assumed";
  auto app = m_api.object("applications", "argocd", "pr-42");
  ASSERT_TRUE(app.has_value());
  EXPECT_EQ((*app)["spec"]["source"]["targetRevision"], spec.env.commit);
  EXPECT_EQ(r->outputs["application"], "argocd/pr-42");
  EXPECT_EQ(r->outputs["commit"], spec.env.commit);
  ASSERT_TRUE(m_api.object("secrets", "pr-42", "app-env").has_value());
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_EQ(obs->status["sync"], "Synced");
}

TEST_F(KubernetesArgoCdTest, ADegradedRedeployFailsWithArgoCdsMessageAndGoesBackToTheServingCommit) {
  m_api.fail_application_revision(k_bad_commit, "Deployment \"web\" exceeded its progress deadline");
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto bad = good;
  bad.env.commit = k_bad_commit;
  bad.revision_id = 2;
  auto r = d->apply(bad, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  std::string msg = r.error().full_message();
  EXPECT_NE(msg.find("health \"Degraded\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("Deployment \"web\" exceeded its progress deadline"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rolled the Application back to " + good.env.commit.substr(0, 12)), std::string::npos) << msg;
  EXPECT_EQ((*m_api.object("applications", "argocd", "pr-42"))["spec"]["source"]["targetRevision"], good.env.commit);
  auto obs = d->observe(good.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_F(KubernetesArgoCdTest, DriftIsReportedAndASyncThatNeverCompletesTimesOut) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  m_api.set_application_drift("argocd", "pr-42", true);
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_NE(obs->detail.find("drift"), std::string::npos) << obs->detail;
  auto r = d->apply(spec, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::timeout) << r.error().full_message();
  EXPECT_NE(r.error().message.find("did not sync"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("OutOfSync"), std::string::npos) << r.error().message;
  m_api.set_application_drift("argocd", "pr-42", false);
  auto healed = d->observe(spec.env);
  ASSERT_TRUE(healed.has_value());
  EXPECT_EQ(healed->detail.find("drift"), std::string::npos) << healed->detail;
}

TEST_F(KubernetesArgoCdTest, DestroyDeletesTheApplicationAndTheNamespaceAndWaitsForBoth) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  m_api.set_namespace_finalize_reads(2);
  m_api.clear_requests();
  ASSERT_TRUE(d->destroy(spec.env, m_progress).has_value());
  EXPECT_FALSE(m_api.object("applications", "argocd", "pr-42").has_value());
  EXPECT_FALSE(m_api.object("namespaces", "", "pr-42").has_value());
  std::vector<std::string> deletes;
  for (const auto& q : m_api.requests()) {
    if (q.method == "DELETE") {
      deletes.push_back(q.path);
    }
  }
  EXPECT_EQ(deletes, (std::vector<std::string>{"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/pr-42",
                                               "/api/v1/namespaces/pr-42"}));
  ASSERT_TRUE(d->destroy(spec.env, m_progress).has_value()) << "idempotent";
}

TEST_F(KubernetesArgoCdTest, TheOrphanSweepDeletesThisServersApplicationsWithoutEnvironment) {
  auto d = make_driver();
  auto a = testing::kube::sample_spec("pr-1");
  auto b = testing::kube::sample_spec("pr-2");
  ASSERT_TRUE(d->apply(a, m_progress).has_value());
  ASSERT_TRUE(d->apply(b, m_progress).has_value());
  m_api.put_object({{"apiVersion", "argoproj.io/v1alpha1"},
                    {"kind", "Application"},
                    {"metadata",
                     {{"name", "pr-3"},
                      {"namespace", "argocd"},
                      {"labels", {{"idp.dev/managed-by", "another-idp"}, {"idp.dev/environment", "pr-3"}}}}}});
  auto swept = d->sweep_orphans({a.env});
  ASSERT_TRUE(swept.has_value()) << swept.error().full_message();
  EXPECT_EQ(*swept, (std::vector<std::string>{"pr-2", "argocd/pr-2"}));
  EXPECT_TRUE((*m_api.object("applications", "argocd", "pr-2"))["metadata"].contains("deletionTimestamp"));
  EXPECT_FALSE((*m_api.object("applications", "argocd", "pr-1"))["metadata"].contains("deletionTimestamp"));
  EXPECT_TRUE(m_api.object("applications", "argocd", "pr-3").has_value());
}

TEST_F(KubernetesArgoCdTest, AnApplicationOfSomeoneElseIsNotTakenOverAndALocalRepositoryFailsThePlan) {
  m_api.put_object({{"apiVersion", "argoproj.io/v1alpha1"},
                    {"kind", "Application"},
                    {"metadata", {{"name", "pr-42"}, {"namespace", "argocd"}, {"labels", json::object()}}}});
  auto d = make_driver();
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::conflict);
  EXPECT_NE(r.error().message.find("Argo CD Application \"argocd/pr-42\" exists and is not managed"), std::string::npos)
      << r.error().message;
  auto local = testing::kube::sample_spec("pr-7");
  local.env.repo = m_tmp.sub("repo");
  auto plan = d->plan(local);
  ASSERT_FALSE(plan.has_value());
  EXPECT_EQ(plan.error().code, ErrorCode::invalid_config);
  EXPECT_NE(plan.error().message.find("not a URL Argo CD can pull"), std::string::npos) << plan.error().message;
  EXPECT_TRUE(make_driver({{"mode", "direct"}})->plan(local).has_value()) << "direct mode needs no URL";
}

TEST(KubernetesArgoCdOptionsTest, ModeAndArgoCdOptionsAreChecked) {
  const auto& f = kubernetes_driver_factory();
  auto mode = f.check_options({{"mode", "flux"}});
  ASSERT_FALSE(mode.has_value());
  EXPECT_NE(mode.error().message.find("option \"mode\": expected direct or argocd"), std::string::npos)
      << mode.error().message;
  auto path = f.check_options({{"argocd_path", "../secrets"}});
  ASSERT_FALSE(path.has_value());
  EXPECT_NE(path.error().message.find("option \"argocd_path\": expected a relative directory"), std::string::npos)
      << path.error().message;
  auto creds = f.check_options({{"argocd_repo_url", "https://bot:tok@github.com/acme/deploy.git"}});
  ASSERT_FALSE(creds.has_value());
  EXPECT_NE(creds.error().message.find("expected a URL without credentials"), std::string::npos)
      << creds.error().message;
  EXPECT_EQ(creds.error().message.find("tok@"), std::string::npos) << "the credential is not repeated";
  EXPECT_TRUE(f.check_options({{"mode", "argocd"},
                               {"argocd_namespace", "gitops"},
                               {"argocd_project", "previews"},
                               {"argocd_path", "deploy/k8s"},
                               {"argocd_repo_url", "https://github.com/acme/deploy.git"}})
                  .has_value());
}

} // namespace
} // namespace idp::drivers::kubernetes
