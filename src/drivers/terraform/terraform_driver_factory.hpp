#pragma once
// The factory of the Terraform/OpenTofu driver ("terraform"), for drivers/builtin.cpp.

#include "drivers/driver.hpp"

namespace idp::drivers::terraform {

// Creates TerraformDriver from a DriverContext; invalid_config for bad driver options.
// Succeeds without terraform installed (applies then fail with a clear message), so a
// daemon that never uses this runtime starts anyway.
const DriverFactory& terraform_driver_factory();

} // namespace idp::drivers::terraform
