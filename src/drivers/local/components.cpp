// The components beside web/static: "database" (the environment's own database and role
// in the home's PostgreSQL, created after the checkout so a seed can be read from it, and
// dropped after the app is gone) and "schedule" (the active revision's job handed to the
// JobScheduler, with the environment a run gets computed at each run).

#include <spdlog/spdlog.h>

#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/local_secrets.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

Expected<void> LocalDriver::ensure_database(const DeploySpec& spec, EnvState& state, const InstanceRecord& inst,
                                            common::LogWriter& log, Progress& progress) {
  const std::string& env = spec.env.name;
  const std::string& seed_path = spec.config.database.seed;
  bool first_use = !m_cluster->initialized();
  progress.step(first_use ? "database: creating the PostgreSQL cluster (first use)" : "database: starting PostgreSQL");
  IDP_TRY(m_cluster->ensure_running());
  if (first_use) {
    (void)log.append("system", "created the PostgreSQL cluster of this home (initdb " +
                                   std::to_string(m_cluster->init_ms()) + " ms, start " +
                                   std::to_string(m_cluster->start_ms()) + " ms)");
  }
  IDP_TRY(m_databases->harden_once()); // no driver lock held: other environments' applies go on
  if (!state.database) {
    DatabaseRecord rec;
    rec.name = database_name_for(env);
    rec.salt = util::random_hex(8);
    state.database = rec;
    IDP_TRY(save_env_state(paths(env).state, state)); // before it exists: destroy finds it
  }
  std::optional<SeedSource> seed;
  if (!seed_path.empty()) {
    IDP_TRY_ASSIGN(bool exists, m_databases->exists(state.database->name));
    if (!exists) {
      std::string file = util::path_join(util::path_join(inst.dir, "src"), seed_path);
      auto content = util::read_file(file);
      if (!content) {
        return make_error(ErrorCode::permanent, "database.seed " + util::quote(seed_path) +
                                                    ": no such file at commit " + util::short_commit(inst.commit, 12));
      }
      seed = SeedSource{spec.env.repo, seed_path, std::move(*content)};
      progress.step("database: creating " + state.database->name + " from seed " + seed_path);
    }
  }
  auto note = [&](const std::string& line) { (void)log.append("system", line); };
  IDP_TRY_ASSIGN(std::string created, m_databases->ensure(*state.database, seed, note));
  if (!created.empty()) {
    state.database->created_by = created;
    state.database->seed_path = seed ? seed->path : "";
    state.database->seed_template = seed ? seed_template_name(seed->repo, seed->content) : "";
    IDP_TRY(save_env_state(paths(env).state, state));
  }
  return {};
}

Expected<std::map<std::string, std::string>> LocalDriver::database_env(const EnvState& state) {
  if (!state.database) {
    return std::map<std::string, std::string>();
  }
  return m_databases->app_environment(*state.database);
}

std::set<std::string> LocalDriver::templates_in_use() const {
  std::set<std::string> out;
  for (const auto& name : subdirs(util::path_join(m_home, "envs"))) {
    auto loaded = load_env_state(paths(name).state);
    if (loaded && *loaded && (*loaded)->database && !(*loaded)->database->seed_template.empty()) {
      out.insert((*loaded)->database->seed_template);
    }
  }
  return out;
}

Expected<void> LocalDriver::drop_database(const std::string& env, const std::string& repo) {
  if (!m_cluster->initialized()) {
    return {};
  }
  IDP_TRY(m_cluster->ensure_running());
  IDP_TRY(m_databases->drop(database_name_for(env)));
  if (!repo.empty()) {
    if (auto r = m_databases->prune_templates(repo, templates_in_use()); !r) {
      spdlog::warn("local driver: cannot prune seed templates of {}: {}", repo, r.error().message);
    }
  }
  return {};
}

Expected<void> LocalDriver::register_job(const std::string& env, const EnvState& state, const InstanceRecord& inst) {
  const nlohmann::json& j = inst.job;
  JobScheduler::Job job;
  job.env = env;
  job.expression = j.value("expression", "");
  job.argv = j.value("argv", std::vector<std::string>{});
  job.cwd = util::path_join(inst.dir, "src");
  job.env_dir = paths(env).dir;
  job.log_dir = paths(env).logs;
  job.retention_days = j.value("retention_days", 0);
  if (job.argv.empty()) {
    return make_error(ErrorCode::invalid_config, "local.start: the job has no command");
  }
  IDP_TRY_ASSIGN(RunAs as, run_as(env, inst.untrusted));
  if (as.untrusted) {
    // A fork's job runs in the network sandbox, whose wrapper drops to the uid.
    std::map<std::string, std::string> db_env;
    if (state.database) {
      IDP_TRY_ASSIGN(db_env, m_databases->app_environment(*state.database));
    }
    job.argv = sandboxed(job.argv, as, 0, database_ports(db_env));
  }
  job.uid = as.untrusted ? -1 : as.uid;
  job.gid = as.untrusted ? -1 : as.gid;
  job.placement = placement_for(inst, as);
  std::optional<DatabaseRecord> db = state.database;
  auto config_env = j.value("environment", std::map<std::string, std::string>{});
  auto secret_refs = j.value("secrets", std::map<std::string, std::string>{});
  std::string key = inst.key;
  std::string repo = state.repo;
  job.environment = [this, env, key, db, config_env, secret_refs, repo,
                     as]() -> Expected<std::map<std::string, std::string>> {
    auto vars = base_env();
    apply_run_as(as, vars);
    if (db) {
      IDP_TRY_ASSIGN(auto d, m_databases->app_environment(*db));
      for (auto& [k, v] : d) {
        vars[k] = v;
      }
    }
    for (const auto& [k, v] : config_env) {
      vars[k] = v;
    }
    IDP_TRY_ASSIGN(ResolvedSecrets sec, resolve_secrets(secret_refs, repo, m_ctx.secrets));
    for (const auto& [k, v] : sec.env) {
      vars[k] = v;
    }
    for (const auto& [k, v] : marker_env(env, key)) {
      vars[k] = v;
    }
    return vars;
  };
  return m_scheduler->set(job);
}

} // namespace idp::drivers::local
