// QA freeze (issue 12, must show 6) through GitOps: a real `idp serve` watching a local
// remote, signed push webhooks, the CLI. Pushes during a freeze are held, not deployed (the
// app keeps answering with the frozen commit); unfreeze deploys the newest of them.
#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

TEST(GitopsFreezeTest, PushesDuringAFreezeAreHeldAndUnfreezeDeploysTheNewest) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-freeze", {.poll = false});
  rig.start();
  const std::string branch = "feature/qa";
  std::string c1 = rig.commit_version(branch, "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), branch, k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env(branch, 30000);
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->log();

  auto frozen = rig.daemon->cli({"freeze", name, "--reason", "QA sign-off", "--until", "2d"});
  ASSERT_EQ(frozen.exit_code, 0) << frozen.out << frozen.err;
  EXPECT_NE(frozen.out.find("frozen at " + short_sha(c1)), std::string::npos) << frozen.out;
  auto bad = rig.daemon->cli({"freeze", name, "--until", "soon"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;

  const auto expires_before = rig.daemon->env(name)["expires_at"].get<std::string>();
  std::string c2 = rig.commit_version(branch, "v2");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), branch, c1, c2)).first, 202);
  std::string c3 = rig.commit_version(branch, "v3");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), branch, c2, c3)).first, 202);
  ASSERT_TRUE(wait_until(
      [&] {
        json f = rig.daemon->env(name)["freeze"];
        return f.is_object() && f["waiting"].size() == 2;
      },
      60000))
      << rig.daemon->env(name).dump();
  json env = rig.daemon->env(name);
  EXPECT_EQ(env["commit"], c1) << "nothing pushed during the freeze is deployed";
  EXPECT_EQ(env["deployed_commit"], c1);
  EXPECT_EQ(env["freeze"]["waiting"], json::array({c2, c3}));
  EXPECT_EQ(env["freeze"]["reason"], "QA sign-off");
  EXPECT_GE(env["expires_at"].get<std::string>(), expires_before) << "the push still extends the TTL";
  json app = rig.app_root(name);
  ASSERT_TRUE(app.is_object());
  EXPECT_EQ(app.value("version", ""), "v1") << app.dump();
  auto status = rig.daemon->cli({"status", name});
  EXPECT_NE(status.out.find("2 newer commits waiting (newest " + short_sha(c3)), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("QA sign-off"), std::string::npos) << status.out;
  auto list = rig.daemon->cli({"list"});
  EXPECT_NE(list.out.find("(frozen)"), std::string::npos) << list.out;
  auto redeploy = rig.daemon->cli({"redeploy", name});
  EXPECT_NE(redeploy.exit_code, 0) << "a redeploy cannot get around the freeze";

  auto unfrozen = rig.daemon->cli({"unfreeze", name});
  ASSERT_EQ(unfrozen.exit_code, 0) << unfrozen.out << unfrozen.err;
  ASSERT_TRUE(rig.wait_ready_at(name, c3, 90000)) << rig.daemon->env(name).dump();
  EXPECT_TRUE(rig.daemon->env(name)["freeze"].is_null());
  EXPECT_EQ(rig.app_root(name).value("version", ""), "v3") << "the newest held push";
  auto events = rig.events(name).dump();
  EXPECT_NE(events.find("\"hold\""), std::string::npos);
  EXPECT_NE(events.find("deploying the newest of 2 held commits"), std::string::npos) << events;
}

} // namespace
