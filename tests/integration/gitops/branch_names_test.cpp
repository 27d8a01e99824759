// Branch names with shell metacharacters flow through webhooks and polling as data: they
// become valid DNS names and never run a command. Names git refuses are refused (400).
#include <set>

#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/fs.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

TEST(GitopsBranchNamesTest, ShellMetacharactersNeverRunAndBecomeDnsNames) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-names", {.poll = true, .poll_interval = "300ms"});
  rig.start();
  // Real branches: git accepts every one of these names.
  std::vector<std::string> names = {"feat/$(touch${IFS}pwned)",
                                    "a;b",
                                    "it's",
                                    "`touch${IFS}pwned`",
                                    "feat/ünïcode",
                                    "x|y&z>w",
                                    "a_b" /* sanitises like "a;b" */};
  std::map<std::string, std::string> commits;
  for (size_t i = 0; i < names.size(); ++i) {
    commits[names[i]] = rig.commit_file(names[i], "NOTE.txt", names[i] + "\n");
    if (i % 2 == 0) { // half also by webhook; the poller finds all of them
      auto [status, body] =
          rig.webhook("push", push_payload(rig.payload_repo(), names[i], k_zero_commit, commits[names[i]]));
      EXPECT_EQ(status, 202) << names[i] << ": " << body.dump();
    }
  }
  std::set<std::string> env_names;
  for (const auto& n : names) {
    std::string env = rig.wait_env(n, 60000);
    ASSERT_FALSE(env.empty()) << "no environment for " << n << "\n" << rig.daemon->log();
    EXPECT_TRUE(is_dns_label(env)) << env;
    EXPECT_LE(env.size(), 32u);
    env_names.insert(env);
  }
  EXPECT_EQ(env_names.size(), names.size()) << "distinct branches get distinct environments";
  for (const auto& n : names) {
    std::string env = rig.env_of(n)["name"];
    EXPECT_TRUE(rig.wait_ready_at(env, commits[n], 120000)) << n << ": " << rig.daemon->env(env).dump(2);
    EXPECT_EQ(rig.env_of(n)["branch"], n) << "the branch is kept verbatim";
  }

  // Names git refuses: 400 with a clear message, nothing changes.
  size_t events_before = rig.all_events().size();
  for (std::string bad : {"feat/a b", "evil\n$(touch pwned)", "a..b", "x y;touch pwned", "-rf", "HEAD:refs/x"}) {
    auto [status, body] =
        rig.webhook("push", push_payload(rig.payload_repo(), bad, k_zero_commit, std::string(40, 'a')));
    EXPECT_EQ(status, 400) << body.dump();
    EXPECT_NE(body.value("message", "").find("not a valid git branch name"), std::string::npos) << body.dump();
    auto [pr, pr_body] =
        rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "opened", 77, bad, std::string(40, 'a')));
    EXPECT_EQ(pr, 400) << pr_body.dump();
  }
  EXPECT_EQ(rig.all_events().size(), events_before);

  // No command ever ran: nothing named "pwned" anywhere we or the daemon work.
  EXPECT_TRUE(find_named(rig.tmp.path(), "pwned").empty());
  EXPECT_FALSE(util::path_exists("pwned"));
  EXPECT_FALSE(util::path_exists(util::absolute_path(".") + "/pwned"));
  for (const auto& n : names) {
    std::string env = rig.env_of(n)["name"];
    auto [status, body] = rig.daemon->get_via_router(env, "/env");
    EXPECT_EQ(status, 200) << env;
  }
}
