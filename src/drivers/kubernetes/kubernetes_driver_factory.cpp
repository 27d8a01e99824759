#include "drivers/kubernetes/kubernetes_driver_factory.hpp"

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_options.hpp"

namespace idp::drivers::kubernetes {

namespace {

class KubernetesDriverFactory final : public DriverFactory {
public:
  std::string_view name() const override { return "kubernetes"; }
  std::string_view description() const override {
    return "a namespace per environment on a shared Kubernetes cluster (server-side apply over the REST API)";
  }
  Expected<std::unique_ptr<Driver>> create(const DriverContext& ctx) const override {
    IDP_TRY_ASSIGN(KubernetesOptions opts, KubernetesOptions::parse(ctx.options));
    IDP_TRY(opts.check_combinations(ctx.options));
    bool configured = opts.in_cluster || !opts.kubeconfig.empty() || !opts.context.empty();
    auto conn =
        opts.in_cluster ? in_cluster_connection() : load_kubeconfig(kubeconfig_files(opts.kubeconfig), opts.context);
    std::unique_ptr<KubeClient> client;
    Error connect_error;
    if (conn) {
      static util::SystemClock k_system_clock;
      util::Clock* clock = ctx.clock ? ctx.clock : &k_system_clock;
      client = std::make_unique<KubeClient>(std::move(*conn), clock, opts.request_timeout_ms);
    } else {
      connect_error = conn.error().with_context("kubernetes runtime");
    }
    return std::unique_ptr<Driver>(std::make_unique<KubernetesDriver>(ctx, std::move(opts), std::move(client),
                                                                      std::move(connect_error), configured));
  }
  Expected<void> check_options(const nlohmann::json& options) const override {
    IDP_TRY_ASSIGN(KubernetesOptions opts, KubernetesOptions::parse(options));
    // The server config calls this with the whole section, then, when that fails, with each
    // option alone to find the wrong line: an option alone is checked for its value only
    // (routing: gateway alone is not blamed for gateway_name missing). A section of a single
    // option skips the combination rules here; create() checks them (serve refuses to start).
    if (options.is_object() && options.size() > 1) {
      IDP_TRY(opts.check_combinations(options));
    }
    return {};
  }
};

} // namespace

const DriverFactory& kubernetes_driver_factory() {
  static const KubernetesDriverFactory k_factory;
  return k_factory;
}

} // namespace idp::drivers::kubernetes
