// idp config validate|show: check a .idp/config.yml without a server.
#include <cstdio>
#include <iostream>

#include "cli/commands/commands.hpp"
#include "core/app_config.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {
Expected<core::ConfigParseResult> load(const std::string& file, std::string& text) {
  auto content = util::read_file(file);
  if (!content) {
    if (content.error().code == ErrorCode::not_found) {
      return make_error(ErrorCode::not_found, "no config file at " + util::quote(file) +
                                                  " (a repository without one gets every default)");
    }
    return Unexpected(content.error());
  }
  text = *content;
  return core::parse_app_config(text, file);
}
} // namespace

CommandSpec config_command() {
  struct Options {
    std::string file = ".idp/config.yml";
    bool json = false;
  };
  return {"config", "validate or show a repository's .idp/config.yml", false,
          [](CLI::App& sub, const GlobalOptions&) -> Runner {
            auto o = std::make_shared<Options>();
            auto mode = std::make_shared<std::string>();
            sub.require_subcommand(1);
            auto* validate = sub.add_subcommand("validate", "check a config file: exit 0 when valid, 1 with every error");
            validate->add_option("file", o->file, "config file (default .idp/config.yml)");
            validate->add_flag("--json", o->json, "print the result as JSON");
            validate->callback([mode] { *mode = "validate"; });
            auto* show = sub.add_subcommand("show", "print every setting with where it came from");
            show->add_option("file", o->file, "config file (default .idp/config.yml)");
            show->callback([mode] { *mode = "show"; });
            return [o, mode]() -> Expected<int> {
              std::string text;
              IDP_TRY_ASSIGN(auto result, load(o->file, text));
              if (*mode == "validate") {
                if (o->json) {
                  nlohmann::json errs = nlohmann::json::array();
                  for (const auto& e : result.errors) {
                    errs.push_back({{"file", e.file}, {"line", e.line}, {"column", e.column}, {"key", e.key},
                                    {"message", e.message}});
                  }
                  std::cout << util::json_dump(nlohmann::json{{"valid", result.ok()}, {"errors", errs}}, 2) << "\n";
                  return result.ok() ? k_exit_ok : k_exit_error;
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
              if (!result.ok()) {
                for (const auto& e : result.errors) {
                  std::fprintf(stderr, "%s\n", e.to_string().c_str());
                }
                return k_exit_error;
              }
              nlohmann::json j = core::to_json(result.config);
              j.erase("keys_set");
              for (const auto& [k, v] : j.items()) {
                if (v.is_object() && (k == "local" || k == "database" || k == "static")) {
                  for (const auto& [sk, sv] : v.items()) {
                    std::string key = k + "." + sk;
                    std::printf("(%s) %s = %s\n", result.config.has_key(key) ? o->file.c_str() : "default", key.c_str(),
                                util::json_dump(sv).c_str());
                  }
                  continue;
                }
                std::printf("(%s) %s = %s\n", result.config.has_key(k) ? o->file.c_str() : "default", k.c_str(),
                            util::json_dump(v).c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
