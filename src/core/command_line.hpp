#pragma once
// Splitting a command line from a config file into argv, without a shell: whitespace
// separates words; '…' and "…" quote; backslash escapes. No expansion of any kind.

#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

namespace idp::core {

// invalid_argument for an unterminated quote or an empty command.
Expected<std::vector<std::string>> split_command_line(std::string_view text);

} // namespace idp::core
