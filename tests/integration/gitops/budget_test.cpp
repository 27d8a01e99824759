// Budgets through GitOps (issue 12, layers 2 and 3) on a real `idp serve` with the GitHub
// double: notify: [{github_comment: true}] comments once per threshold on the pull request
// of the environment the budget matches (not on another team's), and never again on later
// passes; `on_exhausted: block` refuses a pull request's create with a failure status
// naming the budget, its spend and its limit, and says why in the PR comment, leaving no
// environment; once the limit is raised, the next push deploys normally.
#include <gtest/gtest.h>

#include "fakes/fake_github.hpp"
#include "integration/gitops/gitops_test_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

const std::string k_budget_marker = "<!-- mini-idp:budget-alert -->";

json pr_by(const TestRepo& repo, const std::string& action, int number, const std::string& branch,
           const std::string& sha, const std::string& login) {
  json p = pull_request_payload(repo, action, number, branch, sha);
  p["sender"]["login"] = login;
  p["pull_request"]["user"]["login"] = login;
  return p;
}

std::vector<std::string> budget_comments(const FakeGitHub& github, int pr) {
  std::vector<std::string> out;
  for (const auto& c : github.comments(pr)) {
    if (util::starts_with(c.body, k_budget_marker)) {
      out.push_back(c.body);
    }
  }
  return out;
}

TEST(GitopsBudgetTest, ThresholdsCommentOnceOnTheMatchingPullRequestAndBlockRefusesAPullRequestsCreate) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  FakeGitHub github;
  // 250 an hour reserved (the example's 256 millicores at 1000 a vCPU-hour): 0.01 is spent
  // within a second of alice's environment running.
  GitopsRig rig("idp-gitops-budget",
                {.poll = false,
                 .github_api_url = github.url(),
                 .github_token = "ghp_budget0123456789TOKEN",
                 .server_config_extra = "cost:\n  sample_interval: 1s\n  cpu_hour: 1000\n"
                                        "teams:\n  payments:\n    members: [alice]\n"
                                        "budgets:\n  - name: payments\n    match: {team: payments}\n"
                                        "    monthly: 0.01\n    alert_at: [50, 100]\n"
                                        "    notify: [{github_comment: true}]\n    on_exhausted: block\n"});
  rig.start();

  // bob is not in the team: his pull request never hears of the budget.
  std::string bob = rig.commit_version("feature/bob", "b1");
  ASSERT_EQ(rig.webhook("pull_request", pr_by(rig.payload_repo(), "opened", 13, "feature/bob", bob, "bob")).first, 202);
  std::string bobs = rig.wait_env("feature/bob", 30000);
  ASSERT_TRUE(rig.wait_ready_at(bobs, bob, 90000)) << rig.daemon->log();

  std::string c1 = rig.commit_version("feature/alice", "a1");
  ASSERT_EQ(rig.webhook("pull_request", pr_by(rig.payload_repo(), "opened", 12, "feature/alice", c1, "alice")).first,
            202);
  std::string alices = rig.wait_env("feature/alice", 30000);
  ASSERT_TRUE(rig.wait_ready_at(alices, c1, 90000)) << rig.daemon->log();
  ASSERT_TRUE(wait_until([&] { return budget_comments(github, 12).size() >= 2; }, 60000)) << rig.daemon->log();
  auto comments = budget_comments(github, 12);
  ASSERT_EQ(comments.size(), 2u);
  EXPECT_NE(comments[0].find("Budget \"payments\" reached 50% in "), std::string::npos) << comments[0];
  EXPECT_NE(comments[1].find("Budget \"payments\" reached 100% in "), std::string::npos) << comments[1];
  EXPECT_NE(comments[1].find(" USD spent of 0.01 USD"), std::string::npos) << comments[1];
  EXPECT_NE(comments[1].find("`" + alices + "`"), std::string::npos) << comments[1];
  auto alert_events = rig.events(alices).dump();
  EXPECT_NE(alert_events.find("commented on pull request #12"), std::string::npos) << alert_events;

  // Two more usage passes later: nothing more, and nothing ever on bob's pull request.
  auto running = [&] {
    json cost = rig.daemon->api("GET", "/api/v1/cost").second;
    for (const auto& l : cost["lines"]) {
      if (l.value("name", "") == alices) {
        return l.value("running_hours", 0.0);
      }
    }
    return 0.0;
  };
  double r0 = running();
  ASSERT_TRUE(wait_until([&] { return running() > r0; }, 30000));
  double r1 = running();
  ASSERT_TRUE(wait_until([&] { return running() > r1; }, 30000));
  EXPECT_EQ(budget_comments(github, 12).size(), 2u);
  EXPECT_TRUE(budget_comments(github, 13).empty());
  EXPECT_EQ(rig.events(bobs).dump().find("budget-alert"), std::string::npos);

  // alice's next pull request: refused, told on GitHub, nothing recorded.
  std::string c2 = rig.commit_version("feature/alice-two", "a2");
  ASSERT_EQ(
      rig.webhook("pull_request", pr_by(rig.payload_repo(), "opened", 14, "feature/alice-two", c2, "alice")).first,
      202);
  auto statuses = [&](const std::string& sha) {
    std::vector<json> out;
    for (const auto& r : github.requests("POST", "/repos/idp-tests/app/statuses/" + sha)) {
      out.push_back(json::parse(r.body));
    }
    return out;
  };
  ASSERT_TRUE(wait_until([&] { return !statuses(c2).empty() && !github.comments(14).empty(); }, 30000))
      << rig.daemon->log();
  json status = statuses(c2).back();
  EXPECT_EQ(status["state"], "failure");
  std::string description = status["description"];
  EXPECT_LE(description.size(), 140u);
  EXPECT_TRUE(util::starts_with(description, "not deployed: budget \"payments\" is exhausted: ")) << description;
  EXPECT_NE(description.find(" USD spent of 0.01 USD this month"), std::string::npos) << description;
  auto refused = github.comments(14);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_NE(refused[0].body.find("not created"), std::string::npos) << refused[0].body;
  EXPECT_NE(refused[0].body.find("budget \"payments\" is exhausted"), std::string::npos) << refused[0].body;
  EXPECT_NE(refused[0].body.find("`" + short_sha(c2) + "`"), std::string::npos) << refused[0].body;
  EXPECT_TRUE(rig.env_of("feature/alice-two", true).is_null()) << "no environment left behind";

  // A higher limit: the next push creates it, and the same comment tells.
  auto cfg = util::read_file(rig.tmp.sub("server.yml"));
  ASSERT_TRUE(cfg.has_value());
  std::string text = *cfg;
  text.replace(text.find("monthly: 0.01"), std::string("monthly: 0.01").size(), "monthly: 100000000");
  ASSERT_TRUE(util::write_file_atomic(rig.tmp.sub("server.yml"), text));
  rig.restart();
  std::string c3 = rig.commit_version("feature/alice-two", "a3");
  ASSERT_EQ(
      rig.webhook("pull_request", pr_by(rig.payload_repo(), "synchronize", 14, "feature/alice-two", c3, "alice")).first,
      202);
  std::string second = rig.wait_env("feature/alice-two", 30000);
  ASSERT_FALSE(second.empty()) << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(second, c3, 90000)) << rig.daemon->log();
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = statuses(c3);
        auto c = github.comments(14);
        return !s.empty() && s.back()["state"] == "success" && c.size() == 1 &&
               c[0].body.find("Preview Environment created") != std::string::npos;
      },
      30000))
      << "one comment on the pull request, edited in place";
  EXPECT_EQ(budget_comments(github, 12).size(), 2u) << "a new limit alerts nothing again";
}

} // namespace
