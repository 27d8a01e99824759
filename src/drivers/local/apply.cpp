// LocalDriver::apply: one deployment of one environment, in four steps (apply_run.hpp):
// prepare → bring up → switch → retire. Zero downtime: the new revision starts beside the
// old one, the route switches only once it is healthy, and the old one stops afterwards;
// a failing new revision is stopped and the old one keeps serving. Idempotent: the same
// deployment again only makes sure it is routed. Failpoints "local.apply.*" (crash
// campaign, docs/hacking.md) follow each step.

#include <algorithm>
#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "core/command_line.hpp"
#include "drivers/local/apply_run.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/processes.hpp"
#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/redact.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

// Errors of a deploy may quote what the app printed (and so its secrets): they reach events
// and the state store only with the environment's secret values replaced by "***".
Expected<ApplyResult> LocalDriver::apply(const DeploySpec& spec, Progress& progress) {
  auto r = apply_unredacted(spec, progress);
  if (!r && !spec.config.secrets.empty()) {
    util::Redactor redactor(secret_values(spec.config.secrets, spec.env.repo, m_ctx.secrets));
    for (Error* e = &r.error(); e != nullptr; e = e->cause.get()) {
      e->message = redactor.redact(e->message);
    }
  }
  return r;
}

Expected<ApplyResult> LocalDriver::apply_unredacted(const DeploySpec& spec, Progress& progress) {
  IDP_TRY(plan(spec));
  if (!m_router) {
    return make_error(ErrorCode::transient, "driver \"local\" is not started");
  }
  auto lock = m_env_locks.lock(spec.env.name);
  ApplyRun run(spec, progress);
  IDP_TRY_ASSIGN(auto answered, prepare(run));
  if (answered) {
    return std::move(*answered);
  }
  IDP_TRY(bring_up(run));
  IDP_TRY(switch_to(run));
  IDP_TRY(retire_old(run));
  return finish(run, result_for(run.env, run.inst), run.inst);
}

ApplyResult LocalDriver::finish(ApplyRun& run, ApplyResult res, const InstanceRecord& a) {
  // Extra outputs: the database (never its password) and the schedule.
  if (run.state.database) {
    const DatabaseRecord& db = *run.state.database;
    res.outputs["db_host"] = "127.0.0.1";
    res.outputs["db_port"] = m_cluster->port();
    res.outputs["db_name"] = db.name;
    res.outputs["db_user"] = db.name;
    res.outputs["db_created"] = db.created_by;
    if (!db.seed_template.empty()) {
      res.outputs["db_seed_template"] = db.seed_template;
    }
  }
  if (!a.job.is_null()) {
    res.outputs["schedule"] = a.job.value("expression", ""); // the runs are in job_runs
    auto st = m_scheduler->status(run.env);
    if (st.is_object() && st.contains("next_run_at")) {
      res.outputs["next_run_at"] = st["next_run_at"]; // kept current by observe()'s "schedule"
    }
  }
  res.warnings.insert(res.warnings.end(), run.warnings.begin(), run.warnings.end());
  return res;
}

Unexpected LocalDriver::abandon(ApplyRun& run, const Error& e) {
  (void)run.log->append("system", "revision " + run.inst.key + " failed: " + util::split(e.message, '\n')[0]);
  retire(run.env, run.state.repo, run.inst, !run.shares_active_dir);
  run.state.pending.reset();
  (void)save_env_state(run.paths.state, run.state); // best effort: the next apply or start retires it again
  run.progress.revision_status(core::RevisionStatus::failed, e.message);
  return Unexpected(e);
}

namespace {

Error apply_cancelled(const InstanceRecord& inst) {
  return Error(ErrorCode::cancelled, "deploy of revision " + inst.key + " cancelled");
}

} // namespace

// Failpoints of the crash campaign (docs/hacking.md): one after each step of a deploy. An
// injected error abandons the new revision like a real failure of that step.
#define IDP_APPLY_CRASH_POINT(run, name)                                                                               \
  do {                                                                                                                 \
    if (IDP_FAILPOINT(name)) {                                                                                         \
      return abandon(run, util::failpoint_error(name));                                                                \
    }                                                                                                                  \
  } while (false)

// --- prepare ---

Expected<std::optional<ApplyResult>> LocalDriver::prepare(ApplyRun& run) {
  const DeploySpec& spec = run.spec;
  const std::string& env = run.env;
  run.paths = paths(env);
  const auto& p = run.paths;
  IDP_TRY(util::ensure_dir(p.logs));
  run.log = env_log(env, spec.config.log_retention_days);

  EnvState& state = run.state;
  if (auto loaded = load_env_state(p.state); !loaded) {
    // Unreadable records: stop whatever runs for the environment and start over.
    spdlog::warn("local driver: {}: {}", env, loaded.error().message);
    remove_env_files(env);
    IDP_TRY(util::ensure_dir(p.logs));
  } else if (*loaded) {
    state = **loaded;
  }
  state.env = env;
  state.repo = spec.env.repo;
  run.kind = kind_for(spec);
  run.hash = content_hash(spec);
  const std::string& hash = run.hash;

  for (const auto& comp : spec.components) {
    if (comp != "web" && comp != "static" && comp != "database" && comp != "schedule") {
      run.warnings.push_back("component " + util::quote(comp) + " is not handled by the local runtime; ignored");
    }
  }
  run.wants_database = vector_has(spec.components, "database");
  run.wants_schedule = vector_has(spec.components, "schedule");

  // A revision left half-started by a crash or a cancelled deploy.
  std::optional<InstanceRecord> reusable;
  if (state.pending) {
    bool same = state.pending->content_hash == hash;
    bool shares = state.active && state.active->dir == state.pending->dir;
    retire(env, state.repo, *state.pending, !same && !shares);
    if (same) {
      reusable = state.pending;
    }
    state.pending.reset();
    IDP_TRY(save_env_state(p.state, state));
  }

  // Already there: make sure it is routed, change nothing else.
  if (state.active && state.active->content_hash == hash) {
    const InstanceRecord& a = *state.active;
    bool ok = a.kind == "web"      ? instance_running(a)
              : a.kind == "static" ? util::path_exists(util::path_join(a.static_root, "index.html"))
                                   : true;
    if (ok) {
      auto route = route_for(env, state.repo, a);
      if (route) {
        if (!state.route || !(*state.route == *route)) {
          state.route = route;
          IDP_TRY(save_env_state(p.state, state));
        }
        IDP_TRY(m_router->set_route(*route));
      }
      if (run.wants_database) {
        IDP_TRY(m_cluster->ensure_running()); // supervised anyway; a deploy waits for it
      }
      if (!a.job.is_null() && !m_scheduler->has(env)) {
        IDP_TRY(register_job(env, state, a));
      }
      run.progress.revision_status(core::RevisionStatus::serving, "revision " + a.key + " already serving");
      ApplyResult res = result_for(env, a);
      if (auto s = resolve_secrets(spec.config.secrets, spec.env.repo, m_ctx.secrets)) {
        res.warnings.insert(res.warnings.end(), s->warnings.begin(), s->warnings.end());
      }
      return finish(run, res, a);
    }
  }

  // The engine gives a fork's config no secrets; whatever reaches here, none is resolved.
  static const std::map<std::string, std::string> k_none;
  IDP_TRY_ASSIGN(run.secrets,
                 resolve_secrets(spec.env.untrusted() ? k_none : spec.config.secrets, spec.env.repo, m_ctx.secrets));
  run.warnings.insert(run.warnings.end(), run.secrets.warnings.begin(), run.secrets.warnings.end());

  InstanceRecord& inst = run.inst;
  if (reusable) {
    inst.key = reusable->key;
    inst.dir = reusable->dir;
  } else if (state.active && state.active->content_hash == hash) {
    // Same deployment, but its app died or was stopped with the server: restart it in its
    // directory (built already). If this start fails, it is a crash from now on.
    retire(env, state.repo, *state.active, false);
    inst.key = state.active->key;
    inst.dir = state.active->dir;
    state.active->stopped_with_server = false;
  } else {
    inst.key = std::to_string(spec.revision_id);
    bool retiring_key = std::any_of(state.retiring.begin(), state.retiring.end(),
                                    [&](const InstanceRecord& r) { return r.key == inst.key; });
    if ((state.active && state.active->key == inst.key) || retiring_key) {
      inst.key += "-" + std::to_string(state.next_seq++);
    }
    inst.dir = util::path_join(p.dir, "rev-" + inst.key);
    if (util::path_exists(inst.dir)) {
      remove_revision_dir(state.repo, inst.dir); // a leftover of an interrupted cleanup
    }
  }
  inst.revision_id = spec.revision_id;
  inst.commit = spec.env.commit;
  inst.content_hash = hash;
  inst.kind = run.kind;
  inst.health_path = spec.config.health_check_path;
  inst.public_preview = spec.config.public_preview && !spec.env.untrusted();
  inst.untrusted = spec.env.untrusted();
  if (run.wants_schedule) {
    IDP_TRY_ASSIGN(auto job_argv, core::split_command_line(spec.config.local.start));
    inst.job = {{"expression", spec.config.schedule_expression},
                {"argv", job_argv},
                {"environment", spec.config.environment},
                {"secrets", spec.config.secrets},
                {"retention_days", spec.config.log_retention_days}};
  }
  run.shares_active_dir = state.active && state.active->dir == inst.dir;
  state.pending = inst;
  IDP_TRY(save_env_state(p.state, state));
  IDP_APPLY_CRASH_POINT(run, "local.apply.pending_recorded");
  run.progress.phase("prepare");
  return std::optional<ApplyResult>();
}

// --- bring up ---

Expected<void> LocalDriver::bring_up(ApplyRun& run) {
  const DeploySpec& spec = run.spec;
  const std::string& env = run.env;
  InstanceRecord& inst = run.inst;
  EnvState& state = run.state;
  Progress& progress = run.progress;

  (void)run.log->append("system",
                        "deploying revision " + inst.key + " (commit " + util::short_commit(inst.commit, 12) + ")");
  auto as = run_as(env, spec.env.untrusted());
  if (!as) {
    return abandon(run, as.error());
  }
  const bool has_seed = run.wants_database && !spec.config.database.seed.empty();
  if (run.kind != "none" || has_seed) {
    progress.revision_status(core::RevisionStatus::building, "checking out " + util::short_commit(inst.commit, 12));
    if (auto r = checkout(spec.env.repo, inst, *as, progress); !r) {
      return abandon(run, r.error());
    }
    IDP_APPLY_CRASH_POINT(run, "local.apply.checked_out");
    progress.phase("checkout");
    if (progress.cancelled()) {
      return abandon(run, apply_cancelled(inst));
    }
  }
  // The database before the build, once the seed can be read from the checkout.
  std::map<std::string, std::string> db_env;
  if (run.wants_database) {
    if (auto r = ensure_database(spec, state, inst, *run.log, progress); !r) {
      return abandon(run, r.error().with_context("database"));
    }
    auto vars = database_env(state);
    if (!vars) {
      return abandon(run, vars.error().with_context("database"));
    }
    db_env = std::move(*vars);
    IDP_APPLY_CRASH_POINT(run, "local.apply.database_ready");
    progress.phase("database");
    if (progress.cancelled()) {
      return abandon(run, apply_cancelled(inst));
    }
  }
  if (run.kind != "none") {
    // The build runs in the revision's cgroup already (pids.max bounds a fork bomb).
    place_revision(env, spec, *as, inst);
    state.pending = inst;
    if (auto r = save_env_state(run.paths.state, state); !r) {
      return abandon(run, r.error());
    }
    if (auto r = build(spec, inst, *as, *run.log, progress); !r) {
      return abandon(run, r.error());
    }
    IDP_APPLY_CRASH_POINT(run, "local.apply.built");
    progress.phase("build");
    if (progress.cancelled()) {
      return abandon(run, apply_cancelled(inst));
    }
  }
  if (run.kind == "web") {
    progress.revision_status(core::RevisionStatus::starting, "starting " + spec.config.local.start);
    if (auto r = start_web(spec, run.secrets.env, db_env, *as, inst, state, *run.log, progress); !r) {
      return abandon(run, r.error());
    }
    IDP_APPLY_CRASH_POINT(run, "local.apply.started");
  } else if (run.kind == "static") {
    inst.static_root = util::path_join(util::path_join(inst.dir, "src"), spec.config.static_site.dir);
    inst.spa = spec.config.static_site.spa;
    if (!util::path_exists(util::path_join(inst.static_root, "index.html"))) {
      return abandon(run, Error(ErrorCode::permanent, "static.dir " + util::quote(spec.config.static_site.dir) +
                                                          " has no index.html after the build"));
    }
  }
  if (progress.cancelled()) {
    return abandon(run, apply_cancelled(inst));
  }
  return {};
}

// --- switch ---

// Route first (the old revision serves until Caddy has the new upstream), then the
// record; the old revision goes in retire_old().
Expected<void> LocalDriver::switch_to(ApplyRun& run) {
  const std::string& env = run.env;
  InstanceRecord& inst = run.inst;
  EnvState& state = run.state;
  auto route = route_for(env, state.repo, inst);
  std::optional<RouteTarget> old_route = state.route;
  if (route) {
    if (auto r = m_router->set_route(*route); !r) {
      return abandon(run, r.error());
    }
  } else if (auto r = m_router->remove_route(env); !r) {
    return abandon(run, r.error());
  }
  IDP_APPLY_CRASH_POINT(run, "local.apply.routed");
  run.progress.phase("route");
  run.old = state.active;
  state.active = inst;
  state.pending.reset();
  state.route = route;
  // The old revision is retiring from this write on: the retirer stops it after the drain,
  // or a restarted daemon does.
  bool retires_old = run.old && run.old->dir != inst.dir;
  if (retires_old) {
    state.retiring.push_back(*run.old);
  }
  if (auto r = save_env_state(run.paths.state, state); !r) {
    if (old_route) {
      (void)m_router->set_route(*old_route); // best effort: the record still names the old revision
    }
    if (retires_old) {
      state.retiring.pop_back();
    }
    state.active = run.old;
    state.route = old_route;
    state.pending = inst;
    return abandon(run, r.error());
  }
  run.progress.revision_status(core::RevisionStatus::serving, "serving at " + result_for(env, inst).url);
  (void)run.log->append("system", "revision " + inst.key + " is serving");
  IDP_FAILPOINT_RETURN("local.apply.switched"); // the new revision serves; the old one still runs
  return {};
}

// --- retire ---

Expected<void> LocalDriver::retire_old(ApplyRun& run) {
  const std::string& env = run.env;
  const std::optional<InstanceRecord>& old = run.old;
  if (old && old->dir != run.inst.dir) {
    // Requests Caddy's previous config had already sent to the old revision finish after
    // set_route() returned; stopping it at once would fail them (502). The drain runs on
    // the retirer, beside the next deploys: none of them waits for it.
    int64_t drain = old->port > 0 ? m_opts.drain_ms : 0;
    run.progress.step("revision " + old->key + " retiring (stopped after a drain of " + util::format_duration(drain) +
                      ", in the background)");
    (void)run.log->append("system", "revision " + old->key + " retiring");
    schedule_retire(env, old->key, drain);
  }
  if (run.wants_schedule) {
    if (auto r = register_job(env, run.state, run.inst); !r) {
      return Unexpected(r.error()); // plan() checked the expression; this is unexpected
    }
  } else if (m_scheduler->has(env)) {
    m_scheduler->remove(env, "the environment's template has no schedule any more");
  }
  return {};
}

#undef IDP_APPLY_CRASH_POINT

} // namespace idp::drivers::local
