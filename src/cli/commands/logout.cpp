// idp logout: forget the token `idp login` stored for a server (the server keeps it valid:
// `idp token revoke` ends it there).
#include <cstdio>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/credentials.hpp"

namespace idp::cli::commands {

CommandSpec logout_command() {
  struct Options {
    std::string server;
  };
  return {"logout", "remove the token 'idp login' stored for a server", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("--server", o->server,
                           "idp server URL (default: IDP_SERVER, then the last login, then the local daemon)");
            return [o, &g]() -> Expected<int> {
              std::string server = normalize_server(discover_server(o->server.empty() ? g.server : o->server));
              auto creds = Credentials::for_user();
              auto removed = creds.forget(server);
              if (!removed) {
                return Unexpected(removed.error().with_context("logout from " + server));
              }
              std::printf(*removed ? "logged out of %s\n" : "not logged in to %s: nothing to remove\n", server.c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
