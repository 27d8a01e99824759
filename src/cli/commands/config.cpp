// idp config validate|show: check a .idp/config.yml without a server.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/template_catalog.hpp"
#include "core/app_config.hpp"
#include "core/app_config_rules.hpp"
#include "core/ttl.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

// The rules `idp create` applies: the server's templates and TTL policy with --server,
// else this machine's templates (built-in + IDP_TEMPLATES_PATH) and the default policy.
Expected<core::AppConfigRules> load_rules(const GlobalOptions& g, std::vector<std::string>& problems) {
  core::AppConfigRules rules;
  if (!g.server_flag) {
    rules.templates = load_templates(local_template_dirs(), &problems);
    return rules;
  }
  ApiClient client(discover_server(g.server));
  IDP_TRY_ASSIGN(auto listed, client.get("/api/v1/templates"));
  for (const auto& j : listed.value("templates", nlohmann::json::array())) {
    auto t = core::template_from_json(j);
    if (!t) {
      problems.push_back(t.error().message);
      continue;
    }
    rules.templates.push_back(std::move(*t));
  }
  IDP_TRY_ASSIGN(auto caps, client.get("/api/v1/capabilities"));
  for (auto [key, dest] : {std::pair{"ttl_min", &rules.ttl_policy.min}, std::pair{"ttl_max", &rules.ttl_policy.max}}) {
    if (auto d = core::parse_duration(caps.value(key, "")); d && *d > 0) {
      *dest = *d;
    }
  }
  return rules;
}

Expected<std::string> load_text(const std::string& file) {
  auto content = util::read_file(file);
  if (!content) {
    if (content.error().code == ErrorCode::not_found) {
      return make_error(ErrorCode::not_found,
                        "no config file at " + util::quote(file) + " (a repository without one gets every default)");
    }
    return Unexpected(content.error());
  }
  return *content;
}

nlohmann::json errors_json(const std::vector<core::ConfigError>& errors) {
  nlohmann::json errs = nlohmann::json::array();
  for (const auto& e : errors) {
    errs.push_back({{"file", e.file}, {"line", e.line}, {"column", e.column}, {"key", e.key}, {"message", e.message}});
  }
  return errs;
}

} // namespace

CommandSpec config_command() {
  struct Options {
    std::string file = ".idp/config.yml";
    bool json = false;
  };
  return {"config", "validate or show a repository's .idp/config.yml", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            auto mode = std::make_shared<std::string>();
            sub.require_subcommand(1);
            auto* validate =
                sub.add_subcommand("validate", "check a config file by the rules idp create applies (the server's with "
                                               "--server): exit 0 when valid, 1 with every error");
            validate->add_option("file", o->file, "config file (default .idp/config.yml)");
            validate->add_flag("--json", o->json, "print the result as JSON");
            validate->callback([mode] { *mode = "validate"; });
            auto* show = sub.add_subcommand("show", "print every setting with where it came from");
            show->add_option("file", o->file, "config file (default .idp/config.yml)");
            show->add_flag("--json", o->json, "print {key: {value, origin}} as JSON");
            show->callback([mode] { *mode = "show"; });
            return [o, mode, &g]() -> Expected<int> {
              IDP_TRY_ASSIGN(std::string text, load_text(o->file));
              if (*mode == "validate") {
                std::vector<std::string> problems;
                IDP_TRY_ASSIGN(auto rules, load_rules(g, problems));
                auto result = core::validate_app_config(text, rules, o->file);
                if (o->json) {
                  std::cout << util::json_dump(
                                   nlohmann::json{{"valid", result.ok()}, {"errors", errors_json(result.errors)}}, 2)
                            << "\n";
                  return result.ok() ? k_exit_ok : k_exit_error;
                }
                for (const auto& p : problems) {
                  std::fprintf(stderr, "idp: warning: template skipped: %s\n", p.c_str());
                }
                for (const auto& e : result.errors) {
                  std::fprintf(stderr, "%s\n", e.to_string().c_str());
                }
                if (!result.ok()) {
                  std::fprintf(stderr, "idp: error: %s has %zu error%s\n", o->file.c_str(), result.errors.size(),
                               result.errors.size() == 1 ? "" : "s");
                  return k_exit_error;
                }
                std::printf("%s is valid (template %s)\n", o->file.c_str(), result.config.template_name.c_str());
                return k_exit_ok;
              }
              auto result = core::parse_app_config(text, o->file);
              if (!result.ok()) {
                for (const auto& e : result.errors) {
                  std::fprintf(stderr, "%s\n", e.to_string().c_str());
                }
                return k_exit_error;
              }
              nlohmann::json j = core::to_json(result.config);
              j.erase("keys_set");
              // One row per dotted key, with where its value came from.
              std::vector<std::pair<std::string, nlohmann::json>> rows;
              for (const auto& [k, v] : j.items()) {
                if (v.is_object() && (k == "local" || k == "database" || k == "static")) {
                  for (const auto& [sk, sv] : v.items()) {
                    rows.emplace_back(k + "." + sk, sv);
                  }
                } else {
                  rows.emplace_back(k, v);
                }
              }
              if (o->json) {
                nlohmann::json out = nlohmann::json::object();
                for (const auto& [key, value] : rows) {
                  out[key] = {{"value", value}, {"origin", result.config.has_key(key) ? o->file : "default"}};
                }
                std::cout << util::json_dump(out, 2) << "\n";
                return k_exit_ok;
              }
              for (const auto& [key, value] : rows) {
                std::printf("(%s) %s = %s\n", result.config.has_key(key) ? o->file.c_str() : "default", key.c_str(),
                            util::json_dump(value).c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
