#include "drivers/terraform/terraform_driver.hpp"

#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "core/names.hpp"
#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::terraform {

namespace fs = std::filesystem;

namespace {

util::Millis now_ms() { return util::SystemClock().now_ms(); }

} // namespace

TerraformDriver::TerraformDriver(DriverContext ctx, TerraformOptions opts)
    : m_ctx(std::move(ctx)), m_opts([&] {
        opts.untrusted_egress_cidrs = m_ctx.untrusted.egress_cidrs;
        opts.team_of = m_ctx.team_of;
        return std::move(opts);
      }()),
      m_workspace(util::absolute_path(m_ctx.home), m_opts), m_runner(m_opts), m_aws(m_opts, m_ctx.clock) {}

std::unique_ptr<common::LogWriter> TerraformDriver::env_log(const std::string& env) const {
  common::LogFileOptions lo;
  lo.max_bytes = m_opts.log_max_bytes;
  lo.keep = m_opts.log_keep;
  return std::make_unique<common::LogWriter>(util::path_join(work_dir(env), "logs"), "app.log", lo, m_ctx.clock);
}

Expected<void> TerraformDriver::start(const std::vector<core::Environment>& live) {
  std::string dir = m_workspace.base_dir();
  IDP_TRY(util::ensure_dir(dir));
  std::set<std::string> keep;
  for (const auto& e : live) {
    keep.insert(e.name);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_directory() || keep.count(name)) {
      continue;
    }
    // Not live in the store: whatever is left (resources, state) is an orphan.
    auto pinned = m_workspace.pinned_settings(name);
    core::Environment orphan;
    orphan.name = name;
    orphan.template_name = pinned ? pinned->template_name : "";
    auto g = m_locks.lock(name);
    auto destroyed = destroy_locked(orphan, nullptr);
    if (destroyed) {
      spdlog::info("terraform: destroyed leftovers of environment {} (not live)", name);
    } else {
      spdlog::warn("terraform: environment {} is not live, but destroying its leftovers failed: {}", name,
                   destroyed.error().full_message());
    }
  }
  return {};
}

Expected<void> TerraformDriver::plan(const DeploySpec& spec) {
  IDP_TRY(core::validate_env_name(spec.env.name));
  // Secrets become ECS valueFrom references: only ARNs mean anything to AWS (a name of the
  // server's secret store is injected by the local runtime only).
  for (const auto& [var, ref] : spec.config.secrets) {
    if (!core::is_secret_arn(ref)) {
      return make_error(ErrorCode::invalid_config, "secrets." + var +
                                                       ": the terraform runtime takes an ARN (Secrets Manager or SSM), "
                                                       "got the secret store name " +
                                                       util::quote(ref));
    }
  }
  IDP_TRY(m_opts.check_secret_arns(spec.config.secrets));
  IDP_TRY_ASSIGN(std::string tmpl_dir, m_workspace.template_module(spec.env.template_name, spec.template_dir));
  IDP_TRY_ASSIGN(ModuleInfo module, inspect_module(tmpl_dir));
  IDP_TRY_ASSIGN(EnvSettings settings, m_workspace.settings_for(spec.env, spec.config, module));
  if (spec.env.untrusted()) {
    // A fork's tasks get the security group egress of forks.egress_cidrs only: a template
    // that cannot take it cannot hold one, and with no network at all a task could not
    // even pull its image.
    if (!module.declares("egress_cidrs")) {
      return make_error(ErrorCode::invalid_config,
                        "template " + util::quote(spec.env.template_name) +
                            " has no variable \"egress_cidrs\": an approved fork's pull request cannot be sandboxed "
                            "on it (the built-in ECS templates have it)");
    }
    if (m_opts.untrusted_egress_cidrs.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "forks.egress_cidrs is empty: on ECS an approved fork's task reaches only those networks, "
                        "and needs at least the VPC endpoints it pulls its image and sends its logs through "
                        "(e.g. your VPC's CIDR)");
    }
  }
  nlohmann::json vars = build_tfvars(spec.env, spec.config, spec.template_values, module, settings.region, m_opts);
  for (const auto& [name, var] : module.variables) {
    if (!var.has_default && !vars.contains(name)) {
      return make_error(ErrorCode::invalid_config,
                        "template " + util::quote(spec.env.template_name) + " needs the variable " + util::quote(name) +
                            ", which idp cannot supply (set drivers.terraform.var_" + name + ")");
    }
  }
  return {};
}

Expected<ApplyResult> TerraformDriver::apply(const DeploySpec& spec, Progress& progress) {
  const std::string& name = spec.env.name;
  auto g = m_locks.lock(name);
  IDP_TRY(plan(spec));
  auto log = env_log(name);
  std::string work = work_dir(name);
  auto fail = [&](const Error& e) -> Expected<ApplyResult> {
    (void)log->append("system", "apply failed: " + e.message);
    nlohmann::json status = nlohmann::json::object();
    if (auto t = util::read_file(util::path_join(work, "status.json"))) {
      status = nlohmann::json::parse(*t, nullptr, false);
      if (!status.is_object()) {
        status = nlohmann::json::object();
      }
    }
    status["last_error"] = e.message;
    status["last_error_code"] = std::string(error_code_name(e.code));
    status["last_apply_ok"] = false;
    (void)util::write_file_atomic(util::path_join(work, "status.json"), util::json_dump(status, 2) + "\n");
    return Unexpected(e.with_context("environment " + util::quote(name)));
  };
  (void)log->append("system", "apply of " + (spec.env.commit.empty() ? std::string("(no commit)") : spec.env.commit) +
                                  " with template " + util::quote(spec.env.template_name));
  progress.step("preparing the terraform working directory");
  auto prepared = m_workspace.prepare(spec.env, spec.config, spec.template_values, spec.template_dir);
  if (!prepared) {
    return fail(prepared.error());
  }
  // Failpoints of the crash campaign (docs/hacking.md), one after each step.
  if (IDP_FAILPOINT("terraform.apply.prepared")) { // settings.json pinned, not initialised
    return fail(util::failpoint_error("terraform.apply.prepared"));
  }
  progress.phase("prepare");
  progress.step("terraform init");
  IDP_TRY_ASSIGN(RunOutcome init, m_runner.run(work, prepared->root, m_workspace.init_args(prepared->settings),
                                               log.get(), progress.cancel_flag()));
  if (init.exit_code != 0) {
    return fail(m_runner.command_error("init", init));
  }
  if (IDP_FAILPOINT("terraform.apply.initialised")) {
    return fail(util::failpoint_error("terraform.apply.initialised"));
  }
  progress.phase("init");
  progress.step("terraform apply");
  progress.revision_status(core::RevisionStatus::starting, "terraform apply");
  std::vector<std::string> args = {"apply",
                                   "-input=false",
                                   "-no-color",
                                   "-auto-approve",
                                   "-lock-timeout=" + std::to_string(m_opts.lock_timeout_ms / 1000) + "s",
                                   "-var-file=" + prepared->tfvars};
  IDP_TRY_ASSIGN(RunOutcome applied, m_runner.run(work, prepared->root, args, log.get(), progress.cancel_flag()));
  if (applied.exit_code != 0 || applied.cancelled) {
    return fail(m_runner.command_error("apply", applied));
  }
  if (IDP_FAILPOINT("terraform.apply.applied")) { // the state has the resources; status.json not yet
    return fail(util::failpoint_error("terraform.apply.applied"));
  }
  progress.phase("apply");
  progress.step("terraform output");
  auto outputs = m_runner.read_outputs(work, prepared->root, log.get());
  if (!outputs) {
    return fail(outputs.error());
  }
  progress.phase("output");
  ApplyResult result;
  if (outputs->contains("endpoint") && (*outputs)["endpoint"].is_string()) {
    result.url = (*outputs)["endpoint"].get<std::string>();
  }
  result.outputs = *outputs;
  nlohmann::json status = {{"last_apply_ok", true},
                           {"applied_at", util::format_iso8601(now_ms())},
                           {"outputs", *outputs},
                           {"cloud", prepared->module.providers.count("aws") > 0}};
  IDP_TRY(util::write_file_atomic(util::path_join(work, "status.json"), util::json_dump(status, 2) + "\n"));
  (void)log->append("system", "applied" + (result.url.empty() ? std::string() : ": " + result.url));
  return result;
}

Expected<Observation> TerraformDriver::observe(const core::Environment& env) {
  Observation obs;
  std::string work = work_dir(env.name);
  auto pinned = m_workspace.pinned_settings(env.name);
  if (!pinned) {
    obs.health = Health::not_running;
    obs.detail = "not applied";
    return obs;
  }
  nlohmann::json status = nlohmann::json::object();
  if (auto t = util::read_file(util::path_join(work, "status.json"))) {
    status = nlohmann::json::parse(*t, nullptr, false);
    if (!status.is_object()) {
      status = nlohmann::json::object();
    }
  }
  bool ever_applied = status.contains("outputs");
  if (status.contains("last_error") && !status.value("last_apply_ok", false)) {
    obs.warnings.push_back("last apply failed: " + status.value("last_error", ""));
  }
  nlohmann::json outputs = status.value("outputs", nlohmann::json::object());
  if (status.value("cloud", false) && outputs.contains("service_name") && outputs["service_name"].is_string()) {
    std::string region = outputs.value("aws_region", pinned->region);
    IDP_TRY_ASSIGN(Observation o, m_aws.observe_ecs(region, outputs));
    o.warnings.insert(o.warnings.end(), obs.warnings.begin(), obs.warnings.end());
    return o;
  }
  // No service to ask (tf-test, scheduled-worker, static-site): the state tells.
  std::string root = m_workspace.prepared_root(env.name);
  auto count = root.empty() ? std::nullopt : m_runner.state_resource_count(work, root);
  obs.status = {{"resources", count ? nlohmann::json(*count) : nlohmann::json()}, {"backend", pinned->backend}};
  if (!count) {
    obs.health = ever_applied ? Health::unknown : Health::not_running;
    obs.detail = ever_applied ? "cannot read the state" : "not applied";
    return obs;
  }
  if (*count == 0) {
    obs.health = Health::not_running;
    obs.detail = "the state has no resources";
    return obs;
  }
  if (!ever_applied) {
    obs.health = Health::unhealthy;
    obs.detail = std::to_string(*count) + " resource(s) from a failed first apply";
    return obs;
  }
  obs.health = Health::healthy;
  obs.detail = std::to_string(*count) + " resource(s) in the state";
  return obs;
}

Expected<void> TerraformDriver::destroy(const core::Environment& env, Progress& progress) {
  auto g = m_locks.lock(env.name);
  return destroy_locked(env, &progress);
}

Expected<void> TerraformDriver::destroy_locked(const core::Environment& env, Progress* progress) {
  IDP_TRY(core::validate_env_name(env.name));
  std::string work = work_dir(env.name);
  auto pinned = m_workspace.pinned_settings(env.name);
  if (!pinned && m_opts.backend == "local") {
    // Local state lives in the work directory: without it nothing was ever applied.
    IDP_TRY(util::remove_all(work));
    return {};
  }
  auto config = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
  core::AppConfig cfg = config ? *config : core::AppConfig{};
  core::Environment e = env;
  if (pinned && !pinned->template_name.empty()) {
    e.template_name = pinned->template_name;
  }
  if (e.template_name.empty()) {
    return make_error(ErrorCode::permanent, "environment " + util::quote(env.name) +
                                                ": cannot destroy: its template is unknown (no settings.json)");
  }
  if (e.created_at == 0) {
    e.created_at = now_ms();
    e.expires_at = e.created_at;
  }
  auto log = env_log(env.name);
  (void)log->append("system", "destroy");
  if (progress) {
    progress->step("preparing the terraform working directory");
  }
  IDP_TRY_ASSIGN(Workspace::Prepared p, m_workspace.prepare(e, cfg, nlohmann::json::object()));
  const std::atomic<bool>* cancel = progress ? progress->cancel_flag() : nullptr;
  if (progress) {
    progress->step("terraform init");
  }
  IDP_TRY_ASSIGN(RunOutcome init, m_runner.run(work, p.root, m_workspace.init_args(p.settings), log.get(), cancel));
  if (init.exit_code != 0) {
    return Unexpected(m_runner.command_error("init", init).with_context("environment " + util::quote(env.name)));
  }
  if (progress) {
    progress->step("terraform destroy");
  }
  std::vector<std::string> args = {"destroy",
                                   "-input=false",
                                   "-no-color",
                                   "-auto-approve",
                                   "-lock-timeout=" + std::to_string(m_opts.lock_timeout_ms / 1000) + "s",
                                   "-var-file=" + p.tfvars};
  IDP_TRY_ASSIGN(RunOutcome destroyed, m_runner.run(work, p.root, args, log.get(), cancel));
  if (destroyed.exit_code != 0 || destroyed.cancelled) {
    return Unexpected(
        m_runner.command_error("destroy", destroyed).with_context("environment " + util::quote(env.name)));
  }
  IDP_FAILPOINT_RETURN("terraform.destroy.destroyed"); // the state is empty; it and the work dir remain
  if (p.settings.backend == "s3") {
    // The state object and its digest item: without deleting the digest, re-creating the
    // same name fails with "state data in S3 does not have the expected content".
    auto client = m_aws.client(p.settings.state_region);
    if (!client) {
      return make_error(ErrorCode::invalid_config,
                        "environment " + util::quote(env.name) +
                            ": destroyed, but the state object cannot be deleted: no AWS credentials in the "
                            "server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
    }
    IDP_TRY(client->s3_delete_object(p.settings.state_bucket, p.settings.state_key, p.settings.state_region));
    if (!p.settings.dynamodb_table.empty()) {
      IDP_TRY(client->dynamodb_delete_lock_item(p.settings.dynamodb_table, p.settings.lock_id() + "-md5",
                                                p.settings.state_region));
    }
  }
  log.reset();
  IDP_TRY(util::remove_all(work));
  return {};
}

Expected<LogChunk> TerraformDriver::read_logs(const core::Environment& env, const LogQuery& q) {
  return m_aws.read_logs(env.name, work_dir(env.name), q);
}

Expected<nlohmann::json> TerraformDriver::exec(const core::Environment& env, const std::vector<std::string>& argv) {
  return make_error(ErrorCode::invalid_argument, "exec is not supported on terraform runtime; use ECS Exec "
                                                 "(aws ecs execute-command) with enable_execute_command = true");
}

Expected<nlohmann::json> TerraformDriver::cost(const core::Environment& env) { return m_aws.cost(env.name); }

} // namespace idp::drivers::terraform
