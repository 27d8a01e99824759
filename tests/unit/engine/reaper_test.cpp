#include "engine_fixture.hpp"

using namespace idp;
using namespace idp::testing;
using core::Desired;
using core::Phase;

using ReaperTest = EngineTest;

// The reaper lists first and acts later; what lands in between must win.

TEST_F(ReaperTest, ExtendRacingTheReaperWins) {
  std::string repo = make_repo();
  auto r = request(repo, "feature/one");
  r.ttl = "2s";
  auto env = controller(true).create(r, "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_clock.advance(2001);
  engine::Reaper reaper(m_faulty, *m_controller, m_clock, 1000);
  bool extended = false;
  // The reaper has its list (the environment is expired in it); then the extend lands.
  m_faulty.after_next_list([&] { extended = controller().extend(env->name, "1h", "cli:alice").has_value(); });
  EXPECT_EQ(reaper.sweep(), 0u);
  ASSERT_TRUE(extended);
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->desired, Desired::present);
  EXPECT_GT(e->expires_at, m_clock.now_ms());
  EXPECT_EQ(count_events(env->name, "destroy"), 0u);
  EXPECT_EQ(count_events(env->name, "extend"), 1u);
}

TEST_F(ReaperTest, PushRacingTheReaperWins) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_clock.set(env->expires_at + 1);
  engine::Reaper reaper(m_faulty, *m_controller, m_clock, 1000);
  m_repo->write_file("PUSHED", "1");
  upd.commit = m_repo->commit("push");
  bool pushed = false;
  m_faulty.after_next_list([&] { pushed = controller().sync_branch(upd, "webhook:push", "push").has_value(); });
  EXPECT_EQ(reaper.sweep(), 0u);
  ASSERT_TRUE(pushed);
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->desired, Desired::present);
  EXPECT_EQ(count_events(env->name, "destroy"), 0u);
  ASSERT_TRUE(wait_until(
      [&] {
        auto now = m_store.get_environment(env->name);
        return now->phase == Phase::ready && now->deployed_commit == upd.commit;
      },
      10000, 5));
}

TEST_F(ReaperTest, ExpireRechecksTheCurrentRow) {
  std::string repo = make_repo();
  auto r = request(repo, "feature/one");
  r.ttl = "2s";
  auto env = controller(false).create(r, "cli:alice");
  ASSERT_TRUE(env);
  util::Millis expiry = env->expires_at;
  auto early = controller().expire(env->name, expiry - 1);
  ASSERT_TRUE(early);
  EXPECT_FALSE(*early) << "not expired yet";
  EXPECT_EQ(m_store.get_environment(env->name)->desired, Desired::present);
  auto due = controller().expire(env->name, expiry);
  ASSERT_TRUE(due);
  EXPECT_TRUE(*due) << "expired at exactly expires_at";
  EXPECT_EQ(m_store.get_environment(env->name)->desired, Desired::absent);
  auto again = controller().expire(env->name, expiry + 10);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "already being destroyed: nothing new";
  EXPECT_EQ(count_events(env->name, "destroy"), 1u);
  EXPECT_FALSE(controller().expire("no-such-env", expiry));
}
