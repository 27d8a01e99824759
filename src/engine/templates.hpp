#pragma once
// Templates are data: templates/<name>/template.json manifests, discovered from the
// built-in directory and every directory on IDP_TEMPLATES_PATH. Rescanned on every lookup,
// so a template dropped in at run time is used without a restart. Thread-safe.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "core/app_config_rules.hpp"
#include "util/expected.hpp"

namespace idp::engine {

// The manifest model and its rules live in core (shared with `idp config validate`).
using TemplateField = core::TemplateField;
using Template = core::Template;

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
