// The usage sampler on a runtime without counters of its own (Terraform/ECS, Kubernetes:
// Driver::usage() says nothing measured): an environment is priced by its reservation (the
// config's cpu and memory) for the time it runs, labelled an estimate, and a sleeping one
// accrues nothing (issue 12). FakeDriver and FakeClock: no waiting on real time.
#include "engine/usage_sampler.hpp"

#include "engine/cost.hpp"
#include "engine_fixture.hpp"

using namespace idp;
using namespace idp::testing;
using core::Phase;

namespace {

using UsageSamplerTest = EngineTest;

struct Totals {
  int64_t running_ms = 0;
  int64_t measured_ms = 0;
  double reserved_cpu_ms = 0;
  double reserved_memory_mb_ms = 0;
};

Totals totals(InMemoryStore& store, const std::string& env) {
  Totals t;
  auto hours = store.list_usage(0, INT64_MAX / 2, env);
  EXPECT_TRUE(hours);
  for (const auto& h : hours.value_or(std::vector<store::UsageHour>{})) {
    t.running_ms += h.running_ms;
    t.measured_ms += h.measured_ms;
    t.reserved_cpu_ms += h.reserved_cpu_ms;
    t.reserved_memory_mb_ms += h.reserved_memory_mb_ms;
  }
  return t;
}

TEST_F(UsageSamplerTest, WithoutCountersAnEnvironmentIsPricedByItsReservationWhileItRunsAndNotAsleep) {
  std::string repo = make_repo(); // the example app: cpu 256, memory 512
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  engine::UsageSampler sampler(m_store, m_drivers, m_clock, 60'000, 0);
  ASSERT_EQ(*sampler.sample(), 0u) << "first seen: its time starts now";
  m_clock.advance(10 * 60'000);
  ASSERT_EQ(*sampler.sample(), 1u);
  Totals running = totals(m_store, env->name);
  EXPECT_EQ(running.running_ms, 10 * 60'000);
  EXPECT_DOUBLE_EQ(running.reserved_cpu_ms, 256.0 * 10 * 60'000);
  EXPECT_DOUBLE_EQ(running.reserved_memory_mb_ms, 512.0 * 10 * 60'000);
  EXPECT_EQ(running.measured_ms, 0) << "nothing measured: an estimate";

  engine::CostRates rates;
  auto lines =
      engine::summarize_cost(*m_store.list_usage(0, INT64_MAX / 2, env->name), rates, m_clock.now_ms(), "", nullptr);
  ASSERT_EQ(lines.size(), 1u);
  // 10 minutes of a quarter vCPU and half a GB at Fargate's prices.
  double hours = 10.0 / 60;
  EXPECT_NEAR(lines[0].to_date.reserved, hours * (0.25 * rates.cpu_hour + 0.5 * rates.memory_gb_hour), 1e-12);
  EXPECT_EQ(lines[0].to_date.measured_hours, 0);

  ASSERT_TRUE(controller().sleep(env->name, "cli:alice", "by hand", "cli:alice"));
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e && e->sleep && e->sleep->state == core::Sleep::State::asleep;
      },
      10'000));
  m_clock.advance(30 * 60'000);
  ASSERT_TRUE(sampler.sample());
  Totals asleep = totals(m_store, env->name);
  EXPECT_EQ(asleep.running_ms, running.running_ms) << "asleep: no reservation accrues";
  EXPECT_DOUBLE_EQ(asleep.reserved_cpu_ms, running.reserved_cpu_ms);

  ASSERT_TRUE(controller().wake(env->name, "cli:alice", "by hand"));
  ASSERT_TRUE(wait_until([&] { return !m_store.get_environment(env->name)->sleep; }, 10'000));
  m_clock.advance(5 * 60'000);
  ASSERT_TRUE(sampler.sample());
  EXPECT_EQ(totals(m_store, env->name).running_ms, running.running_ms + 5 * 60'000) << "awake again: it accrues";
}

} // namespace
