// idp: the CLI and, as `idp serve`, the daemon.
#include "cli/run.hpp"
#include "daemon/serve_command.hpp"
#include "util/git.hpp"

int main(int argc, char** argv) {
  // git runs this binary as its GIT_ASKPASS to get a repository's remembered credential.
  if (int askpass = idp::util::git_askpass_main(argc, argv); askpass >= 0) {
    return askpass;
  }
  return idp::cli::run(
      argc, argv,
      {idp::daemon::serve_command_spec(), idp::daemon::internal_command_spec(), idp::daemon::netns_command_spec()});
}
