#pragma once
// The working directory of one environment under <home>/terraform/<env>/ (the layout is
// described in terraform_driver.hpp): the pinned settings, the copied root module with its
// generated backend, and the variables of the run. Files only: nothing here runs terraform.
//
// Thread-safety: const and stateless beyond the options; preparing one environment's
// directory twice at the same time is the caller's to prevent (the driver's lock).

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "core/environment.hpp"
#include "drivers/terraform/module_inspect.hpp"
#include "drivers/terraform/terraform_options.hpp"
#include "util/expected.hpp"

namespace idp::drivers::terraform {

// What is pinned for an environment at its first apply (settings.json).
struct EnvSettings {
  std::string template_name;
  std::string template_dir; // the template's directory at the last apply (destroy and unlock use it)
  std::string region;       // "" when neither the config nor the options name one
  std::string backend = "local";
  std::string state_bucket;
  std::string state_region;
  std::string dynamodb_table;
  std::string state_key; // s3: <prefix>/<env>/<region>/terraform.tfstate
  std::string s3_endpoint;
  std::string dynamodb_endpoint;

  nlohmann::json to_json() const;
  static EnvSettings from_json(const nlohmann::json& j);
  // DynamoDB LockID of the state lock: "<bucket>/<key>".
  std::string lock_id() const { return state_bucket + "/" + state_key; }
};

// The variables for a template: every standard value idp knows, filtered to those the
// module declares. `template_values` (from the engine) and the var_* options are added
// where declared; config values win over option defaults (use_shared_networking: an
// explicit `false` in the config overrides a server default of true).
nlohmann::json build_tfvars(const core::Environment& env, const core::AppConfig& config,
                            const nlohmann::json& template_values, const ModuleInfo& module, const std::string& region,
                            const TerraformOptions& opts);

class Workspace {
public:
  // A prepared working directory.
  struct Prepared {
    EnvSettings settings;
    ModuleInfo module;
    std::string root;   // the copied root module (-chdir)
    std::string tfvars; // path of terraform.tfvars.json
  };

  // `home` is absolute; `opts` must outlive the workspace.
  Workspace(std::string home, const TerraformOptions& opts) : m_home(std::move(home)), m_opts(opts) {}

  // <home>/terraform.
  std::string base_dir() const;
  // <home>/terraform/<env>.
  std::string dir(const std::string& env) const;
  // settings.json of `env`; nullopt when it is missing or unreadable (never applied).
  std::optional<EnvSettings> pinned_settings(const std::string& env) const;
  // <template_dir>/terraform, absolute; when template_dir is "", looked up by name in the
  // driver's own templates_dir and templates_path (driver tests; environments applied
  // before template_dir was pinned). invalid_config when there is no such module.
  Expected<std::string> template_module(const std::string& template_name, const std::string& template_dir) const;
  // Region and backend for `env`: the pinned settings when present, else from config/options.
  // invalid_config for a region change of a pinned environment or a missing region.
  Expected<EnvSettings> settings_for(const core::Environment& env, const core::AppConfig& config,
                                     const ModuleInfo& module) const;
  // Copies the module, writes settings.json, backend_override.tf and terraform.tfvars.json.
  // The template: `template_dir` (the engine's catalog), else the pinned one.
  Expected<Prepared> prepare(const core::Environment& env, const core::AppConfig& config,
                             const nlohmann::json& template_values, const std::string& template_dir = "") const;
  // The copied root module of a prepared directory (where backend_override.tf is); "" when none.
  std::string prepared_root(const std::string& env) const;
  // `init` arguments for the pinned backend.
  std::vector<std::string> init_args(const EnvSettings& s) const;

private:
  std::string m_home;
  const TerraformOptions& m_opts;
};

} // namespace idp::drivers::terraform
