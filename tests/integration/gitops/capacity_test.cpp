// Capacity limits (issue 12, must show 4) through GitOps on a real `idp serve`: with
// limits.environments.per_repo 1, a second branch's environment is queued (pending, its
// place in the queue in the message and in idp status), and starts once the first branch is
// deleted.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

TEST(GitopsCapacityTest, ABranchBeyondTheRepositorysLimitIsQueuedAndStartsWhenRoomFreesUp) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-capacity",
                {.poll = false, .server_config_extra = "limits:\n  environments:\n    per_repo: 1\n"});
  rig.start();
  std::string c1 = rig.commit_version("feature/one", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/one", k_zero_commit, c1)).first, 202);
  std::string first = rig.wait_env("feature/one", 30000);
  ASSERT_TRUE(rig.wait_ready_at(first, c1, 90000)) << rig.daemon->log();

  std::string c2 = rig.commit_version("feature/two", "v2");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/two", k_zero_commit, c2)).first, 202);
  std::string second = rig.wait_env("feature/two", 30000);
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(wait_until(
      [&] { return util::starts_with(rig.daemon->env(second).value("message", ""), "queued (1 of 1): "); }, 30000))
      << rig.daemon->env(second).dump();
  json env = rig.daemon->env(second);
  EXPECT_EQ(env["phase"], "pending");
  EXPECT_TRUE(env["deployed_commit"].is_null());
  EXPECT_TRUE(rig.env_processes(second).empty()) << "nothing of it runs while queued";
  auto status = rig.daemon->cli({"status", second});
  EXPECT_NE(status.out.find("the repository's limit of 1 environment is reached"), std::string::npos) << status.out;

  rig.delete_branch("feature/one");
  ASSERT_EQ(rig.webhook("delete", delete_payload(rig.payload_repo(), "feature/one")).first, 202);
  ASSERT_TRUE(rig.wait_ready_at(second, c2, 90000)) << rig.daemon->env(second).dump();
  EXPECT_EQ(rig.app_root(second).value("version", ""), "v2");
  EXPECT_NE(rig.events(second).dump().find("\"queue\""), std::string::npos);
}

} // namespace

namespace {

// limits.concurrent_builds (issue 12): three environments created at once, whose builds
// each hold a lock directory for a while and fail if another build holds it, all become
// ready with a limit of 1, and the deploys that waited say so in their logs.
TEST(GitopsCapacityTest, BuildsBeyondConcurrentBuildsWaitForASlot) {
  TempDir tmp("idp-builds");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  // Shared by every build (an isolated build runs as its own uid: the directory is open).
  std::string shared = tmp.sub("shared");
  ASSERT_TRUE(util::ensure_dir(shared));
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  GitRepo repo(tmp.sub("repo"));
  repo.write_file("server.js", "require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), "
                               "'127.0.0.1');\n");
  repo.write_file("build.sh", "mkdir \"$LOCK\" || { echo \"another build is running\"; exit 1; }\n"
                              "sleep 2\nrmdir \"$LOCK\"\n");
  repo.write_file(".idp/config.yml",
                  "template: api-service\nhealth_check_path: /health\nenvironment:\n  LOCK: " + shared +
                      "/lock\nlocal:\n  build: \"sh build.sh\"\n  start: \"node server.js\"\n");
  repo.commit("app");
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "limits:\n  concurrent_builds: 1\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  for (const char* name : {"b1", "b2", "b3"}) {
    auto [status, body] =
        d.api("POST", "/api/v1/environments", json{{"repo", repo.path()}, {"branch", "main"}, {"name", name}}.dump());
    ASSERT_EQ(status, 202) << body.dump();
  }
  std::string logs;
  for (const char* name : {"b1", "b2", "b3"}) {
    ASSERT_TRUE(wait_until(
        [&] {
          std::string phase = d.env(name).value("phase", "");
          return phase == "ready" || phase == "failed";
        },
        120'000));
    EXPECT_EQ(d.env(name).value("phase", ""), "ready") << d.env(name).dump(2);
    logs += d.cli({"logs", name}).out;
  }
  EXPECT_EQ(logs.find("another build is running"), std::string::npos) << logs;
  EXPECT_NE(logs.find("waiting for a build slot: 1 build(s) running, limits.concurrent_builds is 1"), std::string::npos)
      << logs;
}

} // namespace
