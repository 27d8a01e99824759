#pragma once
// Operator logging (spdlog). Users get reasons from command output, never "see the log".

#include <spdlog/spdlog.h>

namespace idp::util {

// Sets up the default logger: stderr, or `file` when given; level from IDP_LOG_LEVEL
// (trace|debug|info|warn|error), default info.
void init_logging(const std::string& file = "");

} // namespace idp::util
