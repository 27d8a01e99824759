// idp share: share links of protected previews (issue 15): a URL that opens one
// environment's preview without an account, until it expires or is revoked.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

CommandSpec share_command() {
  struct Options {
    std::string name;
    std::string ttl = "24h";
    bool list = false;
    std::string revoke;
    bool json = false;
  };
  return {"share", "print a link that opens an environment's protected preview without an account", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name");
            sub.add_option("--ttl", o->ttl, "how long the link works, like 24h or 7d (at most 30d)");
            sub.add_flag("--list", o->list, "list the environment's share links (never their tokens)");
            sub.add_option("--revoke", o->revoke, "revoke the share link with this id (shr_…)");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              if (!o->revoke.empty()) {
                if (o->list || !o->name.empty()) {
                  return Unexpected(usage_error("--revoke ID takes no environment name and no --list"));
                }
                ApiClient client(discover_server(g.server));
                IDP_TRY_ASSIGN(auto r, client.del("/api/v1/shares/" + util::url_encode(o->revoke)));
                if (o->json) {
                  std::cout << util::json_dump(r, 2) << "\n";
                } else {
                  std::printf("revoked share link %s of %s\n", r.value("id", "").c_str(),
                              r.value("environment", "").c_str());
                }
                return k_exit_ok;
              }
              if (o->name.empty()) {
                return Unexpected(usage_error("expected an environment name: idp share NAME [--ttl 24h]"));
              }
              ApiClient client(discover_server(g.server));
              std::string base = "/api/v1/environments/" + util::url_encode(o->name) + "/shares";
              if (o->list) {
                IDP_TRY_ASSIGN(auto r, client.get(base));
                if (o->json) {
                  std::cout << util::json_dump(r["shares"], 2) << "\n";
                  return k_exit_ok;
                }
                output::Table tb;
                tb.headers = {"ID", "STATUS", "EXPIRES", "CREATED BY"};
                for (const auto& s : r["shares"]) {
                  tb.rows.push_back(
                      {s.value("id", ""), s.value("status", ""), s.value("expires_at", ""), s.value("created_by", "")});
                }
                std::cout << tb.render();
                return k_exit_ok;
              }
              if (auto d = core::parse_duration(o->ttl); !d || *d <= 0) {
                return Unexpected(usage_error("--ttl: expected a duration like 24h or 7d, got " + util::quote(o->ttl)));
              }
              IDP_TRY_ASSIGN(auto r, client.post(base, {{"ttl", o->ttl}}));
              if (o->json) {
                std::cout << util::json_dump(r, 2) << "\n";
                return k_exit_ok;
              }
              std::printf("%s\n", r.value("url", "").c_str());
              std::fprintf(stderr, "share link %s opens %s until %s; revoke it with: idp share --revoke %s\n",
                           r.value("id", "").c_str(), o->name.c_str(), r.value("expires_at", "").c_str(),
                           r.value("id", "").c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
