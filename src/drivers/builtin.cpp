// The drivers compiled into this binary: an explicit table, no static self-registration.
#include "drivers/driver.hpp"

#if IDP_HAVE_LOCAL
#include "drivers/local/local_driver_factory.hpp"
#endif
#if IDP_HAVE_TERRAFORM
#include "drivers/terraform/terraform_driver_factory.hpp"
#endif
#if IDP_HAVE_KUBERNETES
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#endif

namespace idp::drivers {

const std::vector<const DriverFactory*>& builtin_driver_factories() {
  static const std::vector<const DriverFactory*> k_factories = {
#if IDP_HAVE_LOCAL
    &local::local_driver_factory(),
#endif
#if IDP_HAVE_TERRAFORM
    &terraform::terraform_driver_factory(),
#endif
#if IDP_HAVE_KUBERNETES
    &kubernetes::kubernetes_driver_factory(),
#endif
  };
  return k_factories;
}

} // namespace idp::drivers
