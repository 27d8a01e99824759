// Capacity limits (issue 12, must show 4) through GitOps on a real `idp serve`: with
// limits.environments.per_repo 1, a second branch's environment is queued (pending, its
// place in the queue in the message and in idp status), and starts once the first branch is
// deleted.
#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
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
