#pragma once
// The factory of the Kubernetes driver ("kubernetes"), for drivers/builtin.cpp.

#include "drivers/driver.hpp"

namespace idp::drivers::kubernetes {

// Creates KubernetesDriver from a DriverContext: loads the kubeconfig (or the in-cluster
// service account) named by the options. invalid_config for bad options. A connection
// that cannot be loaded does not fail create(): the driver then reports it on every
// operation, so a daemon that never uses this runtime starts without a cluster.
const DriverFactory& kubernetes_driver_factory();

} // namespace idp::drivers::kubernetes
