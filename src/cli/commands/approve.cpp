// idp approve REPO#PR: deploy a pull request from a fork at its head commit (issue 15), and
// idp forks: the pull requests from forks the server knows, pending or approved.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

std::string text_or(const nlohmann::json& j, const char* key, const std::string& fallback) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
}

} // namespace

CommandSpec approve_command() {
  struct Options {
    std::string target;
    std::string commit;
    bool json = false;
  };
  return {"approve", "approve a pull request from a fork at its head commit (REPO#PR)", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("target", o->target, "the repository (owner/name or URL) and the pull request: acme/shop#12")
                ->required();
            sub.add_option("--commit", o->commit, "approve only if this is still the head (7 to 40 hex digits)");
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              auto hash = o->target.rfind('#');
              if (hash == std::string::npos || hash == 0) {
                return Unexpected(usage_error("expected REPO#PR like acme/shop#12, got " + util::quote(o->target)));
              }
              auto pr = util::parse_int<int64_t>(std::string_view(o->target).substr(hash + 1), 1, 1'000'000'000);
              if (!pr) {
                return Unexpected(usage_error("expected a pull request number after '#', got " +
                                              util::quote(o->target.substr(hash + 1))));
              }
              nlohmann::json body = {{"repo", o->target.substr(0, hash)}, {"pr", *pr}};
              if (!o->commit.empty()) {
                body["commit"] = o->commit;
              }
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto out, client.post("/api/v1/forks/approve", body));
              if (o->json) {
                std::cout << util::json_dump(out, 2) << "\n";
                return k_exit_ok;
              }
              std::printf("approved %s#%lld at %s (from %s); deploying it under the untrusted profile\n",
                          text_or(out, "repo", "").c_str(), static_cast<long long>(*pr),
                          util::short_commit(text_or(out, "approved_commit", ""), 12).c_str(),
                          text_or(out, "head_repo", "a fork").c_str());
              return k_exit_ok;
            };
          }};
}

CommandSpec forks_command() {
  struct Options {
    bool json = false;
  };
  return {"forks", "list pull requests from forks: pending approval, approved or closed", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_flag("--json", o->json, "print JSON");
            return [o, &g]() -> Expected<int> {
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto out, client.get("/api/v1/forks"));
              if (o->json) {
                std::cout << util::json_dump(out, 2) << "\n";
                return k_exit_ok;
              }
              const auto& forks = out["forks"];
              if (!forks.is_array() || forks.empty()) {
                std::printf("no pull requests from forks\n");
                return k_exit_ok;
              }
              std::printf("%-32s %-9s %-12s %-24s %s\n", "PULL REQUEST", "STATE", "HEAD", "FROM", "ENVIRONMENT");
              for (const auto& f : forks) {
                std::string target = text_or(f, "repo", "") + "#" + std::to_string(f.value("pr", 0));
                std::printf("%-32s %-9s %-12s %-24s %s\n", target.c_str(), text_or(f, "state", "").c_str(),
                            util::short_commit(text_or(f, "head_sha", ""), 12).c_str(),
                            text_or(f, "head_repo", "").c_str(), text_or(f, "environment", "-").c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
