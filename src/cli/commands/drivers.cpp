// idp drivers: the runtimes and templates the server was built with.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/json.hpp"

namespace idp::cli::commands {

CommandSpec drivers_command() {
  struct Options {
    bool json = false;
  };
  return {"drivers", "list the runtimes (drivers) the server has", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto caps, client.get("/api/v1/capabilities"));
              if (o->json) {
                std::cout << util::json_dump(caps, 2) << "\n";
                return k_exit_ok;
              }
              for (const auto& d : caps["drivers"]) {
                std::printf("%s\n", d.get<std::string>().c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
