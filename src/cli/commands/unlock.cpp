// idp unlock: break a stuck lease and the runtime's stuck lock (e.g. a Terraform state lock).
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

CommandSpec unlock_command() {
  struct Options {
    std::string name;
    bool yes = false;
    bool json = false;
  };
  return {"unlock", "break an environment's stuck lease and runtime lock", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_flag("--yes,-y,--force", o->yes, "do not ask for confirmation");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              std::string path = "/api/v1/environments/" + util::url_encode(o->name);
              IDP_TRY_ASSIGN(auto env, client.get(path));
              if (!o->yes) {
                if (::isatty(STDIN_FILENO) != 1) {
                  return Unexpected(usage_error("refusing to unlock " + util::quote(o->name) +
                                                " without --yes when not on a terminal"));
                }
                if (env.contains("lease") && env["lease"].is_object()) {
                  std::fprintf(stderr, "lease held by %s until %s\n", env["lease"].value("owner", "").c_str(),
                               env["lease"].value("expires_at", "").c_str());
                }
                std::fprintf(stderr,
                             "only unlock when you are sure no operation on %s is running: breaking a lock in use "
                             "can corrupt state\ntype \"unlock\" to continue: ",
                             o->name.c_str());
                std::string answer;
                std::getline(std::cin, answer);
                if (util::trim(answer) != "unlock") {
                  std::fprintf(stderr, "aborted\n");
                  return k_exit_error;
                }
              }
              IDP_TRY_ASSIGN(auto out, client.post(path + "/unlock", nlohmann::json::object()));
              if (o->json) {
                std::cout << util::json_dump(out, 2) << "\n";
                return k_exit_ok;
              }
              if (out["lease"].is_object()) {
                std::printf("broke the lease held by %s\n", out["lease"].value("owner", "").c_str());
              } else {
                std::printf("no lease was held\n");
              }
              std::printf("%s\n", out.value("runtime", "").c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
