// idp create: a preview environment from a branch; waits until it serves.
// idp render: what create would apply on a runtime, printed (the same flags and checks).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "cli/wait.hpp"
#include "core/api_types.hpp"
#include "core/names.hpp"
#include "core/ttl.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {
struct Options {
  std::string repo;
  std::string branch;
  std::string name;
  std::string template_name;
  std::string ttl;
  std::string owner;
  std::string runtime;
  bool no_wait = false;
  bool json = false;
  std::string timeout = "10m";

  Expected<void> validate() const {
    // The API speaks JSON, which carries text: bytes that are not UTF-8 (git allows them in a
    // branch name) cannot reach the server intact, so say so instead of sending something else.
    for (const auto& [flag, value] : {std::pair<const char*, const std::string&>{"--branch", branch},
                                      {"--repo", repo},
                                      {"--owner", owner},
                                      {"--template", template_name},
                                      {"--runtime", runtime}}) {
      if (!util::is_valid_utf8(value)) {
        return Unexpected(
            usage_error(std::string(flag) + " " + util::escape_invalid_utf8(util::quote(value)) +
                        " is not valid UTF-8 text, which the API needs" +
                        (&value == &branch ? " (a watched repository still deploys such a branch)" : "")));
      }
    }
    if (!util::is_valid_git_branch(branch)) {
      return Unexpected(usage_error("--branch " + util::quote(branch) + " is not a valid git branch name"));
    }
    if (!name.empty()) {
      if (auto v = core::validate_env_name(name); !v) {
        return Unexpected(usage_error("--name: " + v.error().message));
      }
    }
    if (!ttl.empty()) {
      if (auto d = core::parse_duration(ttl); !d) {
        return Unexpected(usage_error("--ttl: " + d.error().message));
      }
    }
    if (auto d = core::parse_duration(timeout); !d) {
      return Unexpected(usage_error("--timeout: " + d.error().message));
    }
    return {};
  }

  core::CreateEnvironmentRequest request() const {
    core::CreateEnvironmentRequest req;
    // A local path is sent absolute: the server's working directory is not ours.
    req.repo = util::is_directory(repo) ? util::absolute_path(repo) : repo;
    req.branch = branch;
    req.name = name;
    req.template_name = template_name;
    req.ttl = ttl;
    req.owner = owner;
    req.runtime = runtime;
    return req;
  }

  // idp render: the manifests (YAML) on stdout, or the server's whole answer with --json.
  Expected<int> render(const GlobalOptions& g) const {
    ApiClient client(discover_server(g.server));
    IDP_TRY_ASSIGN(auto out, client.post("/api/v1/render", request().to_json()));
    if (json) {
      std::cout << util::json_dump(out, 2) << "\n";
      return k_exit_ok;
    }
    std::fprintf(stderr, "environment %s on runtime %s: template %s at %s\n", out.value("name", "").c_str(),
                 out.value("runtime", "").c_str(), out.value("template", "").c_str(),
                 out.value("commit", "").substr(0, 7).c_str());
    std::cout << out.value("manifests", "");
    return k_exit_ok;
  }

  Expected<int> run(const GlobalOptions& g) const {
    ApiClient client(discover_server(g.server));
    IDP_TRY_ASSIGN(auto env, client.post("/api/v1/environments", request().to_json()));
    std::string env_name = env.value("name", "");
    if (!json) {
      // The server answers before it fetches the branch: the commit shows while waiting.
      std::string commit = env.value("commit", "").substr(0, 7);
      std::fprintf(stderr, "environment %s: creating from %s%s\n", env_name.c_str(), branch.c_str(),
                   commit.empty() ? "" : (" at " + commit).c_str());
    }
    if (!no_wait) {
      IDP_TRY_ASSIGN(long long t, core::parse_duration(timeout));
      IDP_TRY_ASSIGN(env, wait_for_phase(client, env_name, {"ready", "failed", "degraded", "destroyed"}, t, !json));
    }
    if (json) {
      std::cout << util::json_dump(env, 2) << "\n";
    }
    std::string phase = env.value("phase", "");
    if (!no_wait && phase != "ready") {
      std::string tail;
      if (env.contains("revisions") && !env["revisions"].empty()) {
        tail = env["revisions"][0].value("log_tail", "");
      }
      return make_error(ErrorCode::permanent, "environment " + util::quote(env_name) + " is " + phase + ": " +
                                                  env.value("message", "") +
                                                  (tail.empty() ? "" : "\nlast log lines:\n" + tail));
    }
    if (!json) {
      if (no_wait) {
        std::printf("%s\n", env_name.c_str());
      } else {
        std::printf("%s\n", output::field(env, "url").c_str());
      }
    }
    return k_exit_ok;
  }
};
} // namespace

CommandSpec create_command() {
  return {"create", "create a preview environment from a branch and wait until it serves", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("--repo", o->repo, "git URL or local path of the application repository")->required();
            sub.add_option("--branch", o->branch, "branch to deploy")->required();
            sub.add_option("--name", o->name, "environment name (default: preview-<branch>, following the branch)");
            sub.add_option("--template", o->template_name, "template (default: the repository's .idp/config.yml)");
            sub.add_option("--ttl", o->ttl, "time to live, like 30m, 4h, 7d, 2w (default: the repository's config)");
            sub.add_option("--owner", o->owner, "owner recorded on the environment (default: you)");
            sub.add_option("--runtime", o->runtime, "runtime driver (default: the server's)");
            sub.add_option("--timeout", o->timeout, "how long to wait for it to serve (default 10m)");
            sub.add_flag("--no-wait", o->no_wait, "return once the environment is recorded");
            sub.add_flag("--json", o->json, "print the environment as JSON");
            return [o, &g]() -> Expected<int> {
              IDP_TRY(o->validate());
              return o->run(g);
            };
          }};
}

CommandSpec render_command() {
  return {"render", "print what an environment of a branch would be applied as on a runtime (kubernetes manifests)",
          false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("--repo", o->repo, "git URL or local path of the application repository")->required();
            sub.add_option("--branch", o->branch, "branch whose head to render")->required();
            sub.add_option("--runtime", o->runtime, "runtime driver (default: the server's)");
            sub.add_option("--template", o->template_name, "template (default: the repository's .idp/config.yml)");
            sub.add_option("--name", o->name,
                           "environment name (default: the one tracking the branch, else preview-<branch>)");
            sub.add_option("--ttl", o->ttl,
                           "time to live the expiry annotation shows (default: the repository's config)");
            sub.add_flag("--json", o->json,
                         "print the server's answer (name, runtime, commit, template, manifests) as JSON");
            return [o, &g]() -> Expected<int> {
              IDP_TRY(o->validate());
              return o->render(g);
            };
          }};
}

} // namespace idp::cli::commands
