// idp token create|list|revoke: API tokens (admin only on the server).
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

CommandSpec token_command() {
  struct Options {
    std::string name;
    std::string role;
    std::string owner;
    std::string ttl;
    std::string id;
    bool json = false;
  };
  CommandSpec spec;
  spec.name = "token";
  spec.summary = "create, list or revoke API tokens (needs an admin token)";
  spec.setup = [](CLI::App& sub, const GlobalOptions& g) -> Runner {
    auto o = std::make_shared<Options>();
    auto mode = std::make_shared<std::string>();
    auto* create = sub.add_subcommand("create", "create a token; its secret is printed once");
    create->add_option("--name", o->name, "a label for the token, e.g. alice-laptop")->required();
    create->add_option("--role", o->role, "viewer, developer or admin")->required();
    create->add_option("--owner", o->owner, "the identity it acts as (default: the name)");
    create->add_option("--ttl", o->ttl, "lifetime like 30d (default: no expiry)");
    create->add_flag("--json", o->json, "print JSON");
    create->callback([mode] { *mode = "create"; });
    auto* list = sub.add_subcommand("list", "list tokens (never their secrets)");
    list->add_flag("--json", o->json, "print JSON");
    list->callback([mode] { *mode = "list"; });
    auto* revoke = sub.add_subcommand("revoke", "revoke a token by id");
    revoke->add_option("id", o->id, "token id (tok_…)")->required();
    revoke->add_flag("--json", o->json, "print JSON");
    revoke->callback([mode] { *mode = "revoke"; });
    sub.require_subcommand(1);
    return [o, mode, &g]() -> Expected<int> {
      if (*mode == "create") {
        if (o->role != "viewer" && o->role != "developer" && o->role != "admin") {
          return Unexpected(usage_error("--role: expected viewer, developer or admin, got " + util::quote(o->role)));
        }
        if (!o->ttl.empty()) {
          auto d = core::parse_duration(o->ttl);
          if (!d || *d <= 0) {
            return Unexpected(usage_error("--ttl: expected a duration like 30d or 12h, got " + util::quote(o->ttl)));
          }
        }
      }
      ApiClient client(discover_server(g.server));
      if (*mode == "create") {
        nlohmann::json body = {{"name", o->name}, {"role", o->role}};
        if (!o->owner.empty()) {
          body["owner"] = o->owner;
        }
        if (!o->ttl.empty()) {
          body["ttl"] = o->ttl;
        }
        IDP_TRY_ASSIGN(auto t, client.post("/api/v1/tokens", body));
        if (o->json) {
          std::cout << util::json_dump(t, 2) << "\n";
          return k_exit_ok;
        }
        std::printf("%s\n", t.value("token", "").c_str());
        std::fprintf(stderr, "created token %s %s (%s for %s%s); the secret above is shown only once\n",
                     t.value("id", "").c_str(), util::quote(t.value("name", "")).c_str(), t.value("role", "").c_str(),
                     util::quote(t.value("owner", "")).c_str(),
                     t["expires_at"].is_string() ? (", expires " + t["expires_at"].get<std::string>()).c_str() : "");
        return k_exit_ok;
      }
      if (*mode == "revoke") {
        IDP_TRY_ASSIGN(auto t, client.del("/api/v1/tokens/" + util::url_encode(o->id)));
        if (o->json) {
          std::cout << util::json_dump(t, 2) << "\n";
          return k_exit_ok;
        }
        std::printf("revoked token %s %s\n", t.value("id", "").c_str(), util::quote(t.value("name", "")).c_str());
        return k_exit_ok;
      }
      IDP_TRY_ASSIGN(auto resp, client.get("/api/v1/tokens"));
      if (o->json) {
        std::cout << util::json_dump(resp["tokens"], 2) << "\n";
        return k_exit_ok;
      }
      auto or_dash = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : std::string("-"); };
      output::Table tb;
      tb.headers = {"ID", "NAME", "ROLE", "OWNER", "STATUS", "EXPIRES", "LAST USED"};
      for (const auto& t : resp["tokens"]) {
        tb.rows.push_back({t.value("id", ""), t.value("name", ""), t.value("role", ""), t.value("owner", ""),
                           t.value("status", ""), or_dash(t["expires_at"]), or_dash(t["last_used_at"])});
      }
      std::cout << tb.render();
      return k_exit_ok;
    };
  };
  return spec;
}

} // namespace idp::cli::commands
