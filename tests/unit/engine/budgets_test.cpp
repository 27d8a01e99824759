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
};

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
  EXPECT_TRUE(util::starts_with(refused.error().message, "budget \"payments\" is exhausted: 1.00 USD spent and "))
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("projected this month, of 10.00 USD"), std::string::npos)
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
