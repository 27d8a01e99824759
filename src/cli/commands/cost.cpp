// idp cost: what an environment costs (AWS Cost Explorer by the idp:environment tag).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"

namespace idp::cli::commands {

CommandSpec cost_command() {
  struct Options {
    std::string name;
    bool json = false;
  };
  return {"cost", "show an environment's cost", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto out, client.get("/api/v1/environments/" + util::url_encode(o->name) + "/cost"));
              if (o->json) {
                std::cout << util::json_dump(out, 2) << "\n";
                return k_exit_ok;
              }
              for (const auto& [k, v] : out.items()) {
                if (v.is_array() || v.is_object()) {
                  std::printf("%-16s %s\n", (k + ":").c_str(), util::json_dump(v).c_str());
                } else {
                  std::printf("%-16s %s\n", (k + ":").c_str(),
                              v.is_string() ? v.get<std::string>().c_str() : util::json_dump(v).c_str());
                }
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
