#pragma once
// The rules a parsed .idp/config.yml must also pass before an environment is created from
// it: its template exists, the template's fields (required, allowed, ranges, patterns), no
// field of another template, and the TTL within the server's policy. One implementation
// for `idp create` (the engine) and `idp config validate` (the CLI, offline or against a
// server), so the two cannot disagree. No I/O: templates come in as parsed manifests.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "core/ttl.hpp"
#include "util/expected.hpp"

namespace idp::core {

// One config field a template accepts beyond the common ones.
struct TemplateField {
  std::string name; // dotted config key, e.g. "schedule_expression", "database.seed"
  std::string type; // string | integer | boolean | schedule | path | map
  std::string description;
  bool required = false;
  nlohmann::json default_value; // null when none
  std::optional<long long> minimum;
  std::optional<long long> maximum;
  std::vector<std::string> allowed; // enum values, empty = any
  std::string pattern;              // ECMAScript regex, "" = any
};

// A template manifest (templates/<name>/template.json).
struct Template {
  std::string name;
  std::string description;
  std::string dir;                     // where template.json was found
  std::vector<std::string> components; // web | database | schedule | static
  std::vector<std::string> runtimes;   // drivers it has parts for: local, terraform, ...
  std::vector<TemplateField> fields;
  nlohmann::json outputs = nlohmann::json::object(); // name → description
  std::string estimated_cost;
  std::vector<std::string> resources;
  bool builtin = false;
  bool hidden = false; // listed only on request (test fixtures such as tf-test)

  bool has_component(std::string_view c) const;
  const TemplateField* field(std::string_view name) const;
  // The API's shape (GET /api/v1/templates); template_from_json reads it back.
  nlohmann::json to_json() const;
};

// Parses one manifest found in `dir`; invalid_config with the reason when malformed.
Expected<Template> parse_template_manifest(const std::string& text, const std::string& dir);
// A template as the API returns it; invalid_config when malformed.
Expected<Template> template_from_json(const nlohmann::json& j);

// What the rules are checked against.
struct AppConfigRules {
  std::vector<Template> templates; // every template the server (or this machine) knows
  TtlPolicy ttl_policy;
  bool check_ttl = true; // false when the request overrides the config's ttl
};

// The template `config` names (or `template_override`), checked against `rules`: every
// problem found, each with its file position when known. Empty when create would accept it.
std::vector<ConfigError> check_app_config(const AppConfig& config, const AppConfigRules& rules,
                                          const std::string& file = ".idp/config.yml");
// Only the template's field rules (required, allowed values, fields of other templates).
std::vector<ConfigError> check_template_fields(const AppConfig& config, const Template& tmpl,
                                               const std::vector<Template>& all,
                                               const std::string& file = ".idp/config.yml");

// Parses `text` (empty = every default) and checks the result against `rules`: every parse
// error and every rule error (a key that failed to parse is not checked again). The template
// is `template_override` if set, else the file's, else `default_template` if set.
ConfigParseResult validate_app_config(std::string_view text, const AppConfigRules& rules,
                                      const std::string& file = ".idp/config.yml",
                                      const std::string& template_override = "",
                                      const std::string& default_template = "");

// The template of that name, else not_found with "did you mean" and the available names.
Expected<Template> find_template(const std::vector<Template>& all, const std::string& name);

} // namespace idp::core
