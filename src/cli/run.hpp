#pragma once
// The CLI entry point: the only place that catches idp::Fatal.

#include <vector>

#include "cli/command.hpp"

namespace idp::cli {

// Parses argv, runs the chosen subcommand and returns the process exit code.
// `extra` adds commands registered from other layers (e.g. `serve` from daemon/).
int run(int argc, char** argv, const std::vector<CommandSpec>& extra = {});

// The built-in client commands, in help order.
std::vector<CommandSpec> client_commands();

} // namespace idp::cli
