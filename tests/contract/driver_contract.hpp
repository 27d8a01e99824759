#pragma once
// The Driver contract suite (osquery CREATE_DATABASE_TESTS style): every driver is run
// through the same TEST_Ps in driver_contract.cpp.
//
// To add a driver, link driver_contract.cpp into a test executable and instantiate:
//   INSTANTIATE_TEST_SUITE_P(Fake, DriverContract,
//                            ::testing::Values(DriverContractFactory{"fake", make_fake}),
//                            driver_contract_name);
// The factory gets a fresh temporary directory per test (removed when the test passed,
// kept when it failed) and returns a DriverContractSetup; the fixture calls start({})
// before each test, and destroy() of the environment plus stop(false) after it.
//
// What every driver guarantees (beyond driver.hpp):
// - apply is idempotent; destroy is idempotent and ok for an environment never applied;
// - plan has no side effects (observe stays not_running, the log stays empty);
// - observe after destroy is not_running; apply after destroy works;
// - a spec that cannot become healthy is an error of kind permanent or invalid_config
//   (never a crash), and a serving revision keeps serving;
// - read_logs of a destroyed (or never applied) environment is ok and empty — not
//   not_found — so `idp logs` of a just-destroyed environment is not an error.

#include <atomic>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "drivers/driver.hpp"
#include "support/test_support.hpp"

namespace idp::testing {

struct DriverContractSetup {
  std::shared_ptr<void> resources;         // what the driver needs alive (repos, servers); outlives it
  std::unique_ptr<drivers::Driver> driver; // not started yet
  drivers::DeploySpec healthy;             // becomes healthy
  drivers::DeploySpec unhealthy;           // the same environment, never healthy (e.g. no health answer)
  // Called right before the unhealthy spec is applied (a fake can script its failure here).
  std::function<void()> before_unhealthy_apply;
};

struct DriverContractFactory {
  std::string name; // the test name suffix, e.g. "local"
  std::function<DriverContractSetup(const std::string& tmpdir)> make;
};

inline void PrintTo(const DriverContractFactory& f, std::ostream* os) { *os << f.name; }

inline std::string driver_contract_name(const ::testing::TestParamInfo<DriverContractFactory>& info) {
  return info.param.name;
}

// A Progress that reports nothing and is never cancelled.
class ContractProgress final : public drivers::Progress {
public:
  void step(std::string_view) override {}
  void revision_status(core::RevisionStatus, std::string_view) override {}
  bool cancelled() const override { return false; }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }

private:
  std::atomic<bool> m_cancel{false};
};

class DriverContract : public ::testing::TestWithParam<DriverContractFactory> {
protected:
  void SetUp() override;
  void TearDown() override;

  drivers::Driver& driver() { return *m_setup.driver; }
  const drivers::DeploySpec& healthy() const { return m_setup.healthy; }
  const drivers::DeploySpec& unhealthy() const { return m_setup.unhealthy; }
  void before_unhealthy_apply() {
    if (m_setup.before_unhealthy_apply) {
      m_setup.before_unhealthy_apply();
    }
  }
  ContractProgress& progress() { return m_progress; }

private:
  TempDir m_tmp{"idp-driver-contract"}; // declared first: outlives the driver using it
  DriverContractSetup m_setup;
  ContractProgress m_progress;
};

} // namespace idp::testing
