// idp redeploy: deploy an environment again, at its branch's head or at a given commit.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "cli/wait.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {
// True when `env` (with its revisions) is ready and serves a revision of `generation`: the
// redeploy's own, not the one it had before (a failed fetch or config leaves that serving).
bool serves_generation(const nlohmann::json& env, long long generation) {
  if (env.value("phase", "") != "ready" || !env.contains("revisions") || !env["revisions"].is_array()) {
    return false;
  }
  for (const auto& r : env["revisions"]) {
    if (r.value("generation", 0LL) == generation && r.value("status", "") == "serving" &&
        r.value("commit", "") == output::field(env, "deployed_commit")) {
      return true;
    }
  }
  return false;
}
} // namespace

CommandSpec redeploy_command() {
  struct Options {
    std::string name;
    std::string commit;
    std::string timeout = "10m";
    bool no_wait = false;
    bool json = false;
  };
  CommandSpec spec;
  spec.name = "redeploy";
  spec.summary = "deploy an environment again, at its branch's latest commit or at --commit";
  spec.setup = [](CLI::App& sub, const GlobalOptions& g) -> Runner {
    auto o = std::make_shared<Options>();
    sub.add_option("name", o->name, "environment name")->required();
    sub.add_option("--commit", o->commit, "commit sha to deploy (default: the branch's latest commit)");
    sub.add_option("--timeout", o->timeout, "how long to wait for it to serve (default 10m)");
    sub.add_flag("--no-wait", o->no_wait, "return once the redeploy is recorded");
    sub.add_flag("--json", o->json, "print the environment as JSON");
    return [o, &g]() -> Expected<int> {
      auto timeout = core::parse_duration(o->timeout);
      if (!timeout) {
        return Unexpected(usage_error("--timeout: " + timeout.error().message));
      }
      ApiClient client(discover_server(g.server));
      nlohmann::json body = nlohmann::json::object();
      if (!o->commit.empty()) {
        body["commit"] = o->commit;
      }
      // The server answers once the redeploy is recorded; a worker fetches the commit.
      IDP_TRY_ASSIGN(auto env, client.post("/api/v1/environments/" + util::url_encode(o->name) + "/redeploy", body));
      const long long generation = env.value("generation", 0LL);
      std::string asked = o->commit.empty() ? "its latest commit" : o->commit;
      if (!o->json) {
        std::fprintf(stderr, "environment %s: redeploying %s at %s\n", o->name.c_str(), env.value("branch", "").c_str(),
                     asked.c_str());
      }
      if (!o->no_wait) {
        IDP_TRY_ASSIGN(env, wait_for_phase(client, o->name, {"ready", "failed", "degraded", "destroyed"}, *timeout,
                                           !o->json, generation));
      }
      if (o->json) {
        std::cout << util::json_dump(env, 2) << "\n";
      }
      if (!o->no_wait && !serves_generation(env, generation)) {
        return make_error(ErrorCode::permanent, "environment " + util::quote(o->name) + " did not deploy " + asked +
                                                    ": " + env.value("message", ""));
      }
      if (!o->json) {
        std::printf("%s\n", o->no_wait ? o->name.c_str() : output::field(env, "url").c_str());
      }
      return k_exit_ok;
    };
  };
  return spec;
}

} // namespace idp::cli::commands
