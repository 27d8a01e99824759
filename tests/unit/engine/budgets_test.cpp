// Issue 12, must show 2 (the engine's half): a budget's thresholds alert once each, lowest
// first, as the month's spend of the environments it matches grows; a failed webhook is
// named in the event and not sent again; `block` refuses a create it matches while the
// month is projected past the limit (kind budget_exhausted), and only those it matches.
#include "engine/budgets.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "util/strings.hpp"

namespace idp::engine {
namespace {

constexpr util::Millis k_budget_hour = 3'600'000;

// One hour of `env` of `owner` running 1 vCPU: 1.00 at the rates below.
store::UsageHour hour_of(const std::string& env, const std::string& owner, util::Millis at) {
  store::UsageHour u;
  u.env = env;
  u.hour = at - at % k_budget_hour;
  u.owner = owner;
  u.repo = "https://github.com/acme/shop.git";
  u.running_ms = k_budget_hour;
  u.reserved_cpu_ms = 1024.0 * k_budget_hour;
  return u;
}

struct Rig {
  idp::testing::InMemoryStore store;
  std::vector<std::pair<std::string, std::string>> comments; // environment, body
  idp::testing::FakeClock clock{*util::parse_iso8601("2026-11-10T00:30:00Z")};
  std::vector<std::pair<std::string, std::string>> posts;
  bool fail_posts = false;
  std::unique_ptr<Budgets> budgets;

  explicit Rig(std::vector<Budget> list) {
    CostRates r;
    r.cpu_hour = 1;
    r.memory_gb_hour = 0;
    r.storage_gb_month = 0;
    budgets =
        std::make_unique<Budgets>(std::move(list), store, r, std::map<std::string, std::string>{{"alice", "payments"}},
                                  clock, [this](const std::string& url, const std::string& body) -> Expected<void> {
                                    posts.emplace_back(url, body);
                                    if (fail_posts) {
                                      return make_error(ErrorCode::transient, "the webhook answered HTTP 500");
                                    }
                                    return {};
                                  });
  }
  // github_comment alerts recorded in `comments`; repositories outside acme/ are not on GitHub.
  void record_comments(bool fail = false) {
    budgets->set_commenter([this, fail](const core::Environment& env, const std::string& body) -> Expected<bool> {
      if (!util::starts_with(env.repo, "https://github.com/acme/")) {
        return false;
      }
      comments.emplace_back(env.name, body);
      if (fail) {
        return make_error(ErrorCode::transient, "the comment was refused: HTTP 502");
      }
      return true;
    });
  }
};

core::Environment pr_env(const std::string& name, const std::string& owner, std::optional<int> pr,
                         const std::string& repo = "https://github.com/acme/shop.git") {
  core::Environment e;
  e.name = name;
  e.owner = owner;
  e.repo = repo;
  e.branch = name;
  e.pr_number = pr;
  e.phase = core::Phase::ready;
  return e;
}

Budget payments() {
  Budget b;
  b.name = "payments";
  b.team = "payments";
  b.monthly = 10;
  b.alert_at = {100, 50, 80};
  b.webhooks = {"https://hooks.example.com/x"};
  b.on_exhausted = "block";
  return b;
}

TEST(BudgetsTest, EachThresholdAlertsOnceAMonthLowestFirst) {
  Rig rig({payments()});
  util::Millis t = rig.clock.now_ms();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", t - i * k_budget_hour)}));   // 4.00 of 10
    ASSERT_TRUE(rig.store.add_usage({hour_of("other", "carol", t - i * k_budget_hour)})); // not the team's
  }
  auto none = rig.budgets->check_alerts();
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty()) << "40% reaches no threshold";
  ASSERT_TRUE(rig.store.add_usage(
      {hour_of("web", "alice", t - 4 * k_budget_hour), hour_of("web", "alice", t - 5 * k_budget_hour),
       hour_of("web", "alice", t - 6 * k_budget_hour), hour_of("web", "alice", t - 7 * k_budget_hour),
       hour_of("web", "alice", t - 8 * k_budget_hour)})); // 9.00: 90%
  auto two = rig.budgets->check_alerts();
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(*two, (std::vector<std::string>{"payments 50%", "payments 80%"}));
  ASSERT_EQ(rig.posts.size(), 2u);
  EXPECT_EQ(rig.posts[0].first, "https://hooks.example.com/x");
  auto body = nlohmann::json::parse(rig.posts[0].second);
  EXPECT_EQ(body["threshold"], 50);
  EXPECT_EQ(body["text"],
            "Budget \"payments\" reached 50% in 2026-11: 9.00 USD spent of 10.00 USD (90%), about " +
                body["text"].get<std::string>().substr(body["text"].get<std::string>().find("about ") + 6));
  EXPECT_DOUBLE_EQ(body["spent"].get<double>(), 9);
  auto again = rig.budgets->check_alerts();
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->empty()) << "each threshold once";

  rig.fail_posts = true;
  ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", t - 9 * k_budget_hour)})); // 10.00: 100%
  auto full = rig.budgets->check_alerts();
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(*full, std::vector<std::string>{"payments 100%"});
  EXPECT_TRUE(rig.budgets->check_alerts()->empty()) << "a failed webhook is not sent again";
  auto events = rig.store.list_events(store::EventQuery{});
  ASSERT_TRUE(events.has_value());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ(events->back().action, "budget-alert");
  EXPECT_NE(events->back().reason.find("1 webhook(s) failed: the webhook answered HTTP 500"), std::string::npos)
      << events->back().reason;
  EXPECT_EQ(events->back().reason.find("hooks.example.com"), std::string::npos) << "the address may be a secret";

  // Next month starts again from nothing.
  rig.clock.set(*util::parse_iso8601("2026-12-01T00:30:00Z"));
  EXPECT_TRUE(rig.budgets->check_alerts()->empty());
}

TEST(BudgetsTest, BlockRefusesACreateItMatchesWhileTheMonthIsProjectedPastTheLimit) {
  Budget watch = payments();
  watch.name = "shop-watch";
  watch.team.clear();
  watch.repo = "acme/shop";
  watch.monthly = 1000;
  watch.on_exhausted = "none";
  Rig rig({payments(), watch});
  util::Millis t = rig.clock.now_ms();
  ASSERT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "alice").has_value()) << "nothing spent";
  ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", t)})); // 1.00 now, 24.00/day: projected far past 10
  auto refused = rig.budgets->admit("https://github.com/acme/shop.git", "alice");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::conflict);
  EXPECT_EQ(refused.error().kind, "budget_exhausted");
  // Budget, spend and limit first: what a commit status's 140 characters keep.
  EXPECT_TRUE(util::starts_with(refused.error().message,
                                "budget \"payments\" is exhausted: 1.00 USD spent of 10.00 USD this month, "))
      << refused.error().message;
  EXPECT_NE(refused.error().message.find(" projected; no new environment until next month"), std::string::npos)
      << refused.error().message;
  EXPECT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "carol").has_value()) << "not the team's";
  auto states = rig.budgets->states();
  ASSERT_TRUE(states.has_value());
  ASSERT_EQ(states->size(), 2u);
  EXPECT_DOUBLE_EQ((*states)[1].spent, 1) << "shop-watch matches the repository, whoever owns it";
  EXPECT_TRUE(rig.budgets->matches(watch, "git@github.com:acme/shop.git", "x"));
  EXPECT_FALSE(rig.budgets->matches(watch, "https://github.com/acme/shopping.git", "x"));
}

} // namespace
} // namespace idp::engine

namespace idp::engine {
namespace {

// github_comment (issue 12): an alert goes to the pull requests of the live environments the
// budget matches: not an environment without a pull request, not another team's, not one of
// another repository, not one being destroyed.
TEST(BudgetsTest, GithubCommentAlertsGoToThePullRequestsOfTheEnvironmentsItMatches) {
  Budget team = payments();
  Budget shop = payments();
  shop.name = "shop";
  shop.team.clear();
  shop.repo = "acme/shop";
  Rig rig({team, shop});
  core::Environment destroying = pr_env("going", "alice", 5);
  destroying.phase = core::Phase::destroying;
  core::Environment absent = pr_env("asked-gone", "alice", 6);
  absent.desired = core::Desired::absent;
  std::vector<core::Environment> envs = {pr_env("web", "alice", 7),
                                         pr_env("no-pr", "alice", std::nullopt),
                                         pr_env("carols", "carol", 8),
                                         pr_env("elsewhere", "alice", 9, "https://github.com/acme/other.git"),
                                         destroying,
                                         absent};
  auto names = [](const std::vector<core::Environment>& list) {
    std::vector<std::string> out;
    for (const auto& e : list) {
      out.push_back(e.name);
    }
    return out;
  };
  EXPECT_EQ(names(rig.budgets->pr_environments(team, envs)), (std::vector<std::string>{"web", "elsewhere"}))
      << "the team's, whichever repository";
  EXPECT_EQ(names(rig.budgets->pr_environments(shop, envs)), (std::vector<std::string>{"web", "carols"}))
      << "the repository's, whoever owns them";
}

TEST(BudgetsTest, GithubCommentAlertsPostOneCommentPerThresholdOnEachPullRequestAndAnEventEach) {
  Budget b = payments();
  b.webhooks.clear();
  b.github_comment = true;
  b.alert_at = {50, 100};
  Rig rig({b});
  rig.record_comments();
  util::Millis t = rig.clock.now_ms();
  for (const auto& e : {pr_env("web", "alice", 7), pr_env("api", "alice", 8), pr_env("carols", "carol", 9),
                        pr_env("gitlab", "alice", 10, "https://gitlab.example.com/acme/shop.git"),
                        pr_env("main", "alice", std::nullopt)}) {
    ASSERT_TRUE(rig.store.insert_environment(e, {}).has_value());
  }
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", t - i * k_budget_hour)})); // 6.00 of 10
  }
  auto first = rig.budgets->check_alerts();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, std::vector<std::string>{"payments 50%"});
  ASSERT_EQ(rig.comments.size(), 2u) << "web and api: alice's pull requests on GitHub";
  EXPECT_EQ(rig.comments[0].first, "api");
  EXPECT_EQ(rig.comments[1].first, "web");
  const std::string& body = rig.comments[1].second;
  EXPECT_TRUE(util::starts_with(body, k_budget_comment_marker)) << body;
  EXPECT_NE(body.find("Budget \"payments\" reached 50% in 2026-11: 6.00 USD spent of 10.00 USD (60%)"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("environment `web` counts toward this budget"), std::string::npos) << body;
  EXPECT_TRUE(rig.posts.empty()) << "no webhook configured";
  EXPECT_TRUE(rig.budgets->check_alerts()->empty());
  EXPECT_EQ(rig.comments.size(), 2u) << "each threshold once";

  rig.comments.clear();
  rig.record_comments(true);
  for (int i = 6; i < 10; ++i) {
    ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", t - i * k_budget_hour)})); // 10.00: 100%
  }
  EXPECT_EQ(*rig.budgets->check_alerts(), std::vector<std::string>{"payments 100%"});
  EXPECT_EQ(rig.comments.size(), 2u);
  EXPECT_TRUE(rig.budgets->check_alerts()->empty()) << "a failed comment is not posted again";
  EXPECT_EQ(rig.comments.size(), 2u);

  store::EventQuery q;
  q.env = "web";
  auto web = rig.store.list_events(q);
  ASSERT_TRUE(web.has_value());
  ASSERT_EQ(web->size(), 2u);
  EXPECT_EQ((*web)[0].action, "budget-alert");
  EXPECT_NE((*web)[0].reason.find("reached 50%"), std::string::npos) << (*web)[0].reason;
  EXPECT_NE((*web)[0].reason.find("commented on pull request #7"), std::string::npos) << (*web)[0].reason;
  EXPECT_NE((*web)[1].reason.find("the comment on pull request #7 failed: "), std::string::npos) << (*web)[1].reason;
  for (const char* other : {"carols", "gitlab", "main"}) {
    q.env = other;
    EXPECT_TRUE(rig.store.list_events(q)->empty()) << other;
  }
}

} // namespace
} // namespace idp::engine

namespace idp::engine {
namespace {

// Guardrails (issue 12, must show 2): when a create matches an exhausted budget, `sleep`
// puts the budget's idle environments to sleep (not a busy one, not another team's) and
// `destroy_oldest` destroys its least recently used one, each with the reason; the create
// goes on.
struct GuardrailRig : Rig {
  std::map<std::string, util::Millis> last_request;
  std::vector<std::pair<std::string, std::string>> slept;     // env, reason
  std::vector<std::pair<std::string, std::string>> destroyed; // env, reason

  explicit GuardrailRig(Budget b) : Rig({std::move(b)}) {
    Budgets::Guardrails g;
    g.last_request = [this](const core::Environment& e) -> std::optional<util::Millis> {
      auto it = last_request.find(e.name);
      return it == last_request.end() ? std::nullopt : std::optional<util::Millis>(it->second);
    };
    g.sleep = [this](const std::string& env, const std::string& by, const std::string& reason) -> Expected<void> {
      EXPECT_EQ(by, "budget:payments");
      slept.emplace_back(env, reason);
      return {};
    };
    g.destroy = [this](const std::string& env, const std::string& reason) -> Expected<void> {
      destroyed.emplace_back(env, reason);
      return {};
    };
    budgets->set_guardrails(std::move(g));
  }
  void add(const std::string& name, const std::string& owner, util::Millis created_ago) {
    core::Environment e = pr_env(name, owner, std::nullopt);
    e.created_at = clock.now_ms() - created_ago;
    ASSERT_TRUE(store.insert_environment(e, {}).has_value());
  }
};

TEST(BudgetsTest, GuardrailSleepPutsTheBudgetsIdleEnvironmentsToSleepAndTheCreateGoesOn) {
  Budget b = payments();
  b.on_exhausted = "sleep";
  GuardrailRig rig(b);
  util::Millis now = rig.clock.now_ms();
  rig.add("idle-one", "alice", 3 * k_budget_hour);
  rig.add("busy", "alice", 3 * k_budget_hour);
  rig.add("never-asked", "alice", 2 * k_budget_hour);
  rig.add("fresh", "alice", 60'000); // created a minute ago: not idle yet
  rig.add("carols", "carol", 3 * k_budget_hour);
  rig.last_request["idle-one"] = now - 30 * 60'000;
  rig.last_request["busy"] = now - 30'000;
  ASSERT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "alice").has_value());
  EXPECT_TRUE(rig.slept.empty()) << "not exhausted: nothing happens";

  ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", now)})); // projected far past 10
  ASSERT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "alice").has_value()) << "the create goes on";
  std::vector<std::string> names;
  for (const auto& [env, reason] : rig.slept) {
    names.push_back(env);
    EXPECT_TRUE(util::starts_with(reason, "budget \"payments\" is exhausted: 1.00 USD spent of 10.00 USD")) << reason;
    EXPECT_NE(reason.find("(on_exhausted: sleep)"), std::string::npos) << reason;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"never-asked", "idle-one"})) << "least recently used first";
  EXPECT_NE(rig.slept[1].second.find("idle for 30m"), std::string::npos) << rig.slept[1].second;
  EXPECT_TRUE(rig.destroyed.empty());
}

TEST(BudgetsTest, GuardrailDestroyOldestDestroysTheLeastRecentlyUsedOfTheBudgetAndTheCreateGoesOn) {
  Budget b = payments();
  b.on_exhausted = "destroy_oldest";
  GuardrailRig rig(b);
  util::Millis now = rig.clock.now_ms();
  rig.add("oldest-created", "alice", 9 * k_budget_hour);
  rig.add("least-used", "alice", 5 * k_budget_hour);
  rig.add("carols", "carol", 20 * k_budget_hour); // older, but another team's
  rig.last_request["oldest-created"] = now - 60'000;
  rig.last_request["least-used"] = now - 4 * k_budget_hour;
  ASSERT_TRUE(rig.store.add_usage({hour_of("web", "alice", now)}));
  ASSERT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "alice").has_value());
  ASSERT_EQ(rig.destroyed.size(), 1u);
  EXPECT_EQ(rig.destroyed[0].first, "least-used");
  EXPECT_NE(rig.destroyed[0].second.find("the least recently used of its environments is destroyed to make room"),
            std::string::npos)
      << rig.destroyed[0].second;
  EXPECT_TRUE(rig.slept.empty());
  EXPECT_TRUE(rig.budgets->admit("https://github.com/acme/shop.git", "carol").has_value());
  EXPECT_EQ(rig.destroyed.size(), 1u) << "carol's create matches no budget";
}

} // namespace
} // namespace idp::engine
