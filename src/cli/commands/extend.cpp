// idp extend: move an environment's expiry out.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "core/api_types.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"

namespace idp::cli::commands {

CommandSpec extend_command() {
  struct Options {
    std::string name;
    std::string ttl;
    bool json = false;
  };
  return {"extend", "extend an environment's time to live", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name")->required();
            sub.add_option("--ttl", o->ttl, "additional time, like 4h, 2d, 1w")->required();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              if (auto d = core::parse_duration(o->ttl); !d) {
                return Unexpected(usage_error("--ttl: " + d.error().message));
              }
              ApiClient client(discover_server(g.server));
              core::ExtendRequest req{o->ttl};
              IDP_TRY_ASSIGN(
                  auto e, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/extend", req.to_json()));
              if (o->json) {
                std::cout << util::json_dump(e, 2) << "\n";
              } else {
                std::printf("%s now expires at %s\n", o->name.c_str(), e.value("expires_at", "").c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
