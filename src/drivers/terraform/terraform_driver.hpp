#pragma once
// The Terraform/OpenTofu runtime: each environment is one root module from
// templates/<template>/terraform/, applied with its own working directory, data
// directory and state.
//
// Layout under <home>/terraform/<env>/ (never anything in the repository tree):
//   settings.json            what is pinned at the first apply: template, region, backend
//                            and state key (a later config or option change cannot move the
//                            state of an existing environment and orphan its resources)
//   src/<rel>/               a copy of the template's module, at the same path relative to
//                            the nearest common ancestor of the template and the modules it
//                            calls by relative path (e.g. src/templates/api-service/terraform);
//                            those modules are reached through symlinks beside it
//                            (src/terraform -> <repo>/terraform), so `../../../terraform/
//                            modules/x` resolves as in the repository. The copy holds the
//                            generated backend_override.tf.
//   data/                    TF_DATA_DIR (providers, backend record): per environment, so
//                            several environments init/apply/destroy at the same time
//   state/terraform.tfstate  local backend state (backend "local")
//   terraform.tfvars.json    the variables of the last run (only those the module declares)
//   status.json              outcome of the last apply and the flattened outputs
//   logs/app.log             the environment log: every terraform line (stream "terraform")
//
// Commands run through util::run with argv, `-chdir=src/<rel>`, -input=false and
// -no-color. Cancellation (progress.cancel_flag()) sends SIGTERM to terraform (a graceful
// stop that releases the state lock) and SIGKILL to its process group after
// `stop_grace_ms`. Error kinds: a held state lock is conflict (with the lock ID), invalid
// variables are invalid_config, network/throttling failures are transient, the rest
// permanent.
//
// Thread-safety: operations on different environments run concurrently; apply/destroy of
// one environment are serialised by a per-environment mutex. unlock() does not wait for
// it (it must be able to break the lock a waiting apply is stuck on).

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "drivers/common/log_files.hpp"
#include "drivers/driver.hpp"
#include "drivers/terraform/aws_client.hpp"
#include "drivers/terraform/module_inspect.hpp"
#include "drivers/terraform/terraform_options.hpp"

namespace idp::drivers::terraform {

// What is pinned for an environment at its first apply (settings.json).
struct EnvSettings {
  std::string template_name;
  std::string template_dir;     // the template's directory at the last apply (destroy and unlock use it)
  std::string region;           // "" when neither the config nor the options name one
  std::string backend = "local";
  std::string state_bucket;
  std::string state_region;
  std::string dynamodb_table;
  std::string state_key;        // s3: <prefix>/<env>/<region>/terraform.tfstate
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
                            const nlohmann::json& template_values, const ModuleInfo& module,
                            const std::string& region, const TerraformOptions& opts);

// The environment terraform and its providers run with: from `daemon_env` only the
// allowlist (AWS_*, proxies, PATH, TMPDIR, locale, TLS roots, TF_CLI_CONFIG_FILE, ...) and
// `extra_allowed`; HOME is `work_dir` (the daemon's ~/.aws files are passed by path).
std::map<std::string, std::string> terraform_environment(const std::map<std::string, std::string>& daemon_env,
                                                         const std::vector<std::string>& extra_allowed,
                                                         const std::string& work_dir);

// The lock ID in terraform's "Error acquiring the state lock" output ("Lock Info: ID: …");
// "" when there is none. The last one wins.
std::string parse_lock_id(std::string_view output);

class TerraformDriver final : public Driver {
public:
  TerraformDriver(DriverContext ctx, TerraformOptions opts);

  std::string_view name() const override { return "terraform"; }
  // Destroys what is left of environments not in `live` (their state and work directory).
  Expected<void> start(const std::vector<core::Environment>& live) override;
  // Nothing runs between operations: environments always keep running.
  void stop(bool keep_running) override {}
  Expected<void> plan(const DeploySpec& spec) override;
  Expected<ApplyResult> apply(const DeploySpec& spec, Progress& progress) override;
  // tf-test (no cloud provider): healthy when the state has resources and an apply
  // succeeded. AWS templates: ECS service counts and target health when credentials are
  // in the environment, unknown otherwise.
  Expected<Observation> observe(const core::Environment& env) override;
  Expected<void> destroy(const core::Environment& env, Progress& progress) override;
  // The environment log (terraform output), merged with CloudWatch Logs /ecs/idp-<env>
  // for AWS templates when credentials are available.
  Expected<LogChunk> read_logs(const core::Environment& env, const LogQuery& q) override;
  // Breaks a held state lock (also of an environment whose first apply failed).
  Expected<std::string> unlock(const core::Environment& env) override;
  Expected<nlohmann::json> exec(const core::Environment& env, const std::vector<std::string>& argv) override;
  // Cost Explorer: daily burn, month to date and a projection for tag idp:environment.
  Expected<nlohmann::json> cost(const core::Environment& env) override;

  // <home>/terraform/<env>.
  std::string work_dir(const std::string& env) const;
  const TerraformOptions& options() const { return m_opts; }

private:
  struct Prepared {
    EnvSettings settings;
    ModuleInfo module;
    std::string root;    // the copied root module (-chdir)
    std::string tfvars;  // path of terraform.tfvars.json
  };
  struct RunOutcome {
    int exit_code = -1;
    bool cancelled = false;
    bool timed_out = false;
    std::string output; // stdout + stderr, in order of arrival
  };

  std::mutex& env_mutex(const std::string& env);
  std::unique_ptr<common::LogWriter> env_log(const std::string& env) const;
  // <template_dir>/terraform, absolute; when template_dir is "", looked up by name in the
  // driver's own templates_dir and templates_path (driver tests; environments applied
  // before template_dir was pinned).
  Expected<std::string> template_module(const std::string& template_name, const std::string& template_dir) const;
  // Region and backend for `env`: the pinned settings when present, else from config/options.
  Expected<EnvSettings> settings_for(const core::Environment& env, const core::AppConfig& config,
                                     const ModuleInfo& module) const;
  std::optional<EnvSettings> pinned_settings(const std::string& env) const;
  // Copies the module, writes settings.json, backend_override.tf and terraform.tfvars.json.
  Expected<Prepared> prepare(const core::Environment& env, const core::AppConfig& config,
                             const nlohmann::json& template_values, const std::string& template_dir = "");
  std::vector<std::string> init_args(const EnvSettings& s) const;
  std::map<std::string, std::string> command_env(const std::string& env) const;
  // Runs `terraform -chdir=<root> <args>`, streaming lines to `log`.
  Expected<RunOutcome> run_tf(const std::string& env, const std::string& root, const std::vector<std::string>& args,
                              common::LogWriter* log, const std::atomic<bool>* cancel) const;
  Error command_error(const std::string& what, const RunOutcome& r) const;
  Expected<nlohmann::json> read_outputs(const std::string& env, const std::string& root, common::LogWriter* log) const;
  // Number of resources in the state; nullopt when it cannot be read.
  std::optional<size_t> state_resource_count(const std::string& env, const std::string& root) const;
  Expected<void> destroy_locked(const core::Environment& env, Progress* progress);
  std::optional<AwsClient> aws_client(const std::string& region) const;
  Expected<Observation> observe_ecs(const std::string& region, const nlohmann::json& outputs) const;

  DriverContext m_ctx;
  TerraformOptions m_opts;
  std::string m_home;
  std::mutex m_mutex; // guards m_env_mutexes
  std::map<std::string, std::shared_ptr<std::mutex>> m_env_mutexes;
};

} // namespace idp::drivers::terraform
