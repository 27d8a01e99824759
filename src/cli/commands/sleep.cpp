// idp sleep / idp wake (issue 12, idle sleep): stop an environment's app by hand (its
// database, files and URL stay; its first request wakes it), or start it again.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

struct SleepOptions {
  std::string name;
  std::string reason;
  bool json = false;
};

} // namespace

CommandSpec sleep_command() {
  return {"sleep", "stop an environment's app until its next request (its database, files and URL stay)", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<SleepOptions>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_option("--reason", o->reason, "why (shown in its events)");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              nlohmann::json body = nlohmann::json::object();
              if (!o->reason.empty()) {
                body["reason"] = o->reason;
              }
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto e, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/sleep", body));
              if (o->json) {
                std::cout << util::json_dump(e, 2) << "\n";
                return k_exit_ok;
              }
              std::printf("%s is going to sleep; its next request (or idp wake %s) starts it again\n", o->name.c_str(),
                          o->name.c_str());
              return k_exit_ok;
            };
          }};
}

CommandSpec wake_command() {
  return {"wake", "start a sleeping environment's app again", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<SleepOptions>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto e, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/wake",
                                                 nlohmann::json::object()));
              if (o->json) {
                std::cout << util::json_dump(e, 2) << "\n";
                return k_exit_ok;
              }
              std::printf(e["sleep"].is_null() ? "%s is awake\n" : "%s is waking up\n", o->name.c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
