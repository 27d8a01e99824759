// idp exec: run a command in an environment (in its checkout, with its environment).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"

namespace idp::cli::commands {

CommandSpec exec_command() {
  struct Options {
    std::string name;
    std::vector<std::string> argv;
    bool json = false;
  };
  return {"exec", "run a command in an environment: idp exec NAME -- CMD [ARGS...]", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_option("command", o->argv, "the command and its arguments (after --)")->required();
            sub.add_flag("--json", o->json, "print the result as JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto out, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/exec",
                                                   nlohmann::json{{"argv", o->argv}}));
              if (o->json) {
                std::cout << util::json_dump(out, 2) << "\n";
              } else {
                std::fwrite(out.value("stdout", "").data(), 1, out.value("stdout", "").size(), stdout);
                std::fwrite(out.value("stderr", "").data(), 1, out.value("stderr", "").size(), stderr);
              }
              if (out.value("timed_out", false)) {
                return make_error(ErrorCode::timeout, "the command timed out");
              }
              int code = out.value("exit_code", -1);
              return code >= 0 ? code : 128 + out.value("signal", 0);
            };
          }};
}

} // namespace idp::cli::commands
