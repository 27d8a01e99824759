#pragma once
// `idp serve` and the internal helper commands, registered into the CLI from here (the CLI
// itself never links the daemon's layers).

#include "cli/command.hpp"

namespace idp::daemon {

cli::CommandSpec serve_command_spec();
// Hidden `__shim` (the local driver's per-revision process supervisor).
cli::CommandSpec internal_command_spec();
// Hidden `__netns` (the untrusted profile's network sandbox, drivers/local/netns_sandbox.hpp).
cli::CommandSpec netns_command_spec();

} // namespace idp::daemon
