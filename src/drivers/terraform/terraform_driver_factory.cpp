#include "drivers/terraform/terraform_driver_factory.hpp"

#include "drivers/terraform/terraform_driver.hpp"
#include "drivers/terraform/terraform_options.hpp"

namespace idp::drivers::terraform {

namespace {

class TerraformDriverFactory final : public DriverFactory {
public:
  std::string_view name() const override { return "terraform"; }
  std::string_view description() const override {
    return "AWS (ECS Fargate, RDS, S3/CloudFront) through Terraform or OpenTofu templates";
  }
  Expected<std::unique_ptr<Driver>> create(const DriverContext& ctx) const override {
    if (ctx.home.empty()) {
      return make_error(ErrorCode::invalid_config, "driver \"terraform\": no home directory");
    }
    IDP_TRY_ASSIGN(TerraformOptions opts, TerraformOptions::parse(ctx.options));
    return std::unique_ptr<Driver>(std::make_unique<TerraformDriver>(ctx, std::move(opts)));
  }
  Expected<void> check_options(const nlohmann::json& options) const override {
    IDP_TRY(TerraformOptions::parse(options));
    return {};
  }
};

} // namespace

const DriverFactory& terraform_driver_factory() {
  static const TerraformDriverFactory k_factory;
  return k_factory;
}

} // namespace idp::drivers::terraform
