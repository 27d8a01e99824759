// idp: the CLI and, as `idp serve`, the daemon.
#include "cli/run.hpp"
#include "daemon/serve_command.hpp"

int main(int argc, char** argv) {
  return idp::cli::run(argc, argv, {idp::daemon::serve_command_spec(), idp::daemon::internal_command_spec()});
}
