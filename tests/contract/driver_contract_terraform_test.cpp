// Runs the Driver contract (driver_contract.cpp) against the Terraform driver on the
// tf-test template (terraform_data only: offline). Not instantiated when neither tofu nor
// terraform is installed.

#include "contract/driver_contract.hpp"
#include "drivers/terraform/terraform_driver_factory.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {
namespace {

std::string tf_binary() {
  if (auto p = util::find_executable("tofu")) {
    return *p;
  }
  return util::find_executable("terraform").value_or("");
}

DriverContractSetup make_terraform(const std::string& tmpdir) {
  DriverContractSetup s;
  drivers::DriverContext ctx;
  ctx.home = tmpdir + "/home";
  ctx.options = {{"templates_dir", source_dir() + "/templates"}, {"binary", tf_binary()}, {"lock_timeout_ms", 5000}};
  auto d = drivers::terraform::terraform_driver_factory().create(ctx);
  if (!d) {
    ADD_FAILURE() << d.error().full_message();
    return s;
  }
  s.driver = std::move(*d);
  s.healthy.env.name = "contract";
  s.healthy.env.template_name = "tf-test";
  s.healthy.env.runtime = "terraform";
  s.healthy.env.owner = "contract@example.com";
  s.healthy.env.commit = "0123456789abcdef0123456789abcdef01234567";
  s.healthy.env.created_at = 1767225600000;
  s.healthy.env.expires_at = s.healthy.env.created_at + 86400000;
  s.healthy.revision_id = 1;
  s.healthy.template_values = {{"fail", false}};
  // tf-test's fail switch: the apply fails after one resource, like a cloud error.
  s.unhealthy = s.healthy;
  s.unhealthy.revision_id = 2;
  s.unhealthy.template_values = {{"fail", true}};
  return s;
}

std::vector<DriverContractFactory> terraform_factories() {
  if (tf_binary().empty()) {
    return {};
  }
  return {DriverContractFactory{"terraform", make_terraform}};
}

} // namespace

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DriverContract);
INSTANTIATE_TEST_SUITE_P(Terraform, DriverContract, ::testing::ValuesIn(terraform_factories()), driver_contract_name);

} // namespace idp::testing
