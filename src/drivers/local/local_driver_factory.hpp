#pragma once
// The factory of the local runtime driver ("local"), for drivers/builtin.cpp.

#include "drivers/driver.hpp"

namespace idp::drivers::local {

// Creates LocalDriver from a DriverContext; invalid_config for bad driver options.
const DriverFactory& local_driver_factory();

} // namespace idp::drivers::local
