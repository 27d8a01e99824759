// idp freeze / idp unfreeze (issue 12): pin an environment at its commit for QA; pushes are
// held (and move its expiry out) until the freeze ends, when the newest one deploys.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

CommandSpec freeze_command() {
  struct Options {
    std::string name;
    std::string until;
    std::string reason;
    bool json = false;
  };
  return {
      "freeze", "pin an environment at its commit: pushes are held until unfreeze", false,
      [](CLI::App& sub, const GlobalOptions& g) -> Runner {
        auto o = std::make_shared<Options>();
        sub.add_option("name", o->name, "environment name")->required();
        sub.add_option("--until", o->until, "end the freeze after this long, like 4h or 2d (default: until unfreeze)");
        sub.add_option("--reason", o->reason, "why (shown in status, list, the dashboard and the PR comment)");
        sub.add_flag("--json", o->json, "print JSON");
        return [o, &g]() -> Expected<int> {
          nlohmann::json body = nlohmann::json::object();
          if (!o->until.empty()) {
            auto d = core::parse_duration(o->until);
            if (!d || *d <= 0) {
              return Unexpected(usage_error("--until: expected a duration like 2d, got " + util::quote(o->until)));
            }
            body["until"] = o->until;
          }
          if (!o->reason.empty()) {
            body["reason"] = o->reason;
          }
          ApiClient client(discover_server(g.server));
          IDP_TRY_ASSIGN(auto e, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/freeze", body));
          if (o->json) {
            std::cout << util::json_dump(e, 2) << "\n";
            return k_exit_ok;
          }
          const auto& f = e["freeze"];
          std::string until = f.is_object() && f["until"].is_string() ? f["until"].get<std::string>() : "";
          std::printf("%s is frozen at %s%s; pushes are held until %s\n", o->name.c_str(),
                      util::short_commit(e.value("commit", ""), 12).c_str(),
                      o->reason.empty() ? "" : (" (" + o->reason + ")").c_str(),
                      until.empty() ? ("idp unfreeze " + o->name).c_str() : until.c_str());
          return k_exit_ok;
        };
      }};
}

CommandSpec unfreeze_command() {
  struct Options {
    std::string name;
    bool json = false;
  };
  return {"unfreeze", "end a freeze: the newest commit pushed meanwhile deploys", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto e, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/unfreeze",
                                                 nlohmann::json::object()));
              if (o->json) {
                std::cout << util::json_dump(e, 2) << "\n";
                return k_exit_ok;
              }
              if (e.value("commit", "x").empty()) { // cleared: a worker fetches the newest held commit
                std::printf("%s is unfrozen; deploying the newest commit pushed meanwhile (%s)\n", o->name.c_str(),
                            e.value("message", "").c_str());
              } else {
                std::printf("%s is unfrozen\n", o->name.c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
