// idp events: the audit log (who did what, and why).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"

namespace idp::cli::commands {

CommandSpec events_command() {
  struct Options {
    std::string name;
    bool json = false;
  };
  return {"events", "show the audit log of one or every environment", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name (default: all)");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              std::string path = o->name.empty() ? "/api/v1/events"
                                                 : "/api/v1/environments/" + util::url_encode(o->name) + "/events";
              IDP_TRY_ASSIGN(auto resp, client.get(path));
              if (o->json) {
                std::cout << util::json_dump(resp["events"], 2) << "\n";
                return k_exit_ok;
              }
              output::Table t;
              t.headers = {"TIME", "ENVIRONMENT", "ACTOR", "ACTION", "PHASE", "REASON"};
              for (const auto& e : resp["events"]) {
                std::string from = e.value("from_phase", "");
                std::string to = e.value("to_phase", "");
                t.rows.push_back({output::field(e, "at"), output::field(e, "environment"), output::field(e, "actor"),
                                  output::field(e, "action"), from == to ? from : from + " -> " + to,
                                  e.value("reason", "")});
              }
              std::cout << t.render();
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
