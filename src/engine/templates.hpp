#pragma once
// Templates are data: templates/<name>/template.json manifests, discovered from the
// built-in directory and every directory on IDP_TEMPLATES_PATH. Rescanned on every lookup,
// so a template dropped in at run time is used without a restart. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "util/expected.hpp"

namespace idp::engine {

// One config field a template accepts beyond the common ones.
struct TemplateField {
  std::string name;        // dotted config key, e.g. "schedule_expression", "database.seed"
  std::string type;        // string | integer | boolean | schedule | path | map
  std::string description;
  bool required = false;
  nlohmann::json default_value; // null when none
  std::optional<long long> minimum;
  std::optional<long long> maximum;
  std::vector<std::string> allowed; // enum values, empty = any
  std::string pattern;              // ECMAScript regex, "" = any
};

struct Template {
  std::string name;
  std::string description;
  std::string dir;                       // where template.json was found
  std::vector<std::string> components;   // web | database | schedule | static
  std::vector<std::string> runtimes;     // drivers it has parts for: local, terraform, ...
  std::vector<TemplateField> fields;
  nlohmann::json outputs = nlohmann::json::object(); // name → description
  std::string estimated_cost;
  std::vector<std::string> resources;
  bool builtin = false;

  bool has_component(std::string_view c) const;
  const TemplateField* field(std::string_view name) const;
  nlohmann::json to_json() const;
};

// Config keys that only some templates accept (any key some template lists as a field).
// Keys not in this set (ttl, environment, local.*, ...) are accepted by every template.
class TemplateCatalog {
public:
  // `builtin_dir` holds the shipped templates; `extra_dirs` come from IDP_TEMPLATES_PATH.
  TemplateCatalog(std::string builtin_dir, std::vector<std::string> extra_dirs);

  // Every template, by name. A later directory overrides an earlier one of the same name.
  // Manifests that fail to load are skipped and reported in `problems`.
  std::vector<Template> list(std::vector<std::string>* problems = nullptr) const;
  // not_found (with "did you mean") when there is no such template.
  Expected<Template> get(const std::string& name) const;

  // Checks a repository's config against its template's fields: required fields present,
  // values valid, fields of other templates refused. Errors carry the file position when
  // `positions` knows the key (line/col from the parse), else 0.
  std::vector<core::ConfigError> validate(const core::AppConfig& config, const Template& tmpl,
                                          const std::string& file = ".idp/config.yml") const;

  // Parses one manifest; invalid_config with the reason when malformed.
  static Expected<Template> parse_manifest(const std::string& text, const std::string& dir);

private:
  std::vector<std::string> m_dirs;
};

// Directories on a colon-separated path list (IDP_TEMPLATES_PATH).
std::vector<std::string> split_path_list(const std::string& list);

} // namespace idp::engine
