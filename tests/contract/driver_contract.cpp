// The Driver contract: see driver_contract.hpp. Instantiated in driver_contract_test.cpp.

#include "contract/driver_contract.hpp"

namespace idp::testing {

using drivers::Health;

#define IDP_CONTRACT_OK(expr)                                                                                          \
  do {                                                                                                                 \
    auto&& idp_contract_result_ = (expr);                                                                              \
    ASSERT_TRUE(idp_contract_result_.has_value()) << #expr << ": " << idp_contract_result_.error().full_message();     \
  } while (false)

void DriverContract::SetUp() {
  m_setup = GetParam().make(m_tmp.path());
  ASSERT_NE(m_setup.driver, nullptr) << "the " << GetParam().name << " factory made no driver";
  IDP_CONTRACT_OK(m_setup.driver->start({}));
}

void DriverContract::TearDown() {
  if (m_setup.driver) {
    EXPECT_TRUE(m_setup.driver->destroy(m_setup.healthy.env, m_progress).has_value());
    m_setup.driver->stop(false);
    m_setup.driver.reset();
  }
}

TEST_P(DriverContract, ApplyIsIdempotent) {
  auto first = driver().apply(healthy(), progress());
  IDP_CONTRACT_OK(first);
  auto second = driver().apply(healthy(), progress());
  IDP_CONTRACT_OK(second);
  EXPECT_EQ(first->url, second->url);
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_P(DriverContract, PlanHasNoSideEffects) {
  IDP_CONTRACT_OK(driver().plan(healthy()));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::not_running) << obs->detail;
  auto logs = driver().read_logs(healthy().env, {});
  IDP_CONTRACT_OK(logs);
  EXPECT_TRUE(logs->lines.empty());
}

TEST_P(DriverContract, DestroyOfANeverAppliedEnvironmentIsOk) {
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
}

TEST_P(DriverContract, DestroyIsIdempotent) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
}

TEST_P(DriverContract, ObserveAfterDestroyIsNotRunning) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::not_running) << obs->detail;
}

TEST_P(DriverContract, ApplyAfterDestroyWorks) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_P(DriverContract, UnhealthySpecIsAPermanentOrConfigError) {
  before_unhealthy_apply();
  auto r = driver().apply(unhealthy(), progress());
  ASSERT_FALSE(r.has_value()) << "an app that never becomes healthy must not be reported as applied";
  EXPECT_TRUE(r.error().code == ErrorCode::permanent || r.error().code == ErrorCode::invalid_config)
      << error_code_name(r.error().code) << ": " << r.error().full_message();
  auto obs = driver().observe(unhealthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_NE(obs->health, Health::healthy);
}

TEST_P(DriverContract, UnhealthySpecKeepsTheServingRevision) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  before_unhealthy_apply();
  auto r = driver().apply(unhealthy(), progress());
  ASSERT_FALSE(r.has_value());
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_P(DriverContract, ReadLogsAfterDestroyIsEmpty) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  IDP_CONTRACT_OK(driver().destroy(healthy().env, progress()));
  auto logs = driver().read_logs(healthy().env, {});
  IDP_CONTRACT_OK(logs);
  EXPECT_TRUE(logs->lines.empty());
}

TEST_P(DriverContract, StartForgetsEnvironmentsThatAreNotLive) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  driver().stop(true);
  IDP_CONTRACT_OK(driver().start({}));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::not_running) << obs->detail;
}

TEST_P(DriverContract, StartKeepsLiveEnvironments) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  driver().stop(true);
  IDP_CONTRACT_OK(driver().start({healthy().env}));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

} // namespace idp::testing

namespace idp::testing {

// Issue 16: a clean stop of the server is not a crash. After stop(false) and start(), the
// environment is healthy (the runtime kept it) or Health::stopped (the runtime stopped it
// on purpose), never not_running; applying the same spec again makes it healthy.
TEST_P(DriverContract, CleanStopIsNotACrashAndTheSameSpecStartsItAgain) {
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  driver().stop(false);
  IDP_CONTRACT_OK(driver().start({healthy().env}));
  auto obs = driver().observe(healthy().env);
  IDP_CONTRACT_OK(obs);
  EXPECT_TRUE(obs->health == Health::healthy || obs->health == Health::stopped) << obs->detail;
  IDP_CONTRACT_OK(driver().apply(healthy(), progress()));
  auto again = driver().observe(healthy().env);
  IDP_CONTRACT_OK(again);
  EXPECT_EQ(again->health, Health::healthy) << again->detail;
}

} // namespace idp::testing
