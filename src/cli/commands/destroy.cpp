// idp destroy: remove an environment and everything it has.
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/wait.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

CommandSpec destroy_command() {
  struct Options {
    std::string name;
    bool yes = false;
    bool no_wait = false;
    bool json = false;
    std::string timeout = "10m";
  };
  return {"destroy", "destroy an environment", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_flag("--yes,-y", o->yes, "do not ask for confirmation");
            sub.add_flag("--no-wait", o->no_wait, "return once the destroy is recorded");
            sub.add_option("--timeout", o->timeout, "how long to wait (default 10m)");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              IDP_TRY_ASSIGN(long long timeout, core::parse_duration(o->timeout));
              ApiClient client(discover_server(g.server));
              std::string path = "/api/v1/environments/" + util::url_encode(o->name);
              if (!o->yes) {
                if (::isatty(STDIN_FILENO) != 1) {
                  return Unexpected(usage_error("refusing to destroy " + util::quote(o->name) +
                                                " without --yes when not on a terminal"));
                }
                IDP_TRY(client.get(path)); // fail early on an unknown name
                std::fprintf(stderr, "type \"%s\" to destroy it: ", o->name.c_str());
                std::string answer;
                std::getline(std::cin, answer);
                if (util::trim(answer) != o->name) {
                  std::fprintf(stderr, "aborted\n");
                  return k_exit_error;
                }
              }
              IDP_TRY_ASSIGN(auto e, client.del(path));
              if (!o->no_wait) {
                IDP_TRY_ASSIGN(e, wait_for_phase(client, o->name, {"destroyed", "pending"}, timeout, !o->json));
              }
              if (o->json) {
                std::cout << util::json_dump(e, 2) << "\n";
              } else {
                std::printf("%s %s\n", o->name.c_str(), o->no_wait ? "is being destroyed" : "destroyed");
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
