// idp logs: an environment's application log, optionally followed.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

CommandSpec logs_command() {
  struct Options {
    std::string name;
    std::string since;
    size_t tail = 0;
    bool follow = false;
    bool json = false;
  };
  return {"logs", "show an environment's logs", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_option(
                "--since", o->since,
                "only lines newer than this: a duration like 30s, 10m or 2h, or a UTC time like 2026-01-02T03:04:05Z");
            sub.add_option("--tail", o->tail, "only the last N lines");
            sub.add_flag("--follow,-f", o->follow, "keep printing new lines");
            sub.add_flag("--json", o->json, "one JSON object per line");
            return [o, &g]() -> Expected<int> {
              if (!o->since.empty() && !util::parse_iso8601(o->since)) {
                if (auto d = core::parse_duration(o->since); !d) {
                  return Unexpected(usage_error("--since: expected a duration like 30s, 10m or 2h, or a UTC time like "
                                                "2026-01-02T03:04:05Z, got " +
                                                util::quote(o->since)));
                }
              }
              ApiClient client(discover_server(g.server));
              std::string path =
                  "/api/v1/environments/" + util::url_encode(o->name) + "/logs?tail=" + std::to_string(o->tail);
              if (!o->since.empty()) {
                path += "&since=" + util::url_encode(o->since);
              }
              auto print = [o](const nlohmann::json& l) {
                if (o->json) {
                  std::cout << util::json_dump(l) << "\n";
                } else {
                  std::string stream = l.value("stream", "");
                  std::string prefix = output::color(l.value("at", ""), "gray") + " ";
                  if (stream != "stdout") {
                    prefix += output::color("[" + stream + "] ", stream == "stderr" ? "red" : "cyan");
                  }
                  std::cout << prefix << l.value("text", "") << "\n";
                }
                std::cout.flush();
                return true;
              };
              if (o->follow) {
                IDP_TRY(client.stream_lines(path + "&follow=true", print));
                return k_exit_ok;
              }
              IDP_TRY_ASSIGN(auto resp, client.get(path));
              for (const auto& l : resp["lines"]) {
                print(l);
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
