// idp secret set|list|rm: the server's secret store (admin only on the server). A value is
// read from stdin, a hidden prompt or --from-file, never from argv (which `ps` shows to
// every user of the machine), and is never printed back.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <termios.h>
#include <unistd.h>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/app_config.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

// One final newline is what `echo` and editors add, not part of the value.
std::string without_final_newline(std::string v) {
  if (!v.empty() && v.back() == '\n') {
    v.pop_back();
    if (!v.empty() && v.back() == '\r') {
      v.pop_back();
    }
  }
  return v;
}

// A line typed at the terminal with echo off.
Expected<std::string> prompt_hidden(const std::string& name) {
  std::fprintf(stderr, "value of secret %s (input hidden): ", util::quote(name).c_str());
  std::fflush(stderr);
  struct termios saved {};
  bool restore = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (restore) {
    struct termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  }
  std::fprintf(stderr, "\n");
  return without_final_newline(line);
}

Expected<std::string> read_value(const std::string& name, const std::string& from_file) {
  std::string value;
  if (!from_file.empty()) {
    auto text = util::read_file(from_file);
    if (!text) {
      return Unexpected(
          usage_error("--from-file: cannot read " + util::quote(from_file) + ": " + text.error().message));
    }
    value = without_final_newline(*text);
  } else if (::isatty(STDIN_FILENO) == 1) {
    IDP_TRY_ASSIGN(value, prompt_hidden(name));
  } else {
    value =
        without_final_newline(std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()));
  }
  if (value.empty()) {
    return Unexpected(usage_error("secret " + util::quote(name) +
                                  ": the value is empty (give it on stdin, at the prompt, or with --from-file)"));
  }
  return value;
}

std::string repo_query(const std::string& repo) { return repo.empty() ? "" : "?repo=" + util::url_encode(repo); }

std::string repos_text(const nlohmann::json& repos) {
  std::vector<std::string> out;
  for (const auto& r : repos) {
    std::string s = r.get<std::string>();
    out.push_back(s == "*" ? "every repository" : s);
  }
  return util::join(out, ", ");
}

} // namespace

CommandSpec secret_command() {
  struct Options {
    std::string name;
    std::string repo;
    std::string from_file;
    bool json = false;
  };
  CommandSpec spec;
  spec.name = "secret";
  spec.summary = "set, list or remove secrets of the server's secret store (needs an admin token)";
  spec.setup = [](CLI::App& sub, const GlobalOptions& g) -> Runner {
    auto o = std::make_shared<Options>();
    auto mode = std::make_shared<std::string>();
    auto* set = sub.add_subcommand("set", "set a secret; the value comes from stdin, a hidden prompt or --from-file");
    set->add_option("name", o->name, "secret name, e.g. db-password")->required();
    set->add_option("--repo", o->repo, "only for this repository (owner/name, URL or path; globs allowed)");
    set->add_option("--from-file", o->from_file, "read the value from this file");
    set->add_flag("--json", o->json, "print JSON");
    set->callback([mode] { *mode = "set"; });
    auto* list = sub.add_subcommand("list", "list secrets: names, scope, last update (never values)");
    list->add_option("--repo", o->repo, "only those this repository may use");
    list->add_flag("--json", o->json, "print JSON");
    list->callback([mode] { *mode = "list"; });
    auto* rm = sub.add_subcommand("rm", "remove a secret");
    rm->add_option("name", o->name, "secret name")->required();
    rm->add_option("--repo", o->repo, "the repository it was set for (default: the one for every repository)");
    rm->add_flag("--json", o->json, "print JSON");
    rm->callback([mode] { *mode = "rm"; });
    sub.require_subcommand(1);
    return [o, mode, &g]() -> Expected<int> {
      if (*mode != "list" && !core::is_secret_store_name(o->name)) {
        return Unexpected(usage_error("secret name: expected 1-64 letters, digits, '_', '.' or '-' (not starting with "
                                      "'.' or '-'), got " +
                                      util::quote(o->name)));
      }
      if (*mode == "set") {
        IDP_TRY_ASSIGN(std::string value, read_value(o->name, o->from_file));
        ApiClient client(discover_server(g.server));
        nlohmann::json body = {{"value", value}};
        if (!o->repo.empty()) {
          body["repo"] = o->repo;
        }
        IDP_TRY_ASSIGN(auto s, client.post("/api/v1/secrets/" + util::url_encode(o->name), body));
        if (o->json) {
          std::cout << util::json_dump(s, 2) << "\n";
        } else {
          std::printf("set secret %s for %s\n", util::quote(o->name).c_str(), repos_text(s["repos"]).c_str());
        }
        return k_exit_ok;
      }
      ApiClient client(discover_server(g.server));
      if (*mode == "rm") {
        IDP_TRY_ASSIGN(auto s, client.del("/api/v1/secrets/" + util::url_encode(o->name) + repo_query(o->repo)));
        if (o->json) {
          std::cout << util::json_dump(s, 2) << "\n";
        } else {
          std::printf("removed secret %s for %s\n", util::quote(o->name).c_str(), repos_text(s["repos"]).c_str());
        }
        return k_exit_ok;
      }
      IDP_TRY_ASSIGN(auto resp, client.get("/api/v1/secrets" + repo_query(o->repo)));
      if (o->json) {
        std::cout << util::json_dump(resp["secrets"], 2) << "\n";
        return k_exit_ok;
      }
      auto or_dash = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : std::string("-"); };
      output::Table tb;
      tb.headers = {"NAME", "REPOS", "SOURCE", "UPDATED", "BY"};
      for (const auto& s : resp["secrets"]) {
        std::string source = s.value("source", "");
        if (s["from"].is_string()) {
          source += " (" + s["from"].get<std::string>() + ")";
        }
        tb.rows.push_back(
            {s.value("name", ""), repos_text(s["repos"]), source, or_dash(s["updated_at"]), or_dash(s["updated_by"])});
      }
      std::cout << tb.render();
      return k_exit_ok;
    };
  };
  return spec;
}

} // namespace idp::cli::commands
