// Issue "Foundation": a branch becomes a live preview environment on one machine.
// Real idp serve, real git, real processes, real Caddy.
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include <csignal>
#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

util::RunResult curl(const std::string& url) {
  util::Command c;
  c.argv = {"curl", "-s", "-m", "5", "-w", "\n%{http_code}", url};
  auto r = util::run(c);
  return r ? *r : util::RunResult{};
}

// Status code and body of `curl url`.
std::pair<int, std::string> curl_status(const std::string& url) {
  auto r = curl(url);
  auto nl = r.out.rfind('\n');
  if (nl == std::string::npos) {
    return {0, r.out};
  }
  return {std::atoi(r.out.substr(nl + 1).c_str()), r.out.substr(0, nl)};
}

json list_json(const DaemonProcess& d, bool all = false) {
  std::vector<std::string> args = {"list", "--json"};
  if (all) {
    args.push_back("--all");
  }
  auto r = d.cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out, nullptr, false);
}

std::vector<pid_t> env_processes(const DaemonProcess& d, const std::string& env) {
  std::vector<pid_t> out;
  for (pid_t p : d.home_processes()) {
    auto v = util::process_env_value(p, "IDP_ENVIRONMENT");
    if (v && *v == env) {
      out.push_back(p);
    }
  }
  return out;
}

} // namespace

class FoundationTest : public ::testing::Test {
protected:
  FoundationTest() : tmp("idp-foundation") { (void)util::ensure_dir(tmp.sub("home")); }
  TempDir tmp;
};

TEST_F(FoundationTest, CreateServeListExtendDestroy) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/e2e");

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/e2e"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  std::string url = "http://preview-e2e.preview.localhost:" + std::to_string(d.router_port()) + "/";
  EXPECT_EQ(created.out, url + "\n");
  EXPECT_NE(created.err.find("ready"), std::string::npos) << "the phases are shown as they pass: " << created.err;

  // curl through Caddy at the environment's URL.
  auto [status, body] = curl_status(url + "health");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("\"service\":\"api-service-demo\""), std::string::npos) << body;
  EXPECT_EQ(curl_status(url + "env").second.find("\"GREETING\":\"hello from a preview environment\"") !=
                std::string::npos,
            true)
      << "the config's environment map is injected";

  json list = list_json(d);
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 1u);
  const json& e = list[0];
  EXPECT_EQ(e["name"], "preview-e2e");
  EXPECT_EQ(e["phase"], "ready");
  EXPECT_EQ(e["url"], url);
  EXPECT_EQ(e["branch"], "feature/e2e");
  EXPECT_EQ(e["repo"], util::absolute_path(repo.path()));
  EXPECT_EQ(e["template"], "api-service");
  EXPECT_TRUE(e["owner"].is_string());
  ASSERT_TRUE(e["expires_at"].is_string());
  ASSERT_TRUE(e["created_at"].is_string());
  auto expires = util::parse_iso8601(e["expires_at"].get<std::string>());
  ASSERT_TRUE(expires);

  auto ext = d.cli({"extend", "preview-e2e", "--ttl", "1d"});
  ASSERT_EQ(ext.exit_code, 0) << ext.err;
  auto moved = util::parse_iso8601(list_json(d)[0]["expires_at"].get<std::string>());
  ASSERT_TRUE(moved);
  EXPECT_EQ(*moved - *expires, 86400LL * 1000);

  auto logs = d.cli({"logs", "preview-e2e"});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.out.find("api-service-demo v1 listening on"), std::string::npos) << logs.out;

  EXPECT_FALSE(env_processes(d, "preview-e2e").empty());
  ASSERT_TRUE(util::is_directory(d.home() + "/envs/preview-e2e"));

  auto destroyed = d.cli({"destroy", "preview-e2e", "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err;
  EXPECT_TRUE(env_processes(d, "preview-e2e").empty()) << "no process left";
  EXPECT_EQ(curl_status(url + "health").first, 404) << "the URL no longer reaches the app";
  EXPECT_FALSE(util::path_exists(d.home() + "/envs/preview-e2e")) << "no worktree left";
  util::Command wt;
  wt.argv = {"git", "-C", repo.path(), "worktree", "list"};
  auto wtl = util::run(wt);
  EXPECT_EQ(std::count(wtl->out.begin(), wtl->out.end(), '\n'), 1) << wtl->out;
  auto all = list_json(d, true);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["phase"], "destroyed");
  EXPECT_TRUE(list_json(d).empty());
  EXPECT_EQ(d.stop(), 0) << "Ctrl-C/TERM stops cleanly";
  EXPECT_TRUE(d.router_processes().empty());
}

TEST_F(FoundationTest, ShortTtlIsReapedWithReason) {
  DaemonProcess d(tmp.sub("home"), {"--ttl-min", "1s", "--reaper-interval", "1s"});
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/short");
  // --no-wait: the 3 s may run out before the app is ready (a loaded machine, a sanitized
  // build), and the reaper takes the environment whatever its phase; waiting for "ready"
  // would then fail the create, not the reaping under test.
  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/short", "--ttl", "3s", "--no-wait"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(d.wait_phase("preview-short", "destroyed", 60000)) << d.log();
  EXPECT_TRUE(env_processes(d, "preview-short").empty());
  auto [status, events] = d.api("GET", "/api/v1/environments/preview-short/events");
  ASSERT_EQ(status, 200);
  bool reaped = false;
  for (const auto& ev : events["events"]) {
    if (ev["actor"] == "reaper" && ev["action"] == "destroy") {
      reaped = ev["reason"].get<std::string>().find("ttl expired at") != std::string::npos;
    }
  }
  EXPECT_TRUE(reaped) << events.dump(2);
}

TEST_F(FoundationTest, Kill9WhileReadyThenRestartServesAgain) {
  auto d = std::make_unique<DaemonProcess>(tmp.sub("home"));
  d->start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/crash");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/crash"}).exit_code, 0) << d->log();
  int router_port = d->router_port();
  ASSERT_EQ(d->get_via_router("preview-crash", "/health").first, 200);
  auto before = env_processes(*d, "preview-crash");
  ASSERT_FALSE(before.empty());

  auto routers = d->router_processes();
  ASSERT_EQ(routers.size(), 1u);

  d->kill9();
  // Caddy and the app outlive the daemon: the environment answers while it is down.
  EXPECT_EQ(d->get_via_router("preview-crash", "/health").first, 200);
  EXPECT_EQ(d->router_processes(), routers);

  d->start();
  EXPECT_EQ(d->router_port(), router_port) << "the URL stays the same across restarts";
  EXPECT_EQ(d->get_via_router("preview-crash", "/health").first, 200) << d->log();
  EXPECT_EQ(d->env("preview-crash")["phase"], "ready");
  EXPECT_EQ(env_processes(*d, "preview-crash"), before) << "the running app was adopted, not duplicated";
  EXPECT_EQ(d->router_processes(), routers) << "the running Caddy was adopted, not replaced";
  d->stop();
  EXPECT_TRUE(d->home_processes().empty()) << "no orphan after a clean stop";
}

// A redeploy ends at the route switch; the old revision drains in the background
// (drivers.local.drain, ten minutes here). The daemon is killed (-9) while it drains: the
// restarted daemon stops it, and the new revision serves on.
TEST_F(FoundationTest, Kill9WhileARevisionIsRetiringStopsItAfterTheRestart) {
  std::ofstream(tmp.sub("server.yml")) << "drivers:\n  local:\n    drain: 10m\n";
  auto d =
      std::make_unique<DaemonProcess>(tmp.sub("home"), std::vector<std::string>{"--config", tmp.sub("server.yml")});
  d->start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/retire");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/retire"}).exit_code, 0) << d->log();
  auto revisions = [&] {
    std::set<std::string> out;
    for (pid_t p : env_processes(*d, "preview-retire")) {
      out.insert(util::process_env_value(p, "IDP_REVISION").value_or("?"));
    }
    return out;
  };
  ASSERT_EQ(revisions(), std::set<std::string>{"1"});
  repo.write_file("NOTES.md", "a second commit\n");
  std::string second = repo.commit("second");
  auto redeployed = d->cli({"redeploy", "preview-retire"});
  ASSERT_EQ(redeployed.exit_code, 0) << redeployed.err << d->log();
  EXPECT_EQ(d->env("preview-retire").value("deployed_commit", ""), second);
  EXPECT_EQ(revisions(), (std::set<std::string>{"1", "2"})) << "revision 1 drains beside revision 2";

  d->kill9();
  d->start();
  EXPECT_TRUE(wait_until([&] { return revisions() == std::set<std::string>{"2"}; }, 30000))
      << "the restart stops the revision that was retiring; running: " << revisions().size() << d->log();
  EXPECT_EQ(d->get_via_router("preview-retire", "/health").first, 200) << d->log();
  EXPECT_EQ(d->env("preview-retire")["phase"], "ready");
  d->stop();
  EXPECT_TRUE(d->home_processes().empty()) << "no orphan after a clean stop";
}

TEST_F(FoundationTest, Kill9DuringProvisioningConvergesToReady) {
  auto d = std::make_unique<DaemonProcess>(tmp.sub("home"));
  d->start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/slow");
  // A build that takes a while, so the daemon can be killed in the middle of it.
  repo.write_file(
      ".idp/config.yml",
      "template: api-service\nhealth_check_path: /health\nlocal:\n  build: \"sleep 5\"\n  start: \"node server.js\"\n");
  repo.commit("slow build");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/slow", "--no-wait"}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = d->env("preview-slow");
        return e.is_object() && e["phase"] == "provisioning" &&
               e.value("message", "").find("build") != std::string::npos;
      },
      30000))
      << d->log();
  d->kill9();
  d->start();
  ASSERT_TRUE(d->wait_phase("preview-slow", "ready", 60000)) << d->log();
  EXPECT_EQ(d->get_via_router("preview-slow", "/health").first, 200);
  // Exactly one app instance (its shim + node), no leftover build from the killed daemon.
  auto procs = env_processes(*d, "preview-slow");
  for (pid_t p : procs) {
    auto cmd = util::read_file("/proc/" + std::to_string(p) + "/cmdline").value_or("");
    EXPECT_EQ(cmd.find("sleep"), std::string::npos) << "orphaned build process " << p;
  }
  std::set<std::string> revisions;
  for (pid_t p : procs) {
    revisions.insert(util::process_env_value(p, "IDP_REVISION").value_or("?"));
  }
  EXPECT_EQ(revisions.size(), 1u) << "only the serving revision runs";
}

TEST_F(FoundationTest, CollidingBranchesGetTwoEnvironments) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/foo");
  repo.write_file(".idp/config.yml", "template: api-service\nhealth_check_path: /health\nenvironment:\n  APP_VERSION: "
                                     "from-feature-foo\nlocal:\n  start: node server.js\n");
  repo.commit("feature/foo version");
  repo.checkout_new_branch("foo");
  repo.write_file(".idp/config.yml", "template: api-service\nhealth_check_path: /health\nenvironment:\n  APP_VERSION: "
                                     "from-foo\nlocal:\n  start: node server.js\n");
  repo.commit("foo version");

  auto a = d.cli({"create", "--repo", repo.path(), "--branch", "feature/foo"});
  auto b = d.cli({"create", "--repo", repo.path(), "--branch", "foo"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(a.out, b.out);
  json list = list_json(d);
  ASSERT_EQ(list.size(), 2u);
  std::map<std::string, std::string> version_of;
  for (const auto& e : list) {
    std::string name = e["name"];
    auto [status, body] = d.get_via_router(name, "/health");
    ASSERT_EQ(status, 200) << name;
    version_of[e["branch"]] = json::parse(body)["version"];
  }
  EXPECT_EQ(version_of["feature/foo"], "from-feature-foo");
  EXPECT_EQ(version_of["foo"], "from-foo");
}

TEST_F(FoundationTest, ExecRunsInTheEnvironmentAndUnlockBreaksALease) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/ops");
  ASSERT_EQ(d.cli({"create", "--repo", repo.path(), "--branch", "feature/ops"}).exit_code, 0);
  auto ex = d.cli({"exec", "preview-ops", "--", "node", "-e", "console.log(process.env.GREETING); process.exit(3)"});
  EXPECT_EQ(ex.exit_code, 3) << "exec returns the command's exit code: " << ex.err;
  EXPECT_EQ(ex.out, "hello from a preview environment\n");
  auto ls = d.cli({"exec", "preview-ops", "--", "ls", "server.js"});
  EXPECT_EQ(ls.exit_code, 0) << "exec runs in the checkout: " << ls.err;

  // A lease left by a crashed worker of another host blocks the environment until unlocked.
  auto none = d.cli({"unlock", "preview-ops", "--yes"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("no lease was held"), std::string::npos) << none.out;
  auto no_yes = d.cli({"unlock", "preview-ops"});
  EXPECT_EQ(no_yes.exit_code, 2);
  auto [st, events] = d.api("GET", "/api/v1/environments/preview-ops/events");
  bool recorded = false;
  for (const auto& e : events["events"]) {
    recorded = recorded || e["action"] == "unlock";
  }
  EXPECT_TRUE(recorded) << "unlocking is recorded in the audit log";

  // A stuck lease (a worker of another server that died) holds the environment: a destroy
  // waits for it. `idp unlock` breaks it and the destroy goes through.
  util::Command sql;
  sql.argv = {"sqlite3", d.home() + "/state.db",
              "INSERT OR REPLACE INTO leases(env, owner, expires_at) VALUES ('preview-ops', 'other-host:4242:1', "
              "9999999999999);"};
  auto ins = util::run(sql);
  ASSERT_TRUE(ins && ins->ok()) << (ins ? ins->err : ins.error().message);
  ASSERT_EQ(d.cli({"destroy", "preview-ops", "--yes", "--no-wait"}).exit_code, 0);
  EXPECT_FALSE(d.wait_phase("preview-ops", "destroyed", 3000)) << "nobody may act while another holds the lease";
  EXPECT_EQ(d.env("preview-ops")["lease"]["owner"], "other-host:4242:1");
  auto broke = d.cli({"unlock", "preview-ops", "--yes"});
  EXPECT_EQ(broke.exit_code, 0) << broke.err;
  EXPECT_NE(broke.out.find("broke the lease held by other-host:4242:1"), std::string::npos) << broke.out;
  EXPECT_TRUE(d.wait_phase("preview-ops", "destroyed", 30000));
}

TEST_F(FoundationTest, LogsFollowStreamsNewLines) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/follow");
  ASSERT_EQ(d.cli({"create", "--repo", repo.path(), "--branch", "feature/follow"}).exit_code, 0);
  std::string out_file = tmp.sub("follow.out");
  int fd = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  util::Command c;
  c.argv = {idp_binary(), "logs", "preview-follow", "--follow", "--since", "1h"};
  c.env = {{"IDP_SERVER", d.api_url()}, {"NO_COLOR", "1"}, {"IDP_TOKEN", d.admin_token()}};
  util::SpawnOptions so;
  so.stdout_fd = fd;
  so.detach = false;
  auto pid = util::spawn(c, so);
  ::close(fd);
  ASSERT_TRUE(pid);
  // Lines already there come first...
  ASSERT_TRUE(wait_until(
      [&] { return util::read_file(out_file).value_or("").find("listening on") != std::string::npos; }, 15000));
  // ...then lines written after the follow started.
  EXPECT_EQ(d.get_via_router("preview-follow", "/echo?msg=hello-follow").first, 200);
  EXPECT_TRUE(wait_until(
      [&] { return util::read_file(out_file).value_or("").find("echo: hello-follow") != std::string::npos; }, 15000))
      << util::read_file(out_file).value_or("");
  // Since filters out older lines.
  auto recent = d.cli({"logs", "preview-follow", "--since", "2026-01-01T00:00:00Z"});
  EXPECT_NE(recent.out.find("echo: hello-follow"), std::string::npos);
  auto future = d.cli({"logs", "preview-follow", "--since", "2999-01-01T00:00:00Z"});
  EXPECT_EQ(future.exit_code, 0);
  EXPECT_EQ(future.out, "");
  // The stream ends by itself when the environment is destroyed.
  ASSERT_EQ(d.cli({"destroy", "preview-follow", "--yes"}).exit_code, 0);
  EXPECT_TRUE(util::wait_child(*pid, 15000).has_value()) << "idp logs --follow returns after the destroy";
  ::kill(*pid, SIGKILL);
  util::wait_child(*pid, 1000);
}
