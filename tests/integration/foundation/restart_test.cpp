// Issue 16, point 8: a server restart is not a crash. A clean stop (SIGTERM) and a new
// `idp serve` on the same home start the same revision again: no `degraded` event, no new
// revision; with --keep-running the app process survives and is adopted. A real crash of
// the app (kill -9) still shows as degraded and is restarted.
// Real idp serve, real git, real processes, real Caddy.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/numbers.hpp"
#include "util/proc.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// "from->to" of every phase event of `env`, oldest first.
std::vector<std::string> restart_test_transitions(const DaemonProcess& d, const std::string& env) {
  auto [status, body] = d.api("GET", "/api/v1/environments/" + env + "/events");
  std::vector<std::string> out;
  if (status != 200 || !body.is_object()) {
    return out;
  }
  for (const auto& ev : body["events"]) {
    if (ev.value("action", "") == "phase") {
      out.push_back(ev.value("from_phase", "") + "->" + ev.value("to_phase", ""));
    }
  }
  return out;
}

std::string restart_test_events_text(const DaemonProcess& d, const std::string& env) {
  auto [status, body] = d.api("GET", "/api/v1/environments/" + env + "/events");
  return body.dump(2);
}

// Ids of the environment's revisions, newest first.
std::vector<int64_t> restart_test_revision_ids(const DaemonProcess& d, const std::string& env) {
  std::vector<int64_t> ids;
  json e = d.env(env);
  if (e.is_object() && e.contains("revisions")) {
    for (const auto& r : e["revisions"]) {
      ids.push_back(r.value("id", int64_t{0}));
    }
  }
  return ids;
}

pid_t restart_test_app_pid(const DaemonProcess& d, const std::string& env) {
  json e = d.env(env);
  if (!e.is_object() || !e["outputs"].is_object()) {
    return 0;
  }
  return e["outputs"].value("pid", 0);
}

bool restart_test_serves(const DaemonProcess& d, const std::string& env) {
  return wait_until([&] { return d.get_via_router(env, "/health").first == 200; }, 60000, 50);
}

} // namespace

class RestartTest : public ::testing::Test {
protected:
  RestartTest() : tmp("idp-restart") { (void)util::ensure_dir(tmp.sub("home")); }

  // Creates preview-restart from the api-service example; returns its revision ids.
  std::vector<int64_t> create_env(DaemonProcess& d) {
    repo = std::make_unique<GitRepo>(make_example_repo(tmp.sub("app"), "api-service", "feature/restart"));
    auto created = d.cli({"create", "--repo", repo->path(), "--branch", "feature/restart"});
    EXPECT_EQ(created.exit_code, 0) << created.err << d.log();
    EXPECT_TRUE(restart_test_serves(d, "preview-restart"));
    return restart_test_revision_ids(d, "preview-restart");
  }

  TempDir tmp;
  std::unique_ptr<GitRepo> repo;
};

TEST_F(RestartTest, CleanStopAndStartRunsTheSameRevisionAgain) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  auto revs = create_env(d);
  ASSERT_EQ(revs.size(), 1u);
  pid_t before = restart_test_app_pid(d, "preview-restart");
  ASSERT_GT(before, 0);
  auto transitions = restart_test_transitions(d, "preview-restart");

  ASSERT_EQ(d.stop(), 0);
  EXPECT_FALSE(util::process_alive(before)) << "without --keep-running a stop stops the app";
  d.start();
  // The new app's pid first, then an empty message: the router can reach the new app before
  // the daemon's health check has seen it and recorded its pid (it failed so at load 20).
  ASSERT_TRUE(wait_until(
      [&] {
        pid_t now = restart_test_app_pid(d, "preview-restart");
        return now > 0 && now != before;
      },
      60000, 50))
      << "the app was started again\n"
      << d.log();
  ASSERT_TRUE(restart_test_serves(d, "preview-restart")) << d.log();
  ASSERT_TRUE(wait_until([&] { return d.env("preview-restart")["message"] == ""; }, 60000, 50))
      << d.env("preview-restart").dump();
  EXPECT_EQ(d.env("preview-restart")["phase"], "ready");
  EXPECT_EQ(restart_test_revision_ids(d, "preview-restart"), revs) << "the same revision, not a new one";
  EXPECT_EQ(restart_test_transitions(d, "preview-restart"), transitions)
      << "no phase change at all (no degraded):\n"
      << restart_test_events_text(d, "preview-restart");
  json e = d.env("preview-restart");
  EXPECT_EQ(e["revisions"][0]["status"], "serving");
  EXPECT_EQ(e["message"], "");
}

TEST_F(RestartTest, KeepRunningAdoptsTheRunningApp) {
  DaemonProcess d(tmp.sub("home"), {"--keep-running"});
  d.start();
  auto revs = create_env(d);
  ASSERT_EQ(revs.size(), 1u);
  pid_t before = restart_test_app_pid(d, "preview-restart");
  ASSERT_GT(before, 0);
  auto transitions = restart_test_transitions(d, "preview-restart");

  ASSERT_EQ(d.stop(), 0);
  EXPECT_TRUE(util::process_alive(before)) << "--keep-running leaves the app running";
  d.start();
  ASSERT_TRUE(restart_test_serves(d, "preview-restart")) << d.log();
  EXPECT_EQ(restart_test_app_pid(d, "preview-restart"), before) << "the running app is adopted";
  EXPECT_TRUE(util::process_alive(before));
  EXPECT_EQ(d.env("preview-restart")["phase"], "ready");
  EXPECT_EQ(restart_test_revision_ids(d, "preview-restart"), revs);
  EXPECT_EQ(restart_test_transitions(d, "preview-restart"), transitions)
      << restart_test_events_text(d, "preview-restart");
}

TEST_F(RestartTest, AppCrashAfterARestartIsStillACrash) {
  DaemonProcess d(tmp.sub("home"), {"--health-interval", "1s"});
  d.start();
  auto revs = create_env(d);
  ASSERT_EQ(d.stop(), 0);
  d.start();
  ASSERT_TRUE(restart_test_serves(d, "preview-restart")) << d.log();
  ASSERT_TRUE(wait_until([&] { return restart_test_app_pid(d, "preview-restart") > 0; }, 60000, 50));
  pid_t app = restart_test_app_pid(d, "preview-restart");
  ASSERT_EQ(::kill(app, SIGKILL), 0);
  // The crash shows: ready -> degraded, and the restart is a new revision.
  ASSERT_TRUE(wait_until(
      [&] {
        auto t = restart_test_transitions(d, "preview-restart");
        return std::find(t.begin(), t.end(), "ready->degraded") != t.end();
      },
      60000, 50))
      << restart_test_events_text(d, "preview-restart") << d.log();
  ASSERT_TRUE(
      wait_until([&] { return restart_test_revision_ids(d, "preview-restart").size() == revs.size() + 1; }, 60000, 50));
  ASSERT_TRUE(d.wait_phase("preview-restart", "ready", 60000));
  EXPECT_NE(restart_test_app_pid(d, "preview-restart"), app);
  auto [status, body] = d.api("GET", "/api/v1/environments/preview-restart/events");
  bool killed = false;
  for (const auto& ev : body["events"]) {
    killed = killed || ev.value("reason", "").find("signal 9") != std::string::npos;
  }
  EXPECT_TRUE(killed) << "the reason names the signal:\n" << body.dump(2);
}

// Issue 14, the local driver's router_mode "lookup": Caddy asks the daemon where every
// request goes, so it cannot route while the daemon is down. A request that arrives then
// is held (Caddy asks again) and answered by the app once the restarted daemon answers;
// the environment was never stopped. The API keeps its port (a fixed --listen, as the
// default 127.0.0.1:8787 does).
TEST_F(RestartTest, LookupRouterHoldsRequestsWhileTheDaemonRestartsAfterKill9) {
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "drivers:\n  local:\n    router_mode: lookup\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.listen = "127.0.0.1:" + std::to_string(*util::find_free_port());
  d.start();
  create_env(d);
  pid_t app = restart_test_app_pid(d, "preview-restart");
  ASSERT_GT(app, 0);

  d.kill9();
  ASSERT_FALSE(d.router_processes().empty()) << "Caddy outlives the daemon";
  // Sent while the daemon is down (its restart below takes far longer than sending).
  util::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(d.router_port()) + "/health";
  req.headers = {{"Host", "preview-restart.preview.localhost:" + std::to_string(d.router_port())}};
  req.timeout_ms = 30000;
  Expected<util::HttpResponse> held = Unexpected(Error{ErrorCode::transient, "not sent"});
  std::thread client([&] { held = util::http_request(req); });
  d.start();
  client.join();
  ASSERT_TRUE(held.has_value()) << held.error().message << d.log();
  EXPECT_EQ(held->status, 200) << held->body << d.log();
  EXPECT_NE(held->body.find("api-service-demo"), std::string::npos) << "the app's answer: " << held->body;
  EXPECT_EQ(restart_test_app_pid(d, "preview-restart"), app) << "the app ran on: only the daemon restarted";
  d.cli({"destroy", "preview-restart"});
}
