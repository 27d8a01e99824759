// idp version
#include <cstdio>

#include "cli/commands/commands.hpp"
#include "core/version.hpp"

namespace idp::cli::commands {

CommandSpec version_command() {
  return {"version", "print the version", false, [](CLI::App&, const GlobalOptions&) -> Runner {
            return []() -> Expected<int> {
              std::printf("idp %s\n", idp::k_version);
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
