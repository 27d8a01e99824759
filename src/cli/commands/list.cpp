// idp list: environments as a table or JSON.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "util/json.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

CommandSpec list_command() {
  struct Options {
    bool all = false;
    bool json = false;
  };
  return {"list", "list environments", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_flag("--all", o->all, "include destroyed environments");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto resp, client.get(std::string("/api/v1/environments") + (o->all ? "?all=true" : "")));
              const auto& envs = resp["environments"];
              if (o->json) {
                std::cout << util::json_dump(envs, 2) << "\n";
                return k_exit_ok;
              }
              if (envs.empty()) {
                std::printf("no environments\n");
                return k_exit_ok;
              }
              output::Table t;
              t.headers = {"NAME", "PHASE", "TEMPLATE", "BRANCH", "OWNER", "EXPIRES", "URL"};
              long long now = util::SystemClock().now_ms();
              for (const auto& e : envs) {
                std::string phase = output::field(e, "phase");
                // A QA freeze shows beside the phase (issue 12).
                std::string shown = e.contains("freeze") && e["freeze"].is_object() ? phase + " (frozen)" : phase;
                // So does idle sleep: a sleeping environment reads "sleeping" (its app is stopped).
                if (e.value("sleeping", false)) {
                  shown = e.contains("freeze") && e["freeze"].is_object() ? "sleeping (frozen)" : "sleeping";
                }
                t.rows.push_back({output::field(e, "name"), shown, output::field(e, "template"),
                                  output::field(e, "branch"), output::field(e, "owner"),
                                  phase == "destroyed" ? "-" : output::relative_time(e["expires_at"], now),
                                  output::field(e, "url")});
                t.colors.push_back({"", output::phase_color(phase), "", "", "", "", ""});
              }
              std::cout << t.render();
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
