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
// The parts: workspace.hpp (the work directory, tfvars, backend), runner.hpp (running
// terraform, its environment and output), aws_status.hpp (observe, logs and cost through
// AwsClient), lock.hpp (the driver's per-environment lock; unlock is in lock.cpp).
//
// Thread-safety: operations on different environments run concurrently; apply/destroy of
// one environment are serialised by a per-environment mutex. unlock() does not wait for
// it (it must be able to break the lock a waiting apply is stuck on).

#include <memory>
#include <string>

#include "drivers/common/log_files.hpp"
#include "drivers/driver.hpp"
#include "drivers/terraform/aws_status.hpp"
#include "drivers/terraform/lock.hpp"
#include "drivers/terraform/runner.hpp"
#include "drivers/terraform/terraform_options.hpp"
#include "drivers/terraform/workspace.hpp"
#include "util/keyed_mutex.hpp"

namespace idp::drivers::terraform {

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
  std::string work_dir(const std::string& env) const { return m_workspace.dir(env); }
  const TerraformOptions& options() const { return m_opts; }

private:
  std::unique_ptr<common::LogWriter> env_log(const std::string& env) const;
  // destroy() with the environment's lock held; `progress` may be null (start's cleanup).
  Expected<void> destroy_locked(const core::Environment& env, Progress* progress);

  DriverContext m_ctx;
  TerraformOptions m_opts;
  Workspace m_workspace; // these three refer to m_opts
  Runner m_runner;
  AwsStatus m_aws;
  util::KeyedMutex m_locks; // the driver's lock, by environment name (lock.hpp)
};

} // namespace idp::drivers::terraform
