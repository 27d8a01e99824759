// Idle sleep in the engine (issue 12): the sleeper puts an environment idle past its
// sleep_after to sleep through the controller; the reconciler asks the driver and records
// it asleep; a wake applies the serving revision again (no new revision) and ends the
// Sleep; a deploy wakes it too. With FakeDriver and FakeClock: no waiting on real time.
#include "engine/idle_sleeper.hpp"

#include "engine_fixture.hpp"

using namespace idp;
using namespace idp::testing;
using core::Phase;

namespace {

using IdleSleeperTest = EngineTest;

bool state_is(InMemoryStore& store, const std::string& name, std::optional<core::Sleep::State> want) {
  auto e = store.get_environment(name);
  if (!e) {
    return false;
  }
  if (!want) {
    return !e->sleep;
  }
  return e->sleep && e->sleep->state == *want;
}

TEST(SleepPolicyTest, TheConfigAsksAndTheServerBounds) {
  engine::SleepPolicy p;
  core::AppConfig cfg;
  EXPECT_EQ(p.effective(cfg), 0) << "no default: never";
  p.default_after = 30 * 60'000;
  EXPECT_EQ(p.effective(cfg), 30 * 60'000);
  cfg.sleep_after_ms = 0;
  EXPECT_EQ(p.effective(cfg), 0) << "never, when the server has no maximum";
  cfg.sleep_after_ms = 5 * 60'000;
  EXPECT_EQ(p.effective(cfg), 5 * 60'000);
  p.max_after = 60 * 60'000;
  cfg.sleep_after_ms = 0;
  EXPECT_EQ(p.effective(cfg), 60 * 60'000) << "never is capped by the maximum";
  cfg.sleep_after_ms = 4 * 3600'000;
  EXPECT_EQ(p.effective(cfg), 60 * 60'000);
}

TEST_F(IdleSleeperTest, AnIdleEnvironmentSleepsAndAWakeStartsTheSameRevisionAgain) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  engine::SleepPolicy policy;
  policy.default_after = 60'000;
  engine::IdleSleeper sleeper(m_store, m_drivers, controller(), m_clock, policy);
  ASSERT_EQ(*sleeper.check(), 0u) << "first seen awake: its idle time starts now";
  m_clock.advance(30'000);
  m_driver.set_last_request(env->name, m_clock.now_ms());
  m_clock.advance(40'000);
  EXPECT_EQ(*sleeper.check(), 0u) << "requested 40 s ago: not idle yet";
  m_clock.advance(20'000);
  ASSERT_EQ(*sleeper.check(), 1u);
  ASSERT_TRUE(wait_until([&] { return state_is(m_store, env->name, core::Sleep::State::asleep); }, 10'000));
  EXPECT_EQ(m_driver.count("sleep", env->name), 1u);
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->sleep->by, "idle");
  EXPECT_EQ(e->sleep->reason, "no request for 1m");
  EXPECT_EQ(e->phase, Phase::ready);
  EXPECT_TRUE(e->sleeping());
  EXPECT_EQ(count_events(env->name, "sleep"), 1u);
  EXPECT_EQ(*sleeper.check(), 0u) << "asleep: nothing more to do";
  size_t applies = m_driver.count("apply", env->name);

  auto w = controller().wake(env->name, "request", "a request to its URL");
  ASSERT_TRUE(w) << w.error().message;
  ASSERT_TRUE(wait_until([&] { return state_is(m_store, env->name, std::nullopt); }, 10'000));
  EXPECT_EQ(m_driver.count("apply", env->name), applies + 1) << "the serving revision, started again";
  EXPECT_EQ(m_store.list_revisions(env->name, 10)->size(), 1u) << "no new revision";
  EXPECT_EQ(count_events(env->name, "wake"), 1u);
  EXPECT_EQ(m_store.get_environment(env->name)->phase, Phase::ready);
  // Woken: the whole period again before the next sleep.
  EXPECT_EQ(*sleeper.check(), 0u);
  m_clock.advance(59'000);
  EXPECT_EQ(*sleeper.check(), 0u);
}

TEST_F(IdleSleeperTest, OnlyAReadyEnvironmentSleepsAndADeployWakesIt) {
  std::string repo = make_repo();
  m_driver.hold_applies(true);
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 1, 10'000));
  auto busy = controller().sleep(env->name, "cli:alice", "by hand", "cli:alice");
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, ErrorCode::conflict);
  EXPECT_NE(busy.error().message.find("only a ready environment can sleep"), std::string::npos);
  EXPECT_FALSE(m_store.get_environment(env->name)->sleep) << "nothing recorded";
  m_driver.hold_applies(false);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));

  ASSERT_TRUE(controller().sleep(env->name, "cli:alice", "by hand", "cli:alice"));
  ASSERT_TRUE(wait_until([&] { return state_is(m_store, env->name, core::Sleep::State::asleep); }, 10'000));
  auto again = controller().sleep(env->name, "cli:alice", "by hand", "cli:alice");
  ASSERT_TRUE(again) << "asleep already: ok, unchanged";
  EXPECT_EQ(m_driver.count("sleep", env->name), 1u);

  auto r = controller().redeploy(env->name, "", "cli:alice");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e && !e->sleep && e->phase == Phase::ready && e->observed_generation == e->generation;
      },
      10'000));
  EXPECT_EQ(m_driver.live().count(env->name), 1u);
}

} // namespace
