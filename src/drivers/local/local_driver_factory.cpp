#include "drivers/local/local_driver_factory.hpp"

#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_options.hpp"

namespace idp::drivers::local {

namespace {

class LocalDriverFactory final : public DriverFactory {
public:
  std::string_view name() const override { return "local"; }
  std::string_view description() const override {
    return "processes on this machine behind a Caddy router (cgroup limits when available)";
  }
  Expected<std::unique_ptr<Driver>> create(const DriverContext& ctx) const override {
    if (ctx.home.empty()) {
      return make_error(ErrorCode::invalid_config, "driver \"local\": no home directory");
    }
    IDP_TRY_ASSIGN(LocalOptions opts, LocalOptions::parse(ctx.options));
    return std::unique_ptr<Driver>(std::make_unique<LocalDriver>(ctx, std::move(opts)));
  }
  Expected<void> check_options(const nlohmann::json& options) const override {
    IDP_TRY(LocalOptions::parse(options));
    return {};
  }
};

} // namespace

const DriverFactory& local_driver_factory() {
  static const LocalDriverFactory k_factory;
  return k_factory;
}

} // namespace idp::drivers::local
