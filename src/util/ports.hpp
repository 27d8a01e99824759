#pragma once
// TCP ports for the processes the daemon starts.

#include "util/expected.hpp"

namespace idp::util {

// A free TCP port on 127.0.0.1 (bind to 0, read, close).
Expected<int> find_free_port();

} // namespace idp::util
