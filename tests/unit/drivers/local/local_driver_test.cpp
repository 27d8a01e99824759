#include "drivers/local/local_driver.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <future>
#include <gtest/gtest.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "drivers/local/local_driver_factory.hpp"
#include "drivers/local/processes.hpp"
#include "local_test_support.hpp"
#include "util/fs.hpp"
#include "util/ports.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::GitRepo;
using idp::testing::TempDir;
using idp::testing::wait_until;
using testing::make_spec;
using testing::RecordingProgress;
using testing::status_via_router;

constexpr int k_wait_ms = 30000;

// The example's server.js with its default version replaced.
std::string server_js_version(const std::string& version) {
  std::string js = *util::read_file(idp::testing::source_dir() + "/examples/api-service/server.js");
  auto at = js.find("|| 'v1'");
  return js.replace(at, 7, "|| '" + version + "'");
}

bool cgroup_v1_writable() {
  return ::access("/sys/fs/cgroup/cpu/cgroup.procs", W_OK) == 0 &&
         ::access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0 &&
         !util::path_exists("/sys/fs/cgroup/cgroup.controllers");
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Warnings other than the one every environment of a driver without isolation carries.
std::vector<std::string> other_warnings(const std::vector<std::string>& warnings) {
  std::vector<std::string> out;
  for (const auto& w : warnings) {
    if (!util::starts_with(w, "apps are not isolated: ")) {
      out.push_back(w);
    }
  }
  return out;
}

class LocalDriverTest : public ::testing::Test {
protected:
  TempDir home{"idp-local-home"};
  // Before the driver: destroyed after it, so whatever the test's outcome (a failure, a
  // throw, a router left detached) nothing of the home keeps running.
  testing::HomeProcessReaper reaper{home.path()};
  TempDir work{"idp-local-work"};
  GitRepo repo = idp::testing::make_example_repo(work.sub("repo"));
  DriverContext ctx;
  std::unique_ptr<LocalDriver> driver;

  void SetUp() override { start_driver(); }

  void start_driver(nlohmann::json options = nlohmann::json::object(), std::vector<core::Environment> live = {}) {
    // These tests' apps signal the test through files in its work directory, which an
    // isolated uid cannot write; isolation has its own tests (IsolatedEnvironment… and
    // tests/security/isolation_test.cpp).
    if (!options.contains("isolation")) {
      options["isolation"] = "off";
    }
    if (ctx.home.empty()) {
      ctx = testing::make_context(home.path(), options);
    } else {
      ctx.options = options;
    }
    auto opts = LocalOptions::parse(ctx.options);
    ASSERT_TRUE(opts.has_value()) << opts.error().message;
    driver.reset(); // one router per home at a time
    driver = std::make_unique<LocalDriver>(ctx, *opts);
    auto started = driver->start(live);
    ASSERT_TRUE(started.has_value()) << started.error().message;
  }

  void TearDown() override {
    std::string id = home_id_for(home.path());
    if (driver) {
      RecordingProgress p;
      for (const auto& e : list_envs()) {
        core::Environment env;
        env.name = e;
        EXPECT_TRUE(driver->destroy(env, p).has_value());
      }
      driver->stop(false); // and the PostgreSQL cluster, when a test started one
      driver.reset();
    }
    EXPECT_TRUE(find_marked_processes(id).empty()) << "the test left processes behind";
    EXPECT_TRUE(testing::processes_of_home(home.path()).empty())
        << "the test left processes of its home running (router, PostgreSQL)";
    reaper.stop_all();
  }

  std::vector<std::string> list_envs() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(home.sub("envs"), ec)) {
      out.push_back(e.path().filename().string());
    }
    return out;
  }

  ApplyResult apply_ok(const DeploySpec& spec) {
    RecordingProgress p;
    auto r = driver->apply(spec, p);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().full_message());
    return r ? *r : ApplyResult{};
  }

  std::string commit_server(const std::string& js, const std::string& msg) {
    repo.write_file("server.js", js);
    return repo.commit(msg);
  }

  std::string body_via_router(const std::string& env, const std::string& path = "/health") {
    auto r = testing::get_via_router(driver->router_port(), env, path);
    return r ? r->body : "";
  }

  std::vector<MarkedProcess> env_processes(const std::string& env) {
    std::vector<MarkedProcess> out;
    for (auto& p : find_marked_processes(driver->home_id())) {
      if (p.env == env) {
        out.push_back(p);
      }
    }
    return out;
  }

  core::Environment env_named(const std::string& name) {
    core::Environment e;
    e.name = name;
    return e;
  }
};

// Test bodies that fail on purpose, run only by LocalDriverTeardownTest in a child
// process: IDP_TEARDOWN_PROBE names a file where each writes its home and work dirs.
bool teardown_probe_enabled(const TempDir& home, const TempDir& work) {
  const char* list = std::getenv("IDP_TEARDOWN_PROBE");
  if (list == nullptr) {
    return false;
  }
  std::string old = util::read_file(list).value_or("");
  EXPECT_TRUE(util::write_file_atomic(list, old + home.path() + "\n" + work.path() + "\n"));
  return true;
}

TEST_F(LocalDriverTest, TeardownProbeFailsWithTheRouterDetached) {
  if (!teardown_probe_enabled(home, work)) {
    GTEST_SKIP() << "run by LocalDriverTeardownTest";
  }
  apply_ok(make_spec("pr-1", repo));
  driver->stop(true); // Caddy and the app keep running, as when a daemon stops with keep_running
  FAIL() << "failing on purpose";
}

TEST_F(LocalDriverTest, TeardownProbeThrows) {
  if (!teardown_probe_enabled(home, work)) {
    GTEST_SKIP() << "run by LocalDriverTeardownTest";
  }
  apply_ok(make_spec("pr-1", repo));
  throw std::runtime_error("thrown on purpose");
}

// A local-driver test that fails or throws still stops its router and apps: the probes
// above run in a child gtest, then nothing of their homes may be left running.
TEST(LocalDriverTeardownTest, AFailingOrThrowingTestLeavesNothingRunning) {
  TempDir dir{"idp-teardown-probe"};
  std::string list = dir.sub("homes");
  util::Command cmd;
  cmd.argv = {testing::self_exe(), "--gtest_filter=LocalDriverTest.TeardownProbe*"};
  cmd.env = {{"IDP_TEARDOWN_PROBE", list}};
  util::RunOptions ro;
  ro.timeout_ms = 150000;
  ro.merge_stderr = true;
  auto r = util::run(cmd, ro);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->exit_code, 0) << r->out;
  EXPECT_TRUE(contains(r->out, "failing on purpose")) << r->out;
  EXPECT_TRUE(contains(r->out, "thrown on purpose")) << r->out;
  auto dirs = util::split(util::trim(util::read_file(list).value_or("")), '\n');
  ASSERT_EQ(dirs.size(), 4u) << "both probes ran";
  for (size_t i = 0; i < dirs.size(); i += 2) {
    const std::string& probe_home = dirs[i];
    auto left = testing::processes_of_home(probe_home);
    EXPECT_TRUE(left.empty()) << left.size() << " process(es) of " << probe_home << " still run (its Caddy: "
                              << util::find_processes_with_env("IDP_ROUTER_HOME_ID", home_id_for(probe_home)).size()
                              << ")";
    testing::HomeProcessReaper(probe_home).stop_all();
    (void)util::remove_all(probe_home); // kept by the failed child
    (void)util::remove_all(dirs[i + 1]);
  }
}

TEST_F(LocalDriverTest, ApplyServesTheAppThroughTheRouter) {
  auto spec = make_spec("pr-1", repo);
  RecordingProgress p;
  auto r = driver->apply(spec, p);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->url, "http://pr-1.preview.localhost:" + std::to_string(driver->router_port()) + "/");
  EXPECT_GT(r->outputs.value("pid", 0), 0);
  EXPECT_GT(r->outputs.value("port", 0), 0);
  // Outside the ephemeral range: no bind to port 0 or outgoing connection can take it
  // between its allocation and the app's listen.
  auto [ephemeral_lo, ephemeral_hi] = util::ephemeral_port_range();
  int port = r->outputs.value("port", 0);
  EXPECT_TRUE(port < ephemeral_lo || port > ephemeral_hi) << port;
  EXPECT_EQ(r->outputs.value("commit", ""), repo.head());
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"service\":\"api-service-demo\""));
  EXPECT_EQ(p.statuses,
            (std::vector<core::RevisionStatus>{core::RevisionStatus::building, core::RevisionStatus::starting,
                                               core::RevisionStatus::serving}));
  // The app got its markers and PORT.
  pid_t pid = r->outputs["pid"];
  EXPECT_EQ(util::process_env_value(pid, "IDP_ENVIRONMENT"), "pr-1");
  EXPECT_EQ(util::process_env_value(pid, "IDP_REVISION"), "1");
  EXPECT_EQ(util::process_env_value(pid, "PORT"), std::to_string(r->outputs.value("port", 0)));
  EXPECT_TRUE(util::path_exists(home.sub("envs/pr-1/rev-1/src/server.js")));
  EXPECT_TRUE(util::path_exists(home.sub("envs/pr-1/state.json")));
}

TEST_F(LocalDriverTest, ApplyAgainWithTheSameCommitKeepsTheProcess) {
  auto spec = make_spec("pr-1", repo);
  auto first = apply_ok(spec);
  auto second = apply_ok(spec);
  EXPECT_EQ(first.outputs["pid"], second.outputs["pid"]);
  EXPECT_EQ(first.outputs["port"], second.outputs["port"]);
  spec.revision_id = 2; // a new revision number with identical content changes nothing
  auto third = apply_ok(spec);
  EXPECT_EQ(first.outputs["pid"], third.outputs["pid"]);
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
}

TEST_F(LocalDriverTest, NewCommitSwitchesWithoutDowntime) {
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  pid_t old_pid = v1.outputs["pid"];
  ASSERT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v1\""));
  commit_server(server_js_version("v2"), "v2");

  // Hammer the URL during the whole deploy: every answer must be a 200.
  std::atomic<bool> done{false};
  std::atomic<int> ok{0};
  std::vector<std::string> failures;
  std::thread poller([&] {
    while (!done) {
      auto r = testing::get_via_router(driver->router_port(), "pr-1", "/health");
      if (r && r->status == 200) {
        ++ok;
      } else {
        failures.push_back(r ? "HTTP " + std::to_string(r->status) + " " + r->body : r.error().message);
      }
    }
  });
  auto v2 = apply_ok(make_spec("pr-1", repo, 2));
  done = true;
  poller.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed requests, first: " << failures.front();
  EXPECT_GT(ok.load(), 0);

  pid_t new_pid = v2.outputs["pid"];
  EXPECT_NE(new_pid, old_pid);
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v2\""));
  // The old revision retires in the background after the drain: process, then worktree.
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(old_pid) && driver->retiring_count() == 0; }, k_wait_ms));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/rev-1"))) << "the old worktree is removed";
  EXPECT_TRUE(util::path_exists(home.sub("envs/pr-1/rev-2/src")));
  for (const auto& p : env_processes("pr-1")) {
    EXPECT_EQ(p.revision, "2");
  }
}

// Caddy's previous config finishes the requests it had already sent to the old revision
// after the route change returns: the old revision must outlive them (drain_ms).
TEST_F(LocalDriverTest, RequestInFlightAtTheSwitchIsAnsweredByTheOldRevision) {
  start_driver({{"drain_ms", 5000}});
  const std::string held = work.sub("held");
  const std::string release = work.sub("release");
  std::string v1 = server_js_version("v1");
  const std::string health = "if (url.pathname === '/health') {";
  ASSERT_NE(v1.find(health), std::string::npos);
  v1.insert(v1.find(health), "if (url.pathname === '/hold') {\n"
                             "    require('fs').writeFileSync(" +
                                 nlohmann::json(held).dump() +
                                 ", 'x');\n"
                                 "    const t = setInterval(() => {\n"
                                 "      if (require('fs').existsSync(" +
                                 nlohmann::json(release).dump() +
                                 ")) {\n"
                                 "        clearInterval(t);\n"
                                 "        res.end('answered by v1');\n"
                                 "      }\n"
                                 "    }, 10);\n"
                                 "    return;\n"
                                 "  }\n  ");
  // Like many apps, v1 does not drain on SIGTERM: it dies with its requests.
  const std::string graceful = "process.on('SIGTERM', () => shutdown('SIGTERM'));";
  ASSERT_NE(v1.find(graceful), std::string::npos);
  v1.erase(v1.find(graceful), graceful.size());
  commit_server(v1, "v1 with /hold");
  apply_ok(make_spec("pr-1", repo, 1));

  std::optional<Expected<util::HttpResponse>> held_answer;
  std::thread client([&] { held_answer = testing::get_via_router(driver->router_port(), "pr-1", "/hold"); });
  ASSERT_TRUE(wait_until([&] { return util::path_exists(held); }, k_wait_ms)) << "v1 holds the request";

  commit_server(server_js_version("v2"), "v2");
  std::thread deploy([&] { apply_ok(make_spec("pr-1", repo, 2)); });
  // The route has moved (v2 answers) while v1 still holds its request; then it answers.
  EXPECT_TRUE(wait_until([&] { return contains(body_via_router("pr-1"), "\"version\":\"v2\""); }, k_wait_ms));
  ASSERT_TRUE(util::write_file_atomic(release, "go"));
  client.join();
  deploy.join();
  ASSERT_TRUE(held_answer.has_value() && held_answer->has_value())
      << (held_answer && !held_answer->has_value() ? held_answer->error().message : "no answer");
  EXPECT_EQ((*held_answer)->status, 200) << (*held_answer)->body;
  EXPECT_EQ((*held_answer)->body, "answered by v1");
}

// Telemetry (issue 14): a deploy says where its time went, phase by phase, in order; a
// redeploy of what already serves has nothing to say.
TEST_F(LocalDriverTest, ADeployMarksItsPhasesInOrder) {
  RecordingProgress p;
  auto r = driver->apply(make_spec("pr-1", repo, 1), p);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(p.phases, (std::vector<std::string>{"prepare", "checkout", "build", "start", "healthy", "route"}));
  RecordingProgress again;
  ASSERT_TRUE(driver->apply(make_spec("pr-1", repo, 1), again).has_value());
  EXPECT_TRUE(again.phases.empty()) << "already serving: no deploy";
}

// The drain runs beside the deploys (issue 14): with a drain of ten minutes, back-to-back
// redeploys each serve their commit as soon as it is healthy, the replaced revisions keep
// running (retiring, recorded), and a destroy takes them all at once. Were a deploy to wait
// on a drain, its apply would not return before the test's deadline.
TEST_F(LocalDriverTest, BackToBackRedeploysAndADestroyNeverWaitOnADrain) {
  start_driver({{"drain_ms", 600000}});
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  commit_server(server_js_version("v2"), "v2");
  auto v2 = apply_ok(make_spec("pr-1", repo, 2));
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v2\""));
  commit_server(server_js_version("v3"), "v3");
  auto v3 = apply_ok(make_spec("pr-1", repo, 3));
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v3\""));
  // v1 and v2 drain in the background, recorded as retiring.
  EXPECT_TRUE(util::process_alive(v1.outputs["pid"]));
  EXPECT_TRUE(util::process_alive(v2.outputs["pid"]));
  EXPECT_EQ(driver->retiring_count(), 2u);
  auto state = load_env_state(home.sub("envs/pr-1/state.json"));
  ASSERT_TRUE(state.has_value() && state->has_value());
  ASSERT_EQ((*state)->retiring.size(), 2u);
  EXPECT_EQ((*state)->retiring[0].key, "1");
  EXPECT_EQ((*state)->retiring[1].key, "2");
  EXPECT_EQ((*state)->active->key, "3");

  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("pr-1"), p).has_value());
  EXPECT_FALSE(util::process_alive(v1.outputs["pid"]));
  EXPECT_FALSE(util::process_alive(v2.outputs["pid"]));
  EXPECT_FALSE(util::process_alive(v3.outputs["pid"]));
  EXPECT_TRUE(env_processes("pr-1").empty());
}

// A short drain: the retirer stops the old revision by itself, removes its worktree and its
// record, and says so in the environment's log.
TEST_F(LocalDriverTest, TheRetirerStopsTheReplacedRevisionAfterTheDrain) {
  start_driver({{"drain_ms", 200}});
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  commit_server(server_js_version("v2"), "v2");
  apply_ok(make_spec("pr-1", repo, 2));
  ASSERT_TRUE(wait_until([&] { return !util::process_alive(v1.outputs["pid"]); }, k_wait_ms));
  ASSERT_TRUE(wait_until([&] { return driver->retiring_count() == 0; }, k_wait_ms));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/rev-1")));
  auto state = load_env_state(home.sub("envs/pr-1/state.json"));
  ASSERT_TRUE(state.has_value() && state->has_value());
  EXPECT_TRUE((*state)->retiring.empty());
  auto logs = driver->read_logs(env_named("pr-1"), {});
  ASSERT_TRUE(logs.has_value());
  bool said = false;
  for (const auto& l : logs->lines) {
    said = said || l.text == "stopped revision 1";
  }
  EXPECT_TRUE(said);
}

// The daemon goes while a revision is retiring (the driver is dropped without stop(), as a
// kill leaves it): the next start stops it, and the new revision serves on.
TEST_F(LocalDriverTest, ARevisionRetiringWhenTheDaemonDiesIsStoppedByTheNextStart) {
  start_driver({{"drain_ms", 600000}});
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  commit_server(server_js_version("v2"), "v2");
  auto v2 = apply_ok(make_spec("pr-1", repo, 2));
  ASSERT_TRUE(util::process_alive(v1.outputs["pid"])) << "retiring, not stopped yet";
  driver.reset();
  start_driver({}, {testing::make_env("pr-1", repo)});
  EXPECT_FALSE(util::process_alive(v1.outputs["pid"])) << "start() stopped the revision that was retiring";
  EXPECT_TRUE(util::process_alive(v2.outputs["pid"]));
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v2\""));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/rev-1")));
  auto state = load_env_state(home.sub("envs/pr-1/state.json"));
  ASSERT_TRUE(state.has_value() && state->has_value());
  EXPECT_TRUE((*state)->retiring.empty());
  for (const auto& proc : env_processes("pr-1")) {
    EXPECT_EQ(proc.revision, "2");
  }
}

TEST_F(LocalDriverTest, CrashingNewRevisionLeavesTheOldOneServing) {
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  commit_server("console.log('crashing on purpose'); process.exit(3);\n", "crash");
  RecordingProgress p;
  auto r = driver->apply(make_spec("pr-1", repo, 2), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_TRUE(contains(r.error().message, "exited with code 3")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "crashing on purpose")) << r.error().message;
  EXPECT_EQ(p.statuses.back(), core::RevisionStatus::failed);
  EXPECT_TRUE(util::process_alive(v1.outputs["pid"]));
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v1\""));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/rev-2")));
  for (const auto& proc : env_processes("pr-1")) {
    EXPECT_EQ(proc.revision, "1");
  }
}

TEST_F(LocalDriverTest, NeverHealthyRevisionTimesOutAndLeavesTheOldOneServing) {
  start_driver(); // the healthy revision gets the default health timeout: a loaded machine may need it
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  // The sick revision's check gives up after 1.5 s: a driver with that option adopts v1.
  driver.reset();
  start_driver({{"health_timeout_ms", 1500}}, {testing::make_env("pr-1", repo)});
  ASSERT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  commit_server("require('http').createServer((q, s) => { s.statusCode = 500; s.end('sick'); })"
                ".listen(Number(process.env.PORT), '127.0.0.1', () => console.log('up but sick'));\n",
                "sick");
  RecordingProgress p;
  auto r = driver->apply(make_spec("pr-1", repo, 2), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_TRUE(
      contains(r.error().message, "health check on /health did not pass within 1.5s: GET /health answered HTTP 500"))
      << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "\nthe app printed: up but sick")) << r.error().message;
  EXPECT_TRUE(util::process_alive(v1.outputs["pid"]));
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  for (const auto& proc : env_processes("pr-1")) {
    EXPECT_EQ(proc.revision, "1");
  }
}

TEST_F(LocalDriverTest, DestroyRemovesProcessesRouteAndFiles) {
  auto r = apply_ok(make_spec("pr-1", repo));
  pid_t pid = r.outputs["pid"];
  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("pr-1"), p));
  EXPECT_FALSE(util::process_alive(pid));
  EXPECT_TRUE(env_processes("pr-1").empty());
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 404);
  EXPECT_TRUE(contains(body_via_router("pr-1"), "no preview environment at this address"));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1")));
  // The mirror forgot the worktree too.
  util::Command c;
  c.argv = {"git", "--git-dir", util::path_join(home.path(), "git"), "worktree", "list"};
  for (const auto& e : std::filesystem::directory_iterator(home.sub("git"))) {
    if (util::ends_with(e.path().string(), ".git")) {
      c.argv[2] = e.path().string();
      auto out = util::run(c);
      ASSERT_TRUE(out.has_value());
      EXPECT_FALSE(contains(out->out, "pr-1")) << out->out;
    }
  }
  ASSERT_TRUE(driver->destroy(env_named("pr-1"), p)) << "destroy twice";
  ASSERT_TRUE(driver->destroy(env_named("never-existed"), p));
  auto obs = driver->observe(env_named("pr-1"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::not_running);
}

TEST_F(LocalDriverTest, RestartAdoptsLiveEnvironmentsAndRemovesTheRest) {
  auto a = apply_ok(make_spec("env-a", repo));
  auto b = apply_ok(make_spec("env-b", repo));
  pid_t pid_a = a.outputs["pid"];
  pid_t pid_b = b.outputs["pid"];
  // An orphan of a crashed deploy of env-a (not its active revision), and a stale directory.
  util::Command orphan_cmd;
  orphan_cmd.argv = {"sleep", "600"};
  orphan_cmd.env = {{"IDP_HOME_ID", driver->home_id()}, {"IDP_ENVIRONMENT", "env-a"}, {"IDP_REVISION", "99"}};
  pid_t orphan = *util::spawn(orphan_cmd, {});
  ASSERT_TRUE(util::ensure_dir(home.sub("envs/env-a/rev-99/src")));

  // The daemon dies: its driver goes without stop(); Caddy goes with it, apps stay.
  pid_t old_caddy = driver->router_pid_for_test();
  driver.reset();
  EXPECT_FALSE(util::process_alive(old_caddy));
  EXPECT_TRUE(util::process_alive(pid_a));
  EXPECT_EQ(status_via_router(ctx.router_port, "env-a"), -1);

  // A new daemon: env-a is live, env-b is not.
  core::Environment live_a = testing::make_env("env-a", repo);
  start_driver({}, {live_a});
  EXPECT_TRUE(util::process_alive(pid_a)) << "env-a's app is adopted, not restarted";
  EXPECT_EQ(status_via_router(driver->router_port(), "env-a"), 200) << "env-a's route is restored";
  auto again = apply_ok(make_spec("env-a", repo));
  EXPECT_EQ(again.outputs["pid"], pid_a);
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(orphan); }, k_wait_ms));
  EXPECT_FALSE(util::path_exists(home.sub("envs/env-a/rev-99")));
  EXPECT_FALSE(util::process_alive(pid_b));
  EXPECT_TRUE(env_processes("env-b").empty());
  EXPECT_FALSE(util::path_exists(home.sub("envs/env-b")));
  EXPECT_EQ(status_via_router(driver->router_port(), "env-b"), 404);
  auto obs = driver->observe(live_a);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_F(LocalDriverTest, RestartStopsAHalfStartedRevision) {
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  commit_server(server_js_version("v2"), "v2");
  // Stop the deploy of revision 2 once its app runs: its records say "pending".
  RecordingProgress p;
  p.cancel_on = core::RevisionStatus::starting;
  std::string state_path = home.sub("envs/pr-1/state.json");
  auto r = driver->apply(make_spec("pr-1", repo, 2), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::cancelled);
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/rev-2"))) << "a cancelled deploy cleans up what it started";
  for (const auto& proc : env_processes("pr-1")) {
    EXPECT_EQ(proc.revision, "1");
  }
  EXPECT_TRUE(contains(body_via_router("pr-1"), "\"version\":\"v1\""));

  // Now fake a crash in the middle of revision 3: a recorded pending revision with a
  // running process, then a restart.
  auto state = *load_env_state(state_path);
  InstanceRecord pending;
  pending.key = "3";
  pending.kind = "web";
  pending.dir = home.sub("envs/pr-1/rev-3");
  ASSERT_TRUE(util::ensure_dir(pending.dir + "/src"));
  util::Command c;
  c.argv = {"sleep", "600"};
  c.env = {{"IDP_HOME_ID", driver->home_id()}, {"IDP_ENVIRONMENT", "pr-1"}, {"IDP_REVISION", "3"}};
  pending.shim_pid = *util::spawn(c, {});
  pending.shim_start_time = util::process_start_time(pending.shim_pid).value_or(0);
  state->pending = pending;
  ASSERT_TRUE(save_env_state(state_path, *state));
  driver.reset();
  start_driver({}, {testing::make_env("pr-1", repo)});
  EXPECT_FALSE(util::process_alive(pending.shim_pid));
  EXPECT_FALSE(util::path_exists(pending.dir));
  EXPECT_FALSE((*load_env_state(state_path))->pending.has_value());
  EXPECT_TRUE(util::process_alive(v1.outputs["pid"]));
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
}

TEST_F(LocalDriverTest, CgroupLimitsAreApplied) {
  if (!cgroup_v1_writable()) {
    GTEST_SKIP() << "needs a writable cgroup v1 hierarchy (this test's machine has one)";
  }
  auto spec = make_spec("pr-1", repo);
  spec.config.cpu = 512;
  spec.config.memory = 1024;
  auto r = apply_ok(spec);
  EXPECT_TRUE(other_warnings(r.warnings).empty()) << r.warnings.front();
  auto obs = driver->observe(env_named("pr-1"));
  ASSERT_TRUE(obs.has_value());
  auto cg = obs->status["cgroup"];
  ASSERT_TRUE(cg.is_object()) << obs->status.dump();
  EXPECT_EQ(cg["version"], 1);
  EXPECT_EQ(cg["cpu_quota_us"], 50000);
  EXPECT_EQ(cg["memory_limit_bytes"], 1024LL << 20);
  std::vector<std::string> paths = cg["paths"];
  // And cpuacct where it is a hierarchy of its own (CPU time for idp cost).
  const bool cpuacct = util::path_exists("/sys/fs/cgroup/cpuacct/cgroup.procs") &&
                       std::filesystem::weakly_canonical("/sys/fs/cgroup/cpuacct") !=
                           std::filesystem::weakly_canonical("/sys/fs/cgroup/cpu");
  ASSERT_EQ(paths.size(), cpuacct ? 4u : 3u) << "cpu, memory, pids (and cpuacct)";
  EXPECT_EQ(util::trim(*util::read_file(paths[0] + "/cpu.cfs_quota_us")), "50000");
  EXPECT_EQ(util::trim(*util::read_file(paths[1] + "/memory.limit_in_bytes")), std::to_string(1024LL << 20));
  // The app (a child of the shim) is inside both groups.
  std::string own = *util::read_file("/proc/" + std::to_string(r.outputs.value("pid", 0)) + "/cgroup");
  std::string leaf = "idp-" + driver->home_id() + "/pr-1.1";
  EXPECT_TRUE(contains(own, ":cpu:") && contains(own, leaf)) << own;
  if (cpuacct) {
    bool counted = false;
    for (const auto& line : util::split(own, '\n')) {
      counted = counted || (contains(line, ":cpuacct:") && contains(line, leaf));
    }
    EXPECT_TRUE(counted) << "counted for idp cost: " << own;
  }
  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("pr-1"), p));
  for (const auto& path : paths) {
    EXPECT_FALSE(util::path_exists(path));
  }
}

// Startup CPU boost (issue 14): an app starts without its cpu limit, which holds again from
// the moment it is healthy. Throttled to cpu 256 (a quarter of a CPU), node comes up about
// four times slower: bench_provision's "healthy" phase.
TEST_F(LocalDriverTest, AnAppStartsWithoutItsCpuLimitWhichHoldsOnceItIsHealthy) {
  if (!cgroup_v1_writable()) {
    GTEST_SKIP() << "needs a writable cgroup v1 hierarchy (this test's machine has one)";
  }
  // The app says what cpu limit it started under, then runs the server.
  repo.write_file("start.sh", "g=$(sed -n 's/^[0-9]*:cpu:\\(.*\\)$/\\1/p' /proc/self/cgroup)\n"
                              "echo \"startup quota: $(cat /sys/fs/cgroup/cpu$g/cpu.cfs_quota_us)\"\n"
                              "exec node server.js\n");
  repo.commit("say the cpu quota at start");
  auto started_under = [&](const std::string& env) {
    LogQuery q;
    auto logs = driver->read_logs(env_named(env), q);
    std::string found;
    for (const auto& l : logs ? logs->lines : std::vector<LogLine>{}) {
      found = util::starts_with(l.text, "startup quota: ") ? l.text : found;
    }
    return found;
  };
  auto quota_now = [&](const std::string& env) {
    auto obs = driver->observe(env_named(env));
    EXPECT_TRUE(obs.has_value());
    auto cg = obs ? obs->status["cgroup"] : nlohmann::json();
    EXPECT_EQ(cg.value("cpu_quota_us", int64_t{0}), 25000) << cg.dump();
    std::vector<std::string> paths = cg.value("paths", std::vector<std::string>{});
    return paths.empty() ? "" : util::trim(util::read_file(paths[0] + "/cpu.cfs_quota_us").value_or(""));
  };
  auto spec = make_spec("boosted", repo);
  spec.config.cpu = 256;
  spec.config.local.start = "sh start.sh";
  apply_ok(spec);
  EXPECT_EQ(started_under("boosted"), "startup quota: -1") << "no limit while it starts";
  EXPECT_EQ(quota_now("boosted"), "25000") << "its limit once healthy";
  EXPECT_EQ(status_via_router(driver->router_port(), "boosted"), 200);

  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("boosted"), p));
  start_driver({{"startup_cpu_boost", false}});
  spec = make_spec("throttled", repo);
  spec.config.cpu = 256;
  spec.config.local.start = "sh start.sh";
  apply_ok(spec);
  EXPECT_EQ(started_under("throttled"), "startup quota: 25000") << "the boost is off: limited from the start";
  EXPECT_EQ(quota_now("throttled"), "25000");

  auto bad = LocalOptions::parse({{"startup_cpu_boost", "yes"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(contains(bad.error().message, "startup_cpu_boost")) << bad.error().message;
  EXPECT_TRUE(contains(bad.error().message, "expected true or false, got")) << bad.error().message;
}

TEST_F(LocalDriverTest, UnusableCgroupRootRunsWithoutLimitsAndWarns) {
  start_driver({{"cgroup_root", work.sub("not-a-cgroup-fs")}});
  auto r = apply_ok(make_spec("pr-1", repo));
  auto limits = other_warnings(r.warnings);
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_TRUE(util::starts_with(limits[0], "cpu/memory limits not enforced: ")) << limits[0];
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  auto obs = driver->observe(env_named("pr-1"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->warnings, r.warnings);
  EXPECT_TRUE(obs->status["cgroup"].is_null());
}

TEST_F(LocalDriverTest, BuildRunsOncePerRevision) {
  auto spec = make_spec("pr-1", repo);
  std::string count = work.sub("build-count");
  spec.config.local.build =
      "node -e \"require('fs').appendFileSync(process.env.BUILD_COUNT_FILE, 'x'); console.log('building now')\"";
  spec.config.environment["BUILD_COUNT_FILE"] = count;
  auto first = apply_ok(spec);
  EXPECT_EQ(*util::read_file(count), "x");
  auto logs = driver->read_logs(env_named("pr-1"), {});
  ASSERT_TRUE(logs.has_value());
  EXPECT_TRUE(std::any_of(logs->lines.begin(), logs->lines.end(),
                          [](const LogLine& l) { return l.stream == "build" && l.text == "building now"; }));
  // The app dies; the next apply restarts it without building again.
  pid_t pid = first.outputs["pid"];
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return driver->observe(env_named("pr-1"))->health == Health::not_running; }, k_wait_ms));
  auto second = apply_ok(spec);
  EXPECT_NE(second.outputs["pid"], first.outputs["pid"]);
  EXPECT_EQ(*util::read_file(count), "x");
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  // A new commit is a new revision: built again.
  commit_server(server_js_version("v2"), "v2");
  auto v2spec = make_spec("pr-1", repo, 2);
  v2spec.config.local.build = spec.config.local.build;
  v2spec.config.environment = spec.config.environment;
  apply_ok(v2spec);
  EXPECT_EQ(*util::read_file(count), "xx");
}

TEST_F(LocalDriverTest, BuildFailureIsPermanentWithItsOutput) {
  auto spec = make_spec("pr-1", repo);
  spec.config.local.build = "sh -c 'echo compiling; echo \"error: boom\" >&2; exit 4'";
  RecordingProgress p;
  auto r = driver->apply(spec, p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_TRUE(contains(r.error().message, "local.build failed with exit code 4")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "error: boom")) << r.error().message;
  EXPECT_TRUE(env_processes("pr-1").empty());
  spec.config.local.build = "no-such-build-tool --flag";
  auto missing = driver->apply(spec, p);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::permanent);
  EXPECT_TRUE(contains(missing.error().message, "not found")) << missing.error().message;
}

// Issue 16 point 5: the reason of a failure is the line that says why, even when a long
// help text follows it (npm), and a crash keeps its error line, not its stack frames.
TEST_F(LocalDriverTest, BuildFailureReasonIsTheLineThatSaysWhy) {
  auto spec = make_spec("pr-1", repo);
  spec.config.local.build = "sh -c 'echo \"npm error code EUSAGE\"; echo \"npm error The npm ci command can only "
                            "install with an existing package-lock.json\"; echo \"npm error\"; "
                            "i=0; while [ $i -lt 80 ]; do echo \"npm error   --option-$i\"; i=$((i+1)); done; exit 1'";
  RecordingProgress p;
  auto r = driver->apply(spec, p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "local.build failed with exit code 1: npm error The npm ci command can only install "
                               "with an existing package-lock.json");
}

TEST_F(LocalDriverTest, CrashReasonKeepsTheErrorLine) {
  commit_server("console.log('starting');\nfunction load() { throw new Error('boom at startup'); }\nload();\n",
                "crash at startup");
  RecordingProgress p;
  auto r = driver->apply(make_spec("pr-1", repo, 1), p);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "the app exited with code 1 before its health check on /health passed: "
                               "Error: boom at startup");
}

TEST_F(LocalDriverTest, SecretsAreInjectedAndNeverStored) {
  // The server's secret store, as the daemon wires it (DriverContext::secrets).
  const std::string store_value = "store-secret-" + std::to_string(::getpid());
  std::vector<std::string> asked_for;
  ctx.secrets.resolve = [&](const std::string& r, const std::string& name) -> Expected<std::string> {
    asked_for.push_back(r + " " + name);
    if (name == "app-secret") {
      return store_value;
    }
    return make_error(ErrorCode::invalid_config, "no secret " + util::quote(name) + " in the server's secret store");
  };
  start_driver();
  auto spec = make_spec("pr-1", repo);
  spec.config.secrets = {{"APP_STORE_SECRET", "app-secret"},
                         {"APP_AWS_SECRET", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"}};
  auto r = apply_ok(spec);
  EXPECT_TRUE(std::any_of(r.warnings.begin(), r.warnings.end(),
                          [](const std::string& w) { return contains(w, "\"APP_AWS_SECRET\""); }));
  ASSERT_FALSE(asked_for.empty());
  EXPECT_EQ(asked_for.front(), spec.env.repo + " app-secret") << "looked up for the environment's repository";
  auto shown = nlohmann::json::parse(body_via_router("pr-1", "/env"));
  EXPECT_EQ(shown.value("APP_STORE_SECRET", ""), store_value);
  EXPECT_FALSE(shown.contains("APP_AWS_SECRET"));
  // Nothing the driver wrote holds a value (the worktree is the app's own code).
  for (const auto& e : std::filesystem::recursive_directory_iterator(home.path())) {
    if (!e.is_regular_file() || contains(e.path().string(), "/src/") || contains(e.path().string(), "/git/")) {
      continue;
    }
    auto text = util::read_file(e.path().string());
    ASSERT_TRUE(text.has_value());
    EXPECT_FALSE(contains(*text, store_value)) << e.path();
  }
  // A name the store refuses fails the deploy, naming the variable; env:/file: are refused.
  auto missing = make_spec("pr-2", repo);
  missing.config.secrets = {{"APP_OTHER", "not-for-this-repo"}};
  RecordingProgress p;
  auto refused = driver->apply(missing, p);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_config);
  EXPECT_TRUE(contains(refused.error().message, "secret \"APP_OTHER\"")) << refused.error().message;
  EXPECT_TRUE(contains(refused.error().message, "\"not-for-this-repo\"")) << refused.error().message;
  auto old_form = make_spec("pr-3", repo);
  old_form.config.secrets = {{"T", "env:IDP_GITHUB_TOKEN"}};
  auto planned = driver->plan(old_form);
  ASSERT_FALSE(planned.has_value());
  EXPECT_TRUE(contains(planned.error().message, "env: reference (no longer allowed)")) << planned.error().message;
}

// Issue 9: a failed deploy's error quotes what the app printed; the environment's secret
// values are replaced by *** there, since the error ends up in events and the state store.
TEST_F(LocalDriverTest, DeployErrorsQuoteTheAppWithSecretsRedacted) {
  const std::string value = "crash-secret-" + std::to_string(::getpid());
  ctx.secrets.resolve = [&](const std::string&, const std::string&) -> Expected<std::string> { return value; };
  start_driver();
  commit_server("throw new Error('cannot connect with ' + process.env.APP_KEY);\n", "leaks its secret");
  auto spec = make_spec("pr-1", repo, 1);
  spec.config.secrets = {{"APP_KEY", "app-key"}};
  RecordingProgress p;
  auto r = driver->apply(spec, p);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().full_message(), "Error: cannot connect with ***")) << r.error().full_message();
  EXPECT_FALSE(contains(r.error().full_message(), value)) << r.error().full_message();
}

TEST_F(LocalDriverTest, LogsCarryTimestampsStreamsAndResume) {
  util::Millis before = util::SystemClock().now_ms();
  auto v1 = apply_ok(make_spec("pr-1", repo, 1));
  std::string listening = "api-service-demo v1 listening on " + std::to_string(v1.outputs.value("port", 0));
  LogChunk first;
  ASSERT_TRUE(wait_until(
      [&] {
        first = *driver->read_logs(env_named("pr-1"), {});
        return std::any_of(first.lines.begin(), first.lines.end(),
                           [&](const LogLine& l) { return l.text == listening; });
      },
      k_wait_ms));
  for (const auto& l : first.lines) {
    EXPECT_GE(l.at, before - 1000) << l.text;
    EXPECT_TRUE(l.stream == "stdout" || l.stream == "stderr" || l.stream == "system" || l.stream == "build")
        << l.stream;
  }
  auto it = std::find_if(first.lines.begin(), first.lines.end(), [&](const LogLine& l) { return l.text == listening; });
  EXPECT_EQ(it->stream, "stdout");

  commit_server(server_js_version("v2"), "v2");
  auto v2 = apply_ok(make_spec("pr-1", repo, 2));
  LogQuery follow;
  follow.cursor = first.cursor;
  std::vector<LogLine> newer;
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = driver->read_logs(env_named("pr-1"), follow);
        for (auto& l : c->lines) {
          newer.push_back(l);
        }
        follow.cursor = c->cursor;
        return std::any_of(newer.begin(), newer.end(),
                           [](const LogLine& l) { return l.text == "received SIGTERM, shutting down"; });
      },
      k_wait_ms))
      << "the old app's shutdown is logged by its shim";
  EXPECT_TRUE(std::none_of(newer.begin(), newer.end(), [&](const LogLine& l) { return l.text == listening; }))
      << "a cursor never repeats lines";
  EXPECT_TRUE(std::any_of(newer.begin(), newer.end(),
                          [](const LogLine& l) { return contains(l.text, "api-service-demo v2 listening"); }));
  LogQuery tail;
  tail.tail = 2;
  EXPECT_EQ(driver->read_logs(env_named("pr-1"), tail)->lines.size(), 2u);
  LogQuery since;
  since.since = newer.back().at;
  auto since_chunk = driver->read_logs(env_named("pr-1"), since);
  ASSERT_TRUE(since_chunk.has_value());
  for (const auto& l : since_chunk->lines) {
    EXPECT_GE(l.at, since.since);
  }
}

TEST_F(LocalDriverTest, LogsRotateUnderTheDriverOptions) {
  start_driver({{"log_max_bytes", 2048}, {"log_keep", 2}});
  auto spec = make_spec("pr-1", repo);
  spec.config.local.build = "node -e \"for (let i = 0; i < 200; i++) console.log('build output line ' + i)\"";
  apply_ok(spec);
  EXPECT_TRUE(util::path_exists(home.sub("envs/pr-1/logs/app.log.1")));
  EXPECT_TRUE(util::path_exists(home.sub("envs/pr-1/logs/app.log.2")));
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1/logs/app.log.3")));
  EXPECT_LE(util::file_size(home.sub("envs/pr-1/logs/app.log.1")), 2048);
}

TEST_F(LocalDriverTest, ReadLogsOfAnUnknownEnvironmentIsEmpty) {
  auto c = driver->read_logs(env_named("nothing-here"), {});
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->lines.empty());
}

TEST_F(LocalDriverTest, RouterComesBackAfterCaddyDies) {
  apply_ok(make_spec("pr-1", repo));
  pid_t caddy = driver->router_pid_for_test();
  ASSERT_GT(caddy, 0);
  ::kill(caddy, SIGKILL);
  ASSERT_TRUE(wait_until(
      [&] {
        pid_t now = driver->router_pid_for_test();
        return now > 0 && now != caddy && status_via_router(driver->router_port(), "pr-1") == 200;
      },
      k_wait_ms));
  EXPECT_TRUE(contains(body_via_router("pr-1"), "api-service-demo"));
}

TEST_F(LocalDriverTest, ObserveReportsHealthAndDeath) {
  auto r = apply_ok(make_spec("pr-1", repo));
  auto obs = driver->observe(env_named("pr-1"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_EQ(obs->status["pid"], r.outputs["pid"]);
  EXPECT_EQ(obs->status["port"], r.outputs["port"]);
  EXPECT_EQ(obs->status["revision"], "1");
  EXPECT_EQ(obs->status["commit"], repo.head());
  EXPECT_GE(obs->status.value("uptime_ms", int64_t{-1}), 0);
  ::kill(static_cast<pid_t>(r.outputs["pid"]), SIGKILL);
  ASSERT_TRUE(wait_until([&] { return driver->observe(env_named("pr-1"))->health == Health::not_running; }, k_wait_ms));
  ASSERT_TRUE(
      wait_until([&] { return contains(driver->observe(env_named("pr-1"))->detail, "killed by signal 9"); }, k_wait_ms))
      << driver->observe(env_named("pr-1"))->detail;
  // The engine's answer to not_running is apply, which restarts it.
  apply_ok(make_spec("pr-1", repo));
  EXPECT_EQ(driver->observe(env_named("pr-1"))->health, Health::healthy);
}

TEST_F(LocalDriverTest, StaticSiteIsServedFromTheBuiltDirectory) {
  GitRepo site(work.sub("site"));
  site.write_file("public/index.html", "<h1>static home</h1>");
  site.write_file("public/app.js", "console.log(1)");
  site.commit("site");
  DeploySpec spec;
  spec.env = testing::make_env("docs", site);
  spec.revision_id = 1;
  spec.components = {"static"};
  spec.config.local.build = "node -e \"require('fs').cpSync('public', 'dist', {recursive: true})\"";
  spec.config.static_site.dir = "dist";
  spec.config.static_site.spa = true;
  auto r = apply_ok(spec);
  EXPECT_FALSE(r.outputs.contains("pid"));
  EXPECT_EQ(body_via_router("docs", "/"), "<h1>static home</h1>");
  EXPECT_EQ(body_via_router("docs", "/app.js"), "console.log(1)");
  EXPECT_EQ(body_via_router("docs", "/some/client/route"), "<h1>static home</h1>");
  auto obs = driver->observe(env_named("docs"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_EQ(apply_ok(spec).outputs["root"], r.outputs["root"]) << "idempotent";
  spec.config.static_site.dir = "missing";
  RecordingProgress p;
  auto bad = driver->apply(spec, p);
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(contains(bad.error().message, "has no index.html")) << bad.error().message;
  EXPECT_EQ(body_via_router("docs", "/"), "<h1>static home</h1>") << "the previous revision keeps serving";
}

TEST_F(LocalDriverTest, PlanRejectsBadConfigWithoutSideEffects) {
  auto spec = make_spec("pr-1", repo);
  EXPECT_TRUE(driver->plan(spec).has_value());
  spec.config.local.start = "";
  auto r = driver->plan(spec);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_TRUE(contains(r.error().message, "local.start")) << r.error().message;
  spec.config.local.start = "node 'unterminated";
  EXPECT_EQ(driver->plan(spec).error().code, ErrorCode::invalid_config);
  spec = make_spec("pr-1", repo);
  spec.config.secrets = {{"X", "vault:x"}};
  EXPECT_EQ(driver->plan(spec).error().code, ErrorCode::invalid_config);
  spec = make_spec("Bad_Name", repo);
  EXPECT_FALSE(driver->plan(spec).has_value());
  EXPECT_FALSE(util::path_exists(home.sub("envs/pr-1")));
  RecordingProgress p;
  spec = make_spec("pr-1", repo);
  spec.config.local.start = "definitely-not-a-program";
  auto a = driver->apply(spec, p);
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, ErrorCode::permanent);
  EXPECT_TRUE(contains(a.error().message, "not found on PATH")) << a.error().message;
}

TEST_F(LocalDriverTest, UnknownComponentsAreIgnoredWithAWarning) {
  auto spec = make_spec("pr-1", repo);
  spec.components = {"web", "queue"};
  auto r = apply_ok(spec);
  EXPECT_TRUE(
      std::any_of(r.warnings.begin(), r.warnings.end(), [](const std::string& w) { return contains(w, "\"queue\""); }));
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
}

TEST_F(LocalDriverTest, ScheduleRunsTheJobWithNoProcessBetweenRuns) {
  start_driver({{"schedule_time_scale", 60}}); // a schedule minute per second
  auto spec = make_spec("jobs", repo);
  spec.components = {"schedule"};
  spec.config.schedule_expression = "rate(1 minute)";
  spec.config.local.start = "node -e \"console.log('job ran in', process.env.IDP_ENVIRONMENT)\"";
  auto r = apply_ok(spec);
  EXPECT_EQ(r.url, "");
  EXPECT_EQ(r.outputs["kind"], "job");
  EXPECT_TRUE(other_warnings(r.warnings).empty()) << r.warnings[0];
  EXPECT_TRUE(env_processes("jobs").empty()) << "nothing runs between runs";
  auto obs = driver->observe(env_named("jobs"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_TRUE(obs->status["schedule"].contains("next_run_at")) << obs->status.dump();
  ASSERT_TRUE(wait_until(
      [&] {
        LogQuery q;
        auto logs = driver->read_logs(env_named("jobs"), q);
        return logs && std::any_of(logs->lines.begin(), logs->lines.end(),
                                   [](const LogLine& l) { return l.text == "job ran in jobs"; });
      },
      k_wait_ms));
  spec.config.schedule_expression = "";
  EXPECT_EQ(driver->plan(spec).error().code, ErrorCode::invalid_config);
  spec.config.schedule_expression = "rate(2 minute)";
  auto bad = driver->plan(spec);
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(contains(bad.error().message, "schedule_expression")) << bad.error().message;
}

TEST_F(LocalDriverTest, DatabaseComponentInjectsCredentialsAndDestroyDropsIt) {
  if (!find_postgres_bin_dir("")) {
    GTEST_SKIP() << "PostgreSQL is not installed";
  }
  auto spec = make_spec("pr-db", repo);
  spec.components = {"web", "database"};
  auto r = apply_ok(spec);
  EXPECT_EQ(r.outputs["db_name"], "idp_pr_db");
  EXPECT_EQ(r.outputs["db_created"], "created empty");
  EXPECT_FALSE(r.outputs.dump().find("DB_PASSWORD") != std::string::npos);
  auto env = env_named("pr-db");
  auto name = driver->exec(env, {"printenv", "DB_NAME"});
  auto password = driver->exec(env, {"printenv", "DB_PASSWORD"});
  ASSERT_TRUE(name && password);
  EXPECT_EQ((*name)["stdout"], "idp_pr_db\n");
  std::string pw = util::trim((*password)["stdout"].get<std::string>());
  EXPECT_EQ(pw.size(), 32u);
  auto state = util::read_file(home.sub("envs/pr-db/state.json")).value_or("");
  EXPECT_EQ(state.find(pw), std::string::npos) << "the password is not stored";
  auto url = driver->exec(env, {"node", "-e", "console.log(process.env.DATABASE_URL)"});
  EXPECT_EQ((*url)["stdout"], "postgresql://idp_pr_db:" + pw +
                                  "@127.0.0.1:" + std::to_string(driver->cluster_for_test().port()) + "/idp_pr_db\n");
  // The app's role reaches its database with that password.
  auto q = driver->exec(env, {"psql", "-X", "-A", "-t", "-c", "SELECT current_user"});
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ((*q)["stdout"], "idp_pr_db\n") << (*q)["stderr"];

  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env, p).has_value());
  ASSERT_TRUE(driver->destroy(env, p).has_value()) << "idempotent";
  auto admin = driver->cluster_for_test().admin();
  ASSERT_TRUE(admin.has_value());
  auto left = admin->query("SELECT 1 FROM pg_database WHERE datname = $1 UNION ALL "
                           "SELECT 1 FROM pg_roles WHERE rolname = $1",
                           {"idp_pr_db"}, "q");
  ASSERT_TRUE(left.has_value());
  EXPECT_TRUE(left->empty()) << "database and role dropped";
}

// A mutex guards memory, never I/O (STYLE 33): while one environment's apply is inside the
// database hardening (libpq talking to the server; here held there by a hook), another
// environment's apply (which takes the port-allocation mutex) still goes to the end. The
// hardening was once done under that mutex, and B waited for A's server round trips.
TEST_F(LocalDriverTest, AnApplyInsideTheDatabaseHardeningDoesNotBlockOthers) {
  if (!find_postgres_bin_dir("")) {
    GTEST_SKIP() << "PostgreSQL is not installed";
  }
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> hardenings{0};
  driver->databases_for_test().set_before_harden_for_test([&, released] {
    if (hardenings.fetch_add(1) == 0) {
      entered.set_value();
      released.wait();
    }
  });
  auto db_spec = make_spec("with-db", repo);
  db_spec.components = {"web", "database"};
  std::atomic<bool> a_done{false};
  bool a_ok = false;
  std::thread a([&] {
    RecordingProgress p;
    a_ok = driver->apply(db_spec, p).has_value();
    a_done = true;
  });
  entered.get_future().wait(); // A is inside harden() now, and stays there until released

  std::atomic<bool> b_done{false};
  bool b_ok = false;
  std::thread b([&] {
    RecordingProgress p;
    b_ok = driver->apply(make_spec("plain", repo), p).has_value();
    b_done = true;
  });
  bool b_finished = wait_until([&] { return b_done.load(); }, 120000, 20);
  EXPECT_TRUE(b_finished) << "the apply of another environment waited for the database hardening";
  EXPECT_FALSE(a_done.load()) << "A is still held inside the hardening";
  release.set_value();
  a.join();
  b.join();
  EXPECT_TRUE(b_ok);
  EXPECT_TRUE(a_ok);
  EXPECT_EQ(status_via_router(driver->router_port(), "plain"), 200);
  EXPECT_EQ(status_via_router(driver->router_port(), "with-db"), 200);
}

TEST(LocalDriverHomeTest, HomeIdIgnoresTrailingSlashesAndSymlinks) {
  TempDir dir;
  ASSERT_TRUE(util::ensure_dir(dir.sub("home")));
  ASSERT_EQ(::symlink(dir.sub("home").c_str(), dir.sub("link").c_str()), 0);
  std::string id = home_id_for(dir.sub("home"));
  EXPECT_EQ(id.size(), 12u);
  EXPECT_EQ(home_id_for(dir.sub("home") + "/"), id);
  EXPECT_EQ(home_id_for(dir.sub("link")), id);
  EXPECT_EQ(home_id_for(dir.sub("home/../home")), id);
  EXPECT_NE(home_id_for(dir.sub("other")), id);
}

TEST_F(LocalDriverTest, IsolatedEnvironmentRunsAsItsOwnUidAndFreesItOnDestroy) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "isolation needs root";
  }
  start_driver({{"isolation", "auto"}, {"uid_range", "3800000-3800099"}, {"pids_max", 100}});
  auto r = apply_ok(make_spec("pr-1", repo));
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  EXPECT_TRUE(other_warnings(r.warnings) == r.warnings) << "no \"not isolated\" warning: " << r.warnings.front();
  pid_t app = r.outputs.value("pid", 0);
  auto status = util::read_file("/proc/" + std::to_string(app) + "/status");
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(contains(*status, "Uid:\t3800000\t3800000\t3800000\t3800000")) << *status;
  EXPECT_TRUE(contains(*status, "NoNewPrivs:\t1")) << *status;
  auto id = driver->exec(env_named("pr-1"), {"sh", "-c", "id -u; printf %s \"$HOME\"; cat /proc/self/cgroup"});
  ASSERT_TRUE(id.has_value()) << id.error().message;
  std::string out = (*id)["stdout"];
  EXPECT_TRUE(util::starts_with(out, "3800000\n" + home.path() + "/envs/pr-1/home")) << out;
  EXPECT_TRUE(contains(out, ":pids:/idp-" + driver->home_id() + "/pr-1.1"))
      << "exec runs in the revision's cgroup: " << out;
  EXPECT_TRUE(contains(*util::read_file(home.sub("uids.json")), "\"pr-1\":3800000"));
  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("pr-1"), p));
  EXPECT_FALSE(contains(*util::read_file(home.sub("uids.json")), "pr-1"));
}

// Without a pids cgroup (here no cgroup hierarchy at all) an isolated environment's
// process limit is RLIMIT_NPROC for its own uid, which the kernel counts per uid: a fork
// bomb in it stops at pids_max tasks, the test ends, and the answer says which limit holds.
// Before, the limit went missing with the cgroup and the loop ran to its end.
TEST_F(LocalDriverTest, WithoutAPidsCgroupRlimitNprocStopsAForkBombOfAnIsolatedEnvironment) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "isolation (a uid of the environment's own, which RLIMIT_NPROC counts) needs root";
  }
  constexpr int k_pids_max = 40;
  start_driver({{"isolation", "auto"},
                {"uid_range", "3800100-3800199"},
                {"pids_max", k_pids_max},
                {"cgroup_root", work.sub("no-cgroups")}});
  auto r = apply_ok(make_spec("bomb", repo));
  EXPECT_EQ(status_via_router(driver->router_port(), "bomb"), 200);
  auto limits = other_warnings(r.warnings);
  ASSERT_EQ(limits.size(), 1u) << r.warnings.size();
  EXPECT_TRUE(contains(limits[0], "process limit (pids_max 40) enforced with RLIMIT_NPROC for the environment's uid"))
      << limits[0];
  auto obs = driver->observe(env_named("bomb"));
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->status["process_limit"], "RLIMIT_NPROC 40 (uid 3800100, the environment's own)");
  auto out =
      driver->exec(env_named("bomb"), {"sh", "-c",
                                       "i=0; while [ $i -lt 1000 ]; do sleep 600 </dev/null >/dev/null 2>&1 & echo $!; "
                                       "i=$((i+1)); done; echo done"});
  ASSERT_TRUE(out.has_value()) << out.error().message;
  std::string started = (*out)["stdout"];
  EXPECT_FALSE(contains(started, "done")) << "the loop ran to its end";
  EXPECT_LT(util::split(util::trim(started), '\n').size(), static_cast<size_t>(k_pids_max))
      << started << (*out)["stderr"];
  EXPECT_LE(processes_of_uid(3800100).size(), static_cast<size_t>(k_pids_max));
  EXPECT_LE(tasks_of_uid(3800100), static_cast<size_t>(k_pids_max)) << "what RLIMIT_NPROC counts";
  EXPECT_EQ(status_via_router(driver->router_port(), "bomb"), 200) << "the app keeps serving";
  RecordingProgress p;
  ASSERT_TRUE(driver->destroy(env_named("bomb"), p)); // stops everything its uid runs
  // Killed, the orphans are zombies until init reaps them: dead, so not counted.
  EXPECT_TRUE(wait_until([] { return processes_of_uid(3800100).empty(); }, 20000, 20))
      << processes_of_uid(3800100).size() << " processes of the uid left";
}

// The cgroups of an environment whose files are gone (a crash, a home restored from an
// old copy), and a parent left empty, go when the driver starts; this home's parents go
// when it stops. They were once left behind for good.
TEST_F(LocalDriverTest, StaleCgroupsAndEmptyParentsGoAtStartAndStop) {
  if (!cgroup_v1_writable()) {
    GTEST_SKIP() << "needs a writable cgroup v1 hierarchy (this test's machine has one)";
  }
  driver->stop(false);
  driver.reset();
  Cgroups cg("/sys/fs/cgroup", home_id_for(home.path()));
  auto stale = cg.create("gone.3", {256, 128, 16});
  ASSERT_TRUE(stale.has_value()) << stale.error().message;
  std::vector<std::string> parents;
  for (const auto& d : stale->dirs) {
    parents.push_back(d.substr(0, d.rfind('/')));
  }
  start_driver();
  for (const auto& d : stale->dirs) {
    EXPECT_FALSE(util::path_exists(d)) << d;
  }
  for (const auto& parent : parents) {
    EXPECT_FALSE(util::path_exists(parent)) << "left empty: " << parent;
  }
  // A running revision keeps them; a clean stop (apps stopped) removes them.
  apply_ok(make_spec("pr-1", repo));
  for (const auto& parent : parents) {
    EXPECT_TRUE(util::is_directory(parent)) << parent;
  }
  driver->stop(false);
  for (const auto& parent : parents) {
    EXPECT_FALSE(util::path_exists(parent)) << parent;
  }
  driver.reset();
}

TEST_F(LocalDriverTest, ExecRunsInTheCheckoutWithTheAppsEnvironment) {
  auto r = apply_ok(make_spec("pr-1", repo));
  auto out = driver->exec(env_named("pr-1"), {"node", "-e", "console.log(process.env.PORT + ' ' + process.cwd())"});
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ((*out)["exit_code"], 0);
  EXPECT_EQ(util::trim((*out)["stdout"].get<std::string>()),
            std::to_string(r.outputs.value("port", 0)) + " " + util::absolute_path(home.sub("envs/pr-1/rev-1/src")));
  EXPECT_EQ(driver->exec(env_named("nothing"), {"true"}).error().code, ErrorCode::not_found);

  // An exec session runs the same command in the same place, with a terminal on request.
  ExecRequest req;
  req.argv = {"sh", "-c", "echo $PORT $(pwd); test -t 0 && echo tty; echo $TERM"};
  req.tty = true;
  auto session = driver->start_exec(env_named("pr-1"), req);
  ASSERT_TRUE(session.has_value()) << session.error().message;
  std::string text;
  int64_t deadline = util::steady_ms() + 30000;
  while (!((*session)->poll_exit() && (*session)->output_done()) && util::steady_ms() < deadline) {
    for (auto& [stream, data] : (*session)->read(100)) {
      text += data;
    }
  }
  auto status = (*session)->poll_exit();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->first, 0) << text;
  EXPECT_NE(text.find(std::to_string(r.outputs.value("port", 0)) + " " +
                      util::absolute_path(home.sub("envs/pr-1/rev-1/src"))),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tty"), std::string::npos) << text;
  EXPECT_NE(text.find("xterm"), std::string::npos) << "a terminal comes with a TERM: " << text;
  ExecRequest none;
  none.argv = {"true"};
  EXPECT_EQ(driver->start_exec(env_named("nothing"), none).error().code, ErrorCode::not_found);
}

TEST_F(LocalDriverTest, ConcurrentAppliesOfDifferentEnvironments) {
  std::vector<std::thread> threads;
  std::vector<std::string> names = {"one", "two", "three"};
  std::vector<char> ok(names.size(), 0); // not vector<bool>: its bits share words between threads
  for (size_t i = 0; i < names.size(); ++i) {
    threads.emplace_back([&, i] {
      RecordingProgress p;
      ok[i] = driver->apply(make_spec(names[i], repo), p).has_value();
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(ok[i]) << names[i];
    EXPECT_EQ(status_via_router(driver->router_port(), names[i]), 200) << names[i];
  }
}

TEST_F(LocalDriverTest, FactoryCreatesTheDriverAndValidatesOptions) {
  EXPECT_EQ(local_driver_factory().name(), "local");
  DriverContext c = testing::make_context(work.sub("home2"));
  auto d = local_driver_factory().create(c);
  ASSERT_TRUE(d.has_value()) << d.error().message;
  EXPECT_EQ((*d)->name(), "local");
  c.options = {{"stop_grace", 1}};
  auto bad = local_driver_factory().create(c);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_config);
  c.options = {{"caddy_binary", "/nonexistent/caddy"}};
  auto no_caddy = local_driver_factory().create(c);
  ASSERT_TRUE(no_caddy.has_value());
  auto started = (*no_caddy)->start({});
  ASSERT_FALSE(started.has_value());
  EXPECT_TRUE(contains(started.error().message, "caddy")) << started.error().message;
}

TEST_F(LocalDriverTest, StopKeepsOrStopsTheApps) {
  auto r = apply_ok(make_spec("pr-1", repo));
  pid_t pid = r.outputs["pid"];
  pid_t caddy = driver->router_pid_for_test();
  driver->stop(true);
  EXPECT_TRUE(util::process_alive(caddy)) << "keep_running leaves the router serving them too";
  EXPECT_TRUE(util::process_alive(pid)) << "keep_running leaves environments up";
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200) << "they answer while no driver runs";
  start_driver({}, {testing::make_env("pr-1", repo)});
  EXPECT_EQ(driver->router_pid_for_test(), caddy) << "the next start adopts the running Caddy";
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
  driver->stop(false);
  EXPECT_FALSE(util::process_alive(pid));
  EXPECT_TRUE(env_processes("pr-1").empty());
  // The records stay: the next start + apply brings the environment back. A clean stop is
  // not a crash: observe() says stopped (issue 16), and the same revision starts again.
  start_driver({}, {testing::make_env("pr-1", repo)});
  auto obs = driver->observe(env_named("pr-1"));
  EXPECT_EQ(obs->health, Health::stopped);
  EXPECT_EQ(obs->detail, "stopped with the server");
  auto again = apply_ok(make_spec("pr-1", repo));
  EXPECT_EQ(again.outputs["revision"], r.outputs["revision"]) << "the same revision, started in place";
  EXPECT_EQ(driver->observe(env_named("pr-1"))->health, Health::healthy);
  EXPECT_EQ(status_via_router(driver->router_port(), "pr-1"), 200);
}

// Not a benchmark with thresholds: prints the time to healthy next to the app's own.
TEST_F(LocalDriverTest, ReportsStartupOverhead) {
  if (const char* root = std::getenv("IDP_TEST_CGROUP_ROOT")) {
    start_driver({{"cgroup_root", root}});
  }
  auto median = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<int64_t> direct, shim, whole;
  for (int i = 0; i < 5; ++i) {
    // The app alone: spawn node, poll /health as often as the driver does.
    int port = *util::find_free_port();
    util::Command c;
    c.argv = {"node", idp::testing::source_dir() + "/examples/api-service/server.js"};
    c.env = {{"PORT", std::to_string(port)}};
    int64_t t0 = util::steady_ms();
    pid_t pid = *util::spawn(c, {});
    ASSERT_TRUE(wait_until(
        [&] {
          auto r = testing::http_get("http://127.0.0.1:" + std::to_string(port) + "/health");
          return r && r->status == 200;
        },
        k_wait_ms, 5));
    direct.push_back(util::steady_ms() - t0);
    util::terminate_group(pid, 2000);

    // Through the driver: a fresh environment each time (checkout, shim, health).
    int64_t a0 = util::steady_ms();
    auto r = apply_ok(make_spec("perf-" + std::to_string(i), repo));
    whole.push_back(util::steady_ms() - a0);
    shim.push_back(r.outputs.value("startup_ms", int64_t{0}));
  }
  std::printf("time to healthy (median of 5): app alone %lld ms, shim spawn to healthy %lld ms, whole apply "
              "(checkout + spawn + health + route) %lld ms\n",
              static_cast<long long>(median(direct)), static_cast<long long>(median(shim)),
              static_cast<long long>(median(whole)));
  RecordProperty("app_alone_ms", std::to_string(median(direct)));
  RecordProperty("shim_startup_ms", std::to_string(median(shim)));
  RecordProperty("apply_ms", std::to_string(median(whole)));
  EXPECT_GT(median(shim), 0);
}

} // namespace
} // namespace idp::drivers::local
