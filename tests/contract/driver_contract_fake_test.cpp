// The Driver contract run against the FakeDriver: the fake the engine tests rely on must
// behave like a real driver where the engine can tell.
#include "contract/driver_contract.hpp"
#include "fakes/fake_driver.hpp"

namespace idp::testing {
namespace {

DriverContractSetup make_fake(const std::string&) {
  DriverContractSetup s;
  auto fake = std::make_unique<FakeDriver>("fake");
  FakeDriver* raw = fake.get();
  s.driver = std::move(fake);
  s.healthy.env.name = "contract";
  s.healthy.env.commit = "0123456789abcdef0123456789abcdef01234567";
  s.healthy.revision_id = 1;
  s.unhealthy = s.healthy;
  s.unhealthy.revision_id = 2;
  s.before_unhealthy_apply = [raw] {
    raw->fail_next_applies({Error(ErrorCode::permanent, "health check did not pass")});
  };
  return s;
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Fake, DriverContract, ::testing::Values(DriverContractFactory{"fake", make_fake}),
                         driver_contract_name);

} // namespace idp::testing
