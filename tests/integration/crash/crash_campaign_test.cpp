// The crash campaign: for each failpoint on the way of a create, a redeploy or a destroy
// (docs/hacking.md), `idp serve` is started with "<failpoint>=abort" and dies there; a
// daemon started again without failpoints must converge: the environment reaches its
// desired state (ready at the latest commit, or destroyed) and nothing is orphaned: no
// process of another revision, no stale Caddy route, no extra revision directory or git
// worktree, no database or role of an environment that is gone.
#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "integration/templates/templates_test_support.hpp"
#include "support/home_inspection.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

enum class Phase { create, redeploy, destroy };

struct Case {
  std::string failpoint;
  Phase phase;
};

const char* phase_name(Phase p) { return p == Phase::create ? "create" : p == Phase::redeploy ? "redeploy" : "destroy"; }

// Sets an environment variable for what this test starts, restores it after.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const std::string& value) : m_name(name) {
    if (const char* old = std::getenv(name)) {
      m_old = old;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (m_old) {
      ::setenv(m_name, m_old->c_str(), 1);
    } else {
      ::unsetenv(m_name);
    }
  }

private:
  const char* m_name;
  std::optional<std::string> m_old;
};

const std::string k_env = "preview-crash";   // branch feature/crash
const std::string k_keep = "preview-keep";   // branch feature/keep: keeps the cluster up in destroy cases

class CrashCampaignTest : public TemplatesTest, public ::testing::WithParamInterface<Case> {
protected:
  CrashCampaignTest()
      : remote(tmp.sub("remote.git")), work(make_example_repo(tmp.sub("work"), "api-database", "main")) {
    remote.push(work, "main");
  }

  // A daemon polling the remote; `failpoints` armed in it ("" = none).
  void start_daemon(const std::string& failpoints) {
    std::optional<ScopedEnv> fp;
    if (!failpoints.empty()) {
      fp.emplace("IDP_FAILPOINTS", failpoints);
    }
    if (!d) {
      std::string cfg = "repositories:\n  - url: " + util::json_dump(json(remote.path())) +
                        "\n    poll: true\n    poll_interval: 200ms\n";
      d = make_daemon(json::object(), cfg);
    } else {
      d->start();
    }
  }

  // Commits a change on `branch` (created from main when new) and pushes; returns the commit.
  std::string push(const std::string& branch, const std::string& content) {
    if (work.git({"branch", "--list", branch}).empty()) {
      work.checkout("main");
      work.checkout_new_branch(branch);
    } else {
      work.checkout(branch);
    }
    work.write_file("NOTE.txt", content + "\n");
    std::string sha = work.commit("note: " + content);
    remote.push(work, branch);
    return sha;
  }

  bool wait_ready_at(const std::string& name, const std::string& commit, int timeout_ms) {
    return wait_until(
        [&] {
          json e = d->env(name);
          return e.is_object() && e.value("phase", "") == "ready" && e["deployed_commit"].is_string() &&
                 e["deployed_commit"] == commit;
        },
        timeout_ms, 100);
  }

  // Databases and roles of environments ("idp_…"), as the superuser sees them.
  std::set<std::string> psql_set(const std::string& sql) const {
    auto r = psql_superuser(sql);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::set<std::string> out;
    for (const auto& line : util::split(r.out, '\n')) {
      if (!util::trim(line).empty()) {
        out.insert(util::trim(line));
      }
    }
    return out;
  }

  // Everything of the home matches the live environments `ready`: one revision each (its
  // processes, directory, worktree and route), their databases and roles, nothing else.
  void expect_no_orphans(const std::set<std::string>& ready, bool crash_destroyed) {
    std::set<std::string> want_routes = {"idp-catch-all"};
    std::set<std::string> want_dbs;
    size_t want_worktrees = 0;
    for (const auto& env : ready) {
      want_routes.insert("idp-env-" + env);
      std::string db = "idp_" + env;
      std::replace(db.begin(), db.end(), '-', '_');
      want_dbs.insert(db);
      auto revs = process_revisions(*d, env);
      EXPECT_FALSE(revs.empty()) << env << ": no process";
      EXPECT_EQ(std::set<std::string>(revs.begin(), revs.end()).size(), 1u)
          << env << ": processes of more than one revision: " << util::join(std::vector<std::string>(revs.begin(), revs.end()), " ");
      EXPECT_EQ(revision_dirs(home, env).size(), 1u) << env << ": " << util::join(revision_dirs(home, env), " ");
      want_worktrees += 1;
    }
    if (crash_destroyed) {
      EXPECT_TRUE(process_revisions(*d, k_env).empty()) << "processes of the destroyed environment are left";
      EXPECT_FALSE(util::path_exists(home + "/envs/" + k_env)) << "files of the destroyed environment are left";
    }
    // Caddy catches up with a restarted daemon's routes at once (its start config).
    std::set<std::string> routes;
    EXPECT_TRUE(wait_until([&] { return (routes = caddy_routes(home)) == want_routes; }, 30000, 100))
        << "routes: " << util::join(std::vector<std::string>(routes.begin(), routes.end()), " ");
    auto wts = git_worktrees(home);
    EXPECT_EQ(wts.size(), want_worktrees) << util::join(wts, " ");
    for (const auto& w : wts) {
      EXPECT_TRUE(util::path_exists(w)) << "worktree " << w << " is registered but gone";
    }
    if (postmaster_pid() > 0) {
      EXPECT_EQ(psql_set("SELECT datname FROM pg_database WHERE datname LIKE 'idp\\_%' AND NOT datistemplate"),
                want_dbs);
      EXPECT_EQ(psql_set("SELECT rolname FROM pg_roles WHERE rolname LIKE 'idp\\_%'"), want_dbs);
    } else {
      ADD_FAILURE() << "PostgreSQL is not running: cannot look for leftover databases";
    }
  }

  BareRepo remote;
  GitRepo work;
  std::unique_ptr<DaemonProcess> d;
};

TEST_P(CrashCampaignTest, ConvergesWithNothingOrphaned) {
  const Case c = GetParam();
  const std::string armed = c.failpoint + "=abort";
  std::string want_commit;
  std::set<std::string> ready;

  if (c.phase == Phase::create) {
    start_daemon(armed);
    want_commit = push("feature/crash", "v1");
    ready = {k_env};
  } else {
    start_daemon("");
    if (c.phase == Phase::destroy) {
      std::string keep = push("feature/keep", "keep");
      ASSERT_TRUE(wait_ready_at(k_keep, keep, 240000)) << d->log();
    }
    std::string c1 = push("feature/crash", "v1");
    ASSERT_TRUE(wait_ready_at(k_env, c1, 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
    // Down without cleanup (apps and PostgreSQL keep running), up again with the failpoint.
    d->kill9();
    start_daemon(armed);
    ASSERT_TRUE(wait_ready_at(k_env, c1, 120000)) << d->log();
    if (c.phase == Phase::redeploy) {
      want_commit = push("feature/crash", "v2");
      ready = {k_env};
    } else {
      auto r = d->cli({"destroy", k_env, "--yes", "--no-wait"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ready = {k_keep};
    }
  }

  // The daemon dies at the failpoint.
  ASSERT_TRUE(wait_until([&] { return !d->running(); }, 240000, 100))
      << "the failpoint " << c.failpoint << " was not reached\n" << d->log();
  EXPECT_NE(d->log().find("failpoint " + c.failpoint + " fired"), std::string::npos) << d->log();

  // Up again without failpoints: it converges.
  start_daemon("");
  if (c.phase == Phase::destroy) {
    ASSERT_TRUE(d->wait_phase(k_env, "destroyed", 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
  } else {
    ASSERT_TRUE(wait_ready_at(k_env, want_commit, 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
    EXPECT_EQ(http(*d, k_env, "GET", "/health").status, 200);
  }
  // Retiring and cleanup may finish just after the phase is written: poll for the end state.
  wait_until([&] { return process_revisions(*d, k_env).size() <= 2 && git_worktrees(home).size() <= ready.size(); }, 30000, 100);
  expect_no_orphans(ready, c.phase == Phase::destroy);

  EXPECT_EQ(d->stop(), 0);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* fp : {"local.apply.pending_recorded", "local.apply.checked_out", "local.database.role_created",
                         "local.database.created", "local.apply.database_ready", "local.apply.built",
                         "local.apply.started", "router.route_set", "local.apply.routed", "local.apply.switched",
                         "engine.deploy.applied"}) {
    out.push_back({fp, Phase::create});
  }
  for (const char* fp : {"local.apply.pending_recorded", "local.apply.built", "local.apply.started", "router.route_set",
                         "local.apply.routed", "local.apply.switched", "local.apply.old_retired",
                         "engine.deploy.applied"}) {
    out.push_back({fp, Phase::redeploy});
  }
  for (const char* fp : {"router.route_removed", "local.destroy.route_removed", "local.destroy.files_removed",
                         "local.database.dropped", "engine.destroy.done"}) {
    out.push_back({fp, Phase::destroy});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Failpoints, CrashCampaignTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = std::string(phase_name(i.param.phase)) + "_" + i.param.failpoint;
                           for (auto& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) {
                               ch = '_';
                             }
                           }
                           return n;
                         });

} // namespace
