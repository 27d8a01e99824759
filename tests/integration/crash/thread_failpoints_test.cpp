// Every long-lived thread of `idp serve` survives an exception: the daemon starts with
// IDP_FAILPOINTS making each thread's loop throw once ("thread.<name>=throw*1"). Each throw
// is logged with the thread's name, and the daemon keeps doing everything those threads do:
// polling, the branch queue, reconciling, routing, PostgreSQL, the API.
#include <cstdlib>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/json.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// Threads whose failpoint fires in this rig (a repository polled over webhooks, the local
// driver with a database): the PeriodicThreads, the branch queue, the reconciler's loop and
// lease renewal, the router's and PostgreSQL's supervisors, the job scheduler, the API.
const std::vector<std::string> k_threads = {"reaper",      "poller",        "branch_queue",     "reconciler",
                                            "lease_renew", "job_scheduler", "router_supervise", "postgres_supervise",
                                            "api_server"};

std::string failpoints_spec() {
  std::string spec;
  for (const auto& t : k_threads) {
    spec += (spec.empty() ? "" : ",") + std::string("thread.") + t + "=throw*1";
  }
  return spec;
}

// Sets an environment variable for the daemons this test starts, restores it after.
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

} // namespace

TEST(ThreadFailpointsTest, EachThreadLogsAThrowAndTheDaemonKeepsWorking) {
  GitopsRig rig("idp-thread-failpoints", {.poll = true, .poll_interval = "200ms", .webhooks = false});
  // PostgreSQL runs as an unprivileged user that must walk to <home>/postgres.
  ::chmod(rig.tmp.path().c_str(), 0711);
  {
    ScopedEnv fp("IDP_FAILPOINTS", failpoints_spec());
    rig.start();
  }

  // A pushed branch is found by the poller, queued, reconciled and routed.
  std::string c1 = rig.commit_version("feature/survive", "v1");
  std::string name = rig.wait_env("feature/survive", 60000);
  ASSERT_FALSE(name.empty()) << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 120000)) << util::json_dump(rig.daemon->env(name), 2) << rig.daemon->log();
  EXPECT_EQ(rig.app_root(name)["version"], "v1");

  // A database environment through the CLI starts PostgreSQL (and its supervisor).
  GitRepo db_repo = make_example_repo(rig.tmp.sub("db-app"), "api-database", "feature/db");
  auto created = rig.daemon->cli({"create", "--repo", db_repo.path(), "--branch", "feature/db"});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err << rig.daemon->log();
  EXPECT_TRUE(rig.daemon->wait_phase("preview-db", "ready", 120000)) << rig.daemon->log();

  // Each thread's failpoint fired and its throw was logged with the thread's name.
  for (const auto& t : k_threads) {
    std::string fired = "failpoint thread." + t + " fired";
    std::string caught = "thread " + t + ": caught an exception, carrying on: failpoint thread." + t + " fired";
    EXPECT_TRUE(wait_until([&] { return rig.daemon->log().find(caught) != std::string::npos; }, 30000, 50))
        << "no logged throw in thread " << t << "\n"
        << rig.daemon->log();
  }

  // After the throws every thread still works: a new push is polled, queued and deployed,
  // and the API answers.
  std::string c2 = rig.commit_version("feature/survive", "v2");
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 120000)) << util::json_dump(rig.daemon->env(name), 2) << rig.daemon->log();
  EXPECT_EQ(rig.app_root(name)["version"], "v2");
  auto [status, body] = rig.daemon->api("GET", "/api/v1/environments");
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(rig.daemon->running());
  EXPECT_EQ(rig.daemon->log().find("terminate called"), std::string::npos);

  // Destroy both: the reconciler and the router still do their part.
  EXPECT_EQ(rig.daemon->cli({"destroy", "preview-db", "--yes"}).exit_code, 0);
  EXPECT_TRUE(rig.daemon->wait_phase("preview-db", "destroyed", 120000)) << rig.daemon->log();
}
