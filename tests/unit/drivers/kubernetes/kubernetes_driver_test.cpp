// The Kubernetes driver's lifecycle against the API-server double: apply with server-side
// apply and a rollout wait, rollback of a rollout that never completes, destroy waiting
// for the namespace, the orphan sweep, and what it refuses.

#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::kubernetes {

using KubeRecordingProgress = testing::kube::RecordingProgress;

class KubernetesDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_api.fail_pods_with_image("never-ready", "CrashLoopBackOff");
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    return testing::kube::make_driver(m_tmp.sub("home"), m_kubeconfig, std::move(extra));
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
  ASSERT_EQ(m_progress.statuses.size(), 1u);
  EXPECT_EQ(m_progress.statuses[0], "starting: rolling out revision 1 to namespace pr-42")
      << "the engine marks it serving once apply returns";
  auto ns = m_api.object("namespaces", "", "pr-42");
  ASSERT_TRUE(ns.has_value());
  EXPECT_EQ((*ns)["metadata"]["labels"]["idp.dev/managed-by"], "idp");
  auto secret = testing::kube::env_secret(m_api, "pr-42");
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ((*secret)["metadata"]["name"].get<std::string>().rfind("app-env-", 0), 0u) << secret->dump();
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
  ASSERT_FALSE(m_progress.statuses.empty());
  EXPECT_EQ(m_progress.statuses.back().rfind("failed: ", 0), 0u) << m_progress.statuses.back();
  EXPECT_NE(m_progress.statuses.back().find("CrashLoopBackOff"), std::string::npos) << m_progress.statuses.back();
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");
  auto obs = d->observe(good.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << "the old pods kept serving: " << obs->detail;
}

// A rollout cancelled halfway (a newer push, a server stop) leaves the Deployment on a
// template that never served: a later failed rollout goes back to the one that did.
TEST_F(KubernetesDriverTest, AFailedRolloutAfterACancelledOneGoesBackToTheTemplateThatServed) {
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto image_now = [&] {
    auto dep = m_api.object("deployments", "pr-42", "web");
    return dep ? (*dep)["spec"]["template"]["spec"]["containers"][0].value("image", "") : std::string();
  };
  std::string good_image = image_now();
  ASSERT_EQ(good_image, "registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");

  auto second = good;
  second.revision_id = 2;
  second.config.container_image = "registry.example.com/never-ready:2";
  KubeRecordingProgress cancelling;
  cancelling.cancel_at = "waiting for the rollout";
  auto r2 = d->apply(second, cancelling);
  ASSERT_FALSE(r2.has_value());
  ASSERT_EQ(r2.error().code, ErrorCode::cancelled) << r2.error().full_message();
  ASSERT_EQ(image_now(), "registry.example.com/never-ready:2") << "the cancelled rollout left its template";

  // A new driver (as after a restart) rolls out revision 3, which fails too.
  auto d2 = make_driver();
  auto third = good;
  third.revision_id = 3;
  third.config.container_image = "registry.example.com/never-ready:3";
  auto r3 = d2->apply(third, m_progress);
  ASSERT_FALSE(r3.has_value());
  const std::string& msg = r3.error().full_message();
  EXPECT_NE(msg.find("rollout of revision 3 did not complete"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rolled back to the pod template of revision 1"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("pod template of revision 2"), std::string::npos)
      << "not to revision 2's, which never served: " << msg;
  EXPECT_EQ(image_now(), good_image);
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["metadata"]["annotations"].value("idp.dev/revision", ""), "1");
  auto obs = d2->observe(good.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;

  // And the next good revision rolls out over the rolled-back one.
  auto fourth = good;
  fourth.revision_id = 4;
  fourth.config.container_image = "registry.example.com/shop:4";
  ASSERT_TRUE(d2->apply(fourth, m_progress).has_value());
  EXPECT_EQ(image_now(), "registry.example.com/shop:4");
}

// The variables go back with the pod template: each set is its own Secret, so a rollback
// does not leave the old pods to restart with the failed revision's variables. Secrets no
// template uses any more are deleted after a rollout that succeeds.
TEST_F(KubernetesDriverTest, ARollbackBringsBackTheVariablesAndUnusedVariableSecretsArePruned) {
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto first = testing::kube::env_secret(m_api, "pr-42");
  ASSERT_TRUE(first.has_value());
  std::string s1 = (*first)["metadata"]["name"];
  auto log_level = [&] {
    auto s = testing::kube::env_secret(m_api, "pr-42");
    return s ? util::base64_decode((*s)["data"]["LOG_LEVEL"].get<std::string>()).value_or("") : std::string();
  };
  ASSERT_EQ(log_level(), "debug");

  auto bad = good;
  bad.revision_id = 2;
  bad.config.environment["LOG_LEVEL"] = "info";
  bad.config.container_image = "registry.example.com/never-ready:2";
  ASSERT_FALSE(d->apply(bad, m_progress).has_value());
  EXPECT_EQ(log_level(), "debug") << "the old template's pods read the old variables";
  EXPECT_EQ((*testing::kube::env_secret(m_api, "pr-42"))["metadata"]["name"], s1);
  std::string s2;
  for (const auto& s : m_api.objects("secrets")) {
    std::string name = s["metadata"]["name"];
    if (name != s1 && is_env_secret_name(name)) {
      s2 = name;
    }
  }
  ASSERT_FALSE(s2.empty()) << "the failed revision's Secret was applied";

  m_api.put_object({{"apiVersion", "v1"},
                    {"kind", "Secret"},
                    {"metadata",
                     {{"name", "app-env-theirs"},
                      {"namespace", "pr-42"},
                      {"labels", {{"idp.dev/environment", "pr-42"}, {"idp.dev/managed-by", "another-idp"}}}}}});
  auto next = good;
  next.revision_id = 3;
  next.config.environment["LOG_LEVEL"] = "warn";
  ASSERT_TRUE(d->apply(next, m_progress).has_value());
  EXPECT_EQ(log_level(), "warn");
  std::string s3 = (*testing::kube::env_secret(m_api, "pr-42"))["metadata"]["name"];
  EXPECT_FALSE(m_api.object("secrets", "pr-42", s2).has_value()) << "no template uses the failed revision's";
  EXPECT_TRUE(m_api.object("secrets", "pr-42", s1).has_value()) << "the template that served before is kept";
  EXPECT_TRUE(m_api.object("secrets", "pr-42", s3).has_value());
  EXPECT_TRUE(m_api.object("secrets", "pr-42", "app-env-theirs").has_value()) << "not managed by this server";
}

// The Deployment took the new template, then an object after it was refused: the apply
// fails and the Deployment goes back, so the cluster does not roll out a revision the
// environment says it does not serve.
TEST_F(KubernetesDriverTest, AnApplyThatFailsAfterTheDeploymentPutsTheServingTemplateBack) {
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto next = good;
  next.revision_id = 2;
  next.config.container_image = "registry.example.com/shop:2";
  m_api.fail("PATCH", "/ingresses/web", 422, 1);
  auto r = d->apply(next, m_progress);
  ASSERT_FALSE(r.has_value());
  const std::string& msg = r.error().full_message();
  EXPECT_NE(msg.find("422"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rolled back to the pod template of revision 1"), std::string::npos) << msg;
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/shop:0123456789abcdef0123456789abcdef01234567");
  int patches = 0;
  for (const auto& q : m_api.requests()) {
    patches += q.method == "PATCH" && q.path == "/apis/apps/v1/namespaces/pr-42/deployments/web";
  }
  EXPECT_EQ(patches, 3) << "revision 1, revision 2, and the way back";
  // The retry applies it whole.
  ASSERT_TRUE(d->apply(next, m_progress).has_value());
  dep = m_api.object("deployments", "pr-42", "web");
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/shop:2");
}

TEST_F(KubernetesDriverTest, ARedeployOverATemplateThatNeverServedSaysThereIsNothingToRollBackTo) {
  auto d = make_driver();
  auto first = testing::kube::sample_spec();
  first.config.container_image = "registry.example.com/never-ready:1";
  auto r1 = d->apply(first, m_progress);
  ASSERT_FALSE(r1.has_value());
  EXPECT_EQ(r1.error().full_message().find("rolled back"), std::string::npos) << r1.error().full_message();
  auto second = first;
  second.revision_id = 2;
  second.config.container_image = "registry.example.com/never-ready:2";
  auto r2 = d->apply(second, m_progress);
  ASSERT_FALSE(r2.has_value());
  EXPECT_NE(r2.error().full_message().find("not rolled back: no pod template of this environment is known to have "
                                           "served"),
            std::string::npos)
      << r2.error().full_message();
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/never-ready:2");
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

// idp logs --follow reads again and again with the cursor of the last read: each line
// comes exactly once, also lines of the same millisecond and lines that arrive between
// two reads within one second (sinceTime has second precision).
TEST_F(KubernetesDriverTest, ReadingOnFromTheCursorGivesEachLineOnce) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  auto first = d->read_logs(spec.env, {});
  ASSERT_TRUE(first.has_value()) << first.error().full_message();
  ASSERT_EQ(first->lines.size(), 1u);
  ASSERT_FALSE(first->cursor.empty());

  util::Millis later = util::SystemClock().now_ms() + 60000;
  std::string t1 = util::format_iso8601(later / 1000 * 1000).insert(19, ".123456789");
  m_api.append_log("pr-42", t1, "request 1");
  m_api.append_log("pr-42", t1, "request 2");
  auto second = d->read_logs(spec.env, {.cursor = first->cursor});
  ASSERT_TRUE(second.has_value()) << second.error().full_message();
  ASSERT_EQ(second->lines.size(), 2u);
  EXPECT_EQ(second->lines[0].text, "request 1");
  EXPECT_EQ(second->lines[1].text, "request 2");

  auto idle = d->read_logs(spec.env, {.cursor = second->cursor});
  ASSERT_TRUE(idle.has_value());
  EXPECT_TRUE(idle->lines.empty()) << "nothing new: nothing again";
  EXPECT_EQ(idle->cursor, second->cursor);

  m_api.append_log("pr-42", t1, "request 3"); // the same millisecond as the two before
  auto third = d->read_logs(spec.env, {.cursor = idle->cursor});
  ASSERT_TRUE(third.has_value());
  ASSERT_EQ(third->lines.size(), 1u);
  EXPECT_EQ(third->lines[0].text, "request 3");
  bool asked_since = false;
  for (const auto& q : m_api.requests()) {
    asked_since =
        asked_since ||
        (q.path.find("/log") != std::string::npos &&
         q.query.find("sinceTime=" + util::url_encode(util::format_iso8601(later / 1000 * 1000))) != std::string::npos);
  }
  EXPECT_TRUE(asked_since) << "the server is asked from the cursor's second on, not for the whole log";

  auto bad = d->read_logs(spec.env, {.cursor = "yesterday"});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
}

// A pod with an init container and a sidecar: `idp logs` reads every container, each line
// tagged with its container ("stdout" for the app's own), in time order.
TEST_F(KubernetesDriverTest, ReadLogsReadsEveryContainerOfEveryPodTaggedByContainer) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  std::string started = util::format_iso8601(util::SystemClock().now_ms() / 1000 * 1000 - 60000);
  json pod = {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", "web-extra"}, {"namespace", "pr-42"}, {"labels", {{"idp.dev/environment", "pr-42"}}}}},
      {"spec",
       {{"initContainers", json::array({{{"name", "migrate"}, {"image", "registry.example.com/migrate:1"}}})},
        {"containers", json::array({{{"name", "app"}, {"image", "registry.example.com/shop:1"}},
                                    {{"name", "proxy"}, {"image", "registry.example.com/proxy:1"}}})}}},
      {"status",
       {{"phase", "Running"},
        {"initContainerStatuses",
         json::array({{{"name", "migrate"},
                       {"ready", true},
                       {"state", {{"terminated", {{"exitCode", 0}, {"startedAt", started}}}}}}})},
        {"containerStatuses",
         json::array({{{"name", "app"}, {"ready", true}, {"state", {{"running", {{"startedAt", started}}}}}},
                      {{"name", "proxy"}, {"ready", true}, {"state", {{"running", {{"startedAt", started}}}}}}})}}}};
  m_api.put_object(pod);
  std::string t = util::format_iso8601(util::SystemClock().now_ms() / 1000 * 1000 - 30000);
  m_api.append_log("pr-42", t, "2 migrations applied", "migrate");
  m_api.append_log("pr-42", t, "proxy: upstream up", "proxy");
  auto logs = d->read_logs(spec.env, {});
  ASSERT_TRUE(logs.has_value()) << logs.error().full_message();
  std::map<std::string, std::string> by_text;
  for (const auto& l : logs->lines) {
    by_text[l.text] = l.stream;
  }
  EXPECT_EQ(by_text["2 migrations applied"], "migrate");
  EXPECT_EQ(by_text["proxy: upstream up"], "proxy");
  EXPECT_EQ(by_text["listening with image registry.example.com/proxy:1"], "proxy");
  EXPECT_EQ(by_text["listening with image registry.example.com/shop:1"], "stdout") << "the app's own lines stay stdout";
  EXPECT_EQ(by_text["listening with image registry.example.com/migrate:1"], "migrate");
  for (size_t i = 1; i < logs->lines.size(); ++i) {
    EXPECT_LE(logs->lines[i - 1].at, logs->lines[i].at) << "lines of all containers in time order";
  }
  int container_queries = 0;
  for (const auto& q : m_api.requests()) {
    if (q.path == "/api/v1/namespaces/pr-42/pods/web-extra/log") {
      ++container_queries;
      EXPECT_NE(q.query.find("container="), std::string::npos)
          << "a pod of several containers needs the name: " << q.query;
    }
  }
  EXPECT_EQ(container_queries, 3) << "one read per container";
}

// The API-server double answers the log endpoint as a real server does: a pod of several
// containers needs the container's name, and a name the pod does not have is refused.
TEST_F(KubernetesDriverTest, TheDoublesLogEndpointRefusesAMissingOrUnknownContainer) {
  auto d = make_driver();
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  m_api.put_object(
      {{"apiVersion", "v1"},
       {"kind", "Pod"},
       {"metadata", {{"name", "two"}, {"namespace", "pr-42"}}},
       {"spec", {{"containers", json::array({{{"name", "a"}}, {{"name", "b"}}})}}},
       {"status", {{"containerStatuses", json::array({{{"name", "a"}, {"state", {{"running", json::object()}}}}})}}}});
  auto get = [&](const std::string& query) {
    util::HttpRequest q;
    q.url = m_api.url() + "/api/v1/namespaces/pr-42/pods/two/log" + query;
    q.headers = {{"Authorization", "Bearer t"}};
    return util::http_request(q);
  };
  auto none = get("");
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->status, 400);
  EXPECT_NE(none->body.find("a container name must be specified for pod two, choose one of: [a b]"), std::string::npos)
      << none->body;
  auto unknown = get("?container=c");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->status, 400);
  EXPECT_NE(unknown->body.find("container c is not valid for pod two"), std::string::npos) << unknown->body;
  auto waiting = get("?container=b");
  ASSERT_TRUE(waiting.has_value());
  EXPECT_EQ(waiting->status, 400) << "b has no status: not started";
  auto ok = get("?container=a");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << ok->body;
}

// `idp status` shows what `kubectl get pods` and `kubectl get events` would: each pod's
// readiness, status and restarts with the waiting container's reason, and the namespace's
// newest events; a namespace this server does not hold is said, not an error.
TEST_F(KubernetesDriverTest, DescribeShowsThePodsAndTheNamespacesEvents) {
  auto d = make_driver();
  auto good = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(good, m_progress).has_value());
  auto healthy = d->describe(good.env);
  ASSERT_TRUE(healthy.has_value()) << healthy.error().full_message();
  EXPECT_EQ((*healthy)["namespace"], "pr-42");
  ASSERT_EQ((*healthy)["pods"].size(), 1u) << healthy->dump(2);
  const json& p = (*healthy)["pods"][0];
  EXPECT_EQ(p["status"], "Running");
  EXPECT_EQ(p["ready"], "1/1");
  EXPECT_EQ(p["restarts"], 0);
  std::set<std::string> reasons;
  for (const auto& ev : (*healthy)["events"]) {
    reasons.insert(ev["reason"].get<std::string>());
    EXPECT_EQ(ev["object"].get<std::string>().rfind("Pod/", 0), 0u) << ev.dump();
  }
  EXPECT_TRUE(reasons.count("Scheduled") && reasons.count("Started")) << healthy->dump(2);

  auto bad = testing::kube::sample_spec("pr-7");
  bad.config.container_image = "registry.example.com/never-ready:1";
  ASSERT_FALSE(d->apply(bad, m_progress).has_value());
  auto failing = d->describe(bad.env);
  ASSERT_TRUE(failing.has_value()) << failing.error().full_message();
  ASSERT_FALSE((*failing)["pods"].empty()) << failing->dump(2);
  const json& fp = (*failing)["pods"][0];
  EXPECT_EQ(fp["status"], "CrashLoopBackOff");
  EXPECT_EQ(fp["ready"], "0/1");
  EXPECT_EQ(fp["restarts"], 3);
  ASSERT_EQ(fp["containers"].size(), 1u);
  EXPECT_EQ(fp["containers"][0]["state"], "waiting");
  bool warning = false;
  bool backoff = false;
  for (const auto& ev : (*failing)["events"]) {
    warning = warning || ev["type"] == "Warning";
    backoff = backoff ||
              (ev["reason"] == "BackOff" &&
               ev["message"].get<std::string>().find("Back-off restarting failed container app") != std::string::npos);
  }
  EXPECT_TRUE(warning && backoff) << failing->dump(2);

  auto gone = testing::kube::sample_spec("pr-404");
  auto none = d->describe(gone.env);
  ASSERT_TRUE(none.has_value()) << none.error().full_message();
  EXPECT_TRUE((*none)["pods"].empty());
  EXPECT_NE((*none).value("note", "").find("no namespace \"pr-404\""), std::string::npos) << none->dump(2);
}

// Issue 11's budget: no request per idle environment beyond one watch. observe answers
// from the watch of this server's Deployments; a change behind the driver's back reaches
// it through the watch.
TEST_F(KubernetesDriverTest, AnIdleEnvironmentIsObservedFromTheWatchWithoutARequest) {
  auto d = make_driver();
  ASSERT_TRUE(d->start({}).has_value());
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  ASSERT_TRUE(testing::wait_until([&] { return d->watch_synced(); }, 10000));
  auto requests_but_watches = [&] {
    int n = 0;
    for (const auto& q : m_api.requests()) {
      n += q.query.find("watch=true") == std::string::npos;
    }
    return n;
  };
  // Once the watch has seen the rollout, observing costs nothing.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        m_api.clear_requests();
        auto o = d->observe(spec.env);
        return o.has_value() && o->health == Health::healthy && requests_but_watches() == 0;
      },
      10000));
  m_api.clear_requests();
  for (int i = 0; i < 50; ++i) {
    auto o = d->observe(spec.env);
    ASSERT_TRUE(o.has_value()) << o.error().full_message();
    EXPECT_EQ(o->health, Health::healthy) << o->detail;
    EXPECT_EQ(o->status["namespace"], "pr-42");
  }
  EXPECT_EQ(requests_but_watches(), 0) << "50 observes of an idle environment made no request";

  // The Deployment is deleted behind the driver's back: the watch tells it.
  auto conn = load_kubeconfig({m_kubeconfig});
  ASSERT_TRUE(conn.has_value());
  util::SystemClock clock;
  KubeClient other(*conn, &clock, 5000);
  ASSERT_TRUE(other.remove(*find_kind("apps/v1", "Deployment"), "pr-42", "web").has_value());
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto o = d->observe(spec.env);
        return o.has_value() && o->health == Health::not_running;
      },
      10000))
      << "a deleted Deployment is not healthy for long";
  d->stop(false);
  EXPECT_FALSE(d->watch_synced()) << "stop ends the watch";
  auto after = d->observe(spec.env);
  ASSERT_TRUE(after.has_value()) << "without the watch, observe reads the cluster";
  EXPECT_EQ(after->health, Health::not_running);
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

// A stand-in for kubectl (the double cannot upgrade a connection to an exec stream): it
// records its argv, one argument a line, and answers on both streams with exit code 3.
std::string write_fake_kubectl(const std::string& dir) {
  std::string path = dir + "/kubectl";
  std::ofstream(path) << "#!/bin/sh\n"
                         "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$(dirname \"$0\")/argv\"\n"
                         "echo out-line\necho err-line >&2\nexit 3\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

TEST_F(KubernetesDriverTest, ExecRunsKubectlExecWithTheCommandAsArgumentsNeverThroughAShell) {
  std::string kubectl = write_fake_kubectl(m_tmp.path());
  auto d = make_driver({{"kubectl", kubectl}, {"context", "test"}});
  auto env = testing::kube::sample_spec().env;
  std::vector<std::string> argv = {"sh", "-c", "echo $HOME; rm -rf /", "it's \"quoted\""};
  auto r = d->exec(env, argv);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ((*r)["exit_code"], 3);
  EXPECT_EQ((*r)["stdout"], "out-line\n");
  EXPECT_EQ((*r)["stderr"], "err-line\n");
  std::vector<std::string> want = {"--kubeconfig", m_kubeconfig,     "--context",   "test", "exec",    "--namespace",
                                   "pr-42",        "deployment/web", "--container", "app",  "--stdin", "--"};
  want.insert(want.end(), argv.begin(), argv.end());
  auto recorded = util::read_file(m_tmp.sub("argv"));
  ASSERT_TRUE(recorded.has_value());
  std::string lines = *recorded;
  if (!lines.empty() && lines.back() == '\n') {
    lines.pop_back();
  }
  EXPECT_EQ(util::split(lines, '\n'), want);

  // A session: the same command with a terminal, its output read as it comes.
  ExecRequest req;
  req.argv = {"printenv"};
  req.tty = true;
  auto p = d->start_exec(env, req);
  ASSERT_TRUE(p.has_value()) << p.error().full_message();
  std::string out;
  std::optional<std::pair<int, int>> status;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        for (auto& [stream, data] : (*p)->read(50)) {
          out += data;
        }
        status = (*p)->poll_exit();
        return status.has_value() && (*p)->output_done();
      },
      10000));
  EXPECT_EQ(status->first, 3);
  EXPECT_NE(out.find("out-line"), std::string::npos) << out;
  auto tty_argv = util::read_file(m_tmp.sub("argv"));
  ASSERT_TRUE(tty_argv.has_value());
  EXPECT_NE(tty_argv->find("--stdin\n--tty\n--\nprintenv\n"), std::string::npos) << *tty_argv;
}

TEST_F(KubernetesDriverTest, ExecSaysWhyItCannotRun) {
  auto without = make_driver({{"kubectl", m_tmp.sub("no-kubectl-here")}});
  auto env = testing::kube::sample_spec().env;
  auto r = without->exec(env, {"ls"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("install kubectl, or set drivers.kubernetes.kubectl"), std::string::npos)
      << r.error().message;
  auto d = make_driver({{"kubectl", write_fake_kubectl(m_tmp.path())}});
  auto empty = d->exec(env, {});
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("exec needs a command"), std::string::npos);
  auto job = env;
  job.template_name = "scheduled-worker";
  auto worker = d->exec(job, {"ls"});
  ASSERT_FALSE(worker.has_value());
  EXPECT_NE(worker.error().message.find("scheduled worker"), std::string::npos) << worker.error().message;
  EXPECT_FALSE(util::path_exists(m_tmp.sub("argv"))) << "kubectl never ran";
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
