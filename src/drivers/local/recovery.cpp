// LocalDriver::start: what a (re)started daemon finds under its home, and what it keeps.
// Environments that are not live lose everything (files, processes, cgroups, uid, their
// databases); live ones keep their active revision, lose a half-started one, and get their
// route, uid and schedule back; processes, revision directories and cgroups that no active
// revision owns are orphans of a crash and go. The router starts (adopting the Caddy a
// previous daemon left serving) with the recorded routes before any orphan is stopped. Also remove_env_files(), which destroy() shares.

#include <algorithm>

#include <spdlog/spdlog.h>

#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/processes.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {

Expected<void> LocalDriver::start(const std::vector<core::Environment>& live) {
  {
    std::lock_guard<std::mutex> g(m_retire_mu);
    m_retire_stop = false; // a driver stopped and started again retires again
  }
  IDP_TRY(util::ensure_dir(util::path_join(m_home, "envs")));
  IDP_TRY(util::ensure_dir(util::path_join(m_home, "git")));
  if (!util::find_executable(m_opts.caddy_binary)) {
    return make_error(ErrorCode::invalid_config, "driver \"local\": caddy binary " + util::quote(m_opts.caddy_binary) +
                                                     " not found (set the driver option caddy_binary)");
  }
  if (m_ctx.router_port <= 0) {
    return make_error(ErrorCode::transient, "driver \"local\": no free port for the router");
  }
  std::set<std::string> live_names;
  for (const auto& e : live) {
    live_names.insert(e.name);
  }
  bool dead_databases = remove_dead_environments(live_names);
  std::map<std::string, EnvState> states = adopt_live_environments(live_names);
  // The router before the orphans go: a Caddy that a killed daemon left serving may route an
  // environment to a revision its record does not name (killed between the route switch
  // and the record). Loading the recorded routes points it back at the recorded revision,
  // which still runs, before stop_orphans() stops the half-started one; the other way
  // round, requests got 502 until the router started (seen in the soak).
  IDP_TRY(start_router(recorded_routes(states)));
  stop_orphans(states);
  prune_revisions(states);
  recover_databases(live_names, states, dead_databases);
  resume_environments(live_names, states);
  return {};
}

bool LocalDriver::remove_dead_environments(const std::set<std::string>& live_names) {
  // Environments that are no longer live lose everything (their databases in
  // recover_databases()).
  bool dead_databases = false;
  for (const auto& name : subdirs(util::path_join(m_home, "envs"))) {
    if (!live_names.count(name)) {
      spdlog::info("local driver: removing leftovers of environment {}", name);
      if (auto loaded = load_env_state(paths(name).state); !loaded || (*loaded && (*loaded)->database)) {
        dead_databases = true;
      }
      remove_env_files(name);
    }
  }
  return dead_databases;
}

std::map<std::string, EnvState> LocalDriver::adopt_live_environments(const std::set<std::string>& live_names) {
  // Live environments: drop half-started revisions, adopt the active one.
  std::map<std::string, EnvState> states;
  for (const auto& name : live_names) {
    if (!valid_env_name(name)) {
      continue;
    }
    auto p = paths(name);
    auto loaded = load_env_state(p.state);
    if (!loaded) {
      spdlog::warn("local driver: {}: {}; its processes are stopped", name, loaded.error().message);
      remove_env_files(name);
      continue;
    }
    if (!*loaded) {
      continue;
    }
    EnvState s = **loaded;
    s.env = name;
    if (s.pending) {
      bool shares = s.active && s.active->dir == s.pending->dir;
      retire(name, s.repo, *s.pending, !shares);
      s.pending.reset();
      (void)save_env_state(p.state, s); // best effort: a record still pending is retired again next time
    }
    if (!s.retiring.empty()) {
      // Replaced before the daemon stopped, not stopped yet: their drain is over.
      for (const auto& r : s.retiring) {
        spdlog::info("local driver: {}: stopping revision {}, replaced before the restart", name, r.key);
        retire(name, s.repo, r, !(s.active && s.active->dir == r.dir));
      }
      s.retiring.clear();
      (void)save_env_state(p.state, s); // best effort: retired again (a no-op) next time
    }
    if (s.active && s.active->kind == "web" && s.active->port > 0) {
      std::lock_guard<std::mutex> g(m_mutex);
      m_ports.insert(s.active->port);
    }
    states[name] = s;
  }
  return states;
}

void LocalDriver::stop_orphans(const std::map<std::string, EnvState>& states) {
  // Processes of this home that no active revision owns: orphans of a crash.
  std::vector<MarkedProcess> orphans;
  for (auto& proc : find_marked_processes(m_home_id)) {
    auto it = states.find(proc.env);
    if (it == states.end() || !it->second.active || it->second.active->key != proc.revision) {
      orphans.push_back(proc);
    }
  }
  if (!orphans.empty()) {
    spdlog::info("local driver: stopping {} orphaned process(es)", orphans.size());
    stop_marked_processes(orphans, m_opts.stop_grace_ms);
  }
}

std::vector<RouteTarget> LocalDriver::recorded_routes(std::map<std::string, EnvState>& states) {
  std::vector<RouteTarget> routes;
  for (auto& [name, s] : states) {
    if (s.route) {
      s.route->env = name;
      // The server's previews: settings may have changed since the route was recorded.
      s.route->protect =
          (s.active && s.active->untrusted) || preview_protected(s.repo, s.active && s.active->public_preview);
      routes.push_back(*s.route);
    }
  }
  return routes;
}

void LocalDriver::prune_revisions(const std::map<std::string, EnvState>& states) {
  // Revision directories and cgroups other than the active ones.
  std::set<std::string> active_groups;
  for (const auto& [name, s] : states) {
    auto p = paths(name);
    for (const auto& d : subdirs(p.dir)) {
      std::string full = util::path_join(p.dir, d);
      if (util::starts_with(d, "rev-") && (!s.active || s.active->dir != full)) {
        remove_revision_dir(s.repo, full);
      }
    }
    if (s.active) {
      active_groups.insert(s.active->cgroup_dirs.begin(), s.active->cgroup_dirs.end());
    }
  }
  // Every group of this home no active revision owns (of a live environment's old
  // revision, or of an environment whose files are gone), then the parents left empty.
  std::vector<std::string> stale;
  for (const auto& cg : m_cgroups.list("")) {
    if (!active_groups.count(cg)) {
      stale.push_back(cg);
    }
  }
  m_cgroups.remove(stale);
  for (const auto& parent : m_cgroups.remove_empty_parents()) {
    spdlog::info("local driver: removed the empty cgroup {}", parent);
  }
}

void LocalDriver::recover_databases(const std::set<std::string>& live_names,
                                    const std::map<std::string, EnvState>& states, bool dead_databases) {
  // The cluster runs when a live environment has a database, and is asked to forget the
  // databases of environments that are gone.
  bool live_databases = std::any_of(states.begin(), states.end(), [](const auto& kv) { return kv.second.database; });
  if (!m_cluster->initialized() || !(live_databases || dead_databases)) {
    return;
  }
  if (auto r = m_cluster->ensure_running(); !r) {
    spdlog::warn("local driver: PostgreSQL: {}; environments' databases are unreachable until it runs",
                 r.error().message);
    return;
  }
  (void)m_databases->harden_once(); // best effort: retried by the first apply with a database
  std::set<std::string> keep;
  for (const auto& name : live_names) {
    keep.insert(database_name_for(name));
  }
  for (const auto& [name, st] : states) {
    if (st.database) {
      keep.insert(st.database->name);
    }
  }
  if (auto found = m_databases->list_environment_databases()) {
    for (const auto& db : *found) {
      if (!keep.count(db)) {
        spdlog::info("local driver: dropping database {} of an environment that is gone", db);
        if (auto d = m_databases->drop(db); !d) {
          spdlog::warn("local driver: {}", d.error().message);
        }
      }
    }
  }
}

void LocalDriver::resume_environments(const std::set<std::string>& live_names,
                                      const std::map<std::string, EnvState>& states) {
  // Isolated environments keep their uids; the path to their directories is granted again
  // (the daemon may have reset the home's mode, which resets its ACL mask).
  if (auto r = m_uids->retain(live_names); !r) {
    spdlog::warn("local driver: {}", r.error().message);
  }
  for (const auto& [name, st] : states) {
    if (auto r = run_as(name, st.active && st.active->untrusted); !r) {
      spdlog::warn("local driver: {}", r.error().message);
    }
  }
  // Scheduled jobs resume; runs that ended while the daemon was down get recorded.
  for (const auto& [name, st] : states) {
    if (st.active && !st.active->job.is_null()) {
      if (auto r = register_job(name, st, *st.active); !r) {
        spdlog::warn("local driver: {}: cannot resume its schedule: {}", name, r.error().message);
      }
    }
  }
  m_scheduler->start();
}

Expected<void> LocalDriver::start_router(const std::vector<RouteTarget>& routes) {
  RouterConfig rc;
  rc.dir = util::path_join(m_home, "router");
  rc.caddy_binary = m_opts.caddy_binary;
  rc.listen_host = m_ctx.router_listen_host;
  rc.port = m_ctx.router_port;
  rc.domain = m_ctx.domain;
  rc.home_id = m_home_id;
  rc.tls.mode = m_ctx.https.mode;
  rc.tls.port = m_ctx.https.port;
  rc.tls.acme_email = m_ctx.https.acme_email;
  rc.tls.acme_ca = m_ctx.https.acme_ca;
  rc.tls.acme_ca_root = m_ctx.https.acme_ca_root;
  rc.tls.ask_url = m_ctx.https.ask_url;
  rc.tls.api_host = m_ctx.https.api_host;
  rc.tls.api_upstream = m_ctx.https.api_upstream;
  rc.auth_upstream = m_ctx.previews.auth_upstream;
  rc.wake_key = m_ctx.previews.wake_key;
  if (m_opts.router_mode == "lookup") {
    if (!m_ctx.previews.routes || rc.auth_upstream.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "router_mode \"lookup\" needs the daemon's API to answer the router (idp serve)");
    }
    rc.lookup = m_ctx.previews.routes;
  }
  rc.clock = m_ctx.clock;
  if (m_router) {
    unfollow_sessions();
    m_router->stop();
  }
  m_router = std::make_unique<CaddyRouter>(rc);
  m_access_log = std::make_unique<AccessLog>(m_router->access_log_path());
  if (m_ctx.previews.sessions && !rc.lookup) {
    // Signed-in browsers pass Caddy without a round trip to the daemon (issue 15).
    m_ctx.previews.sessions->listen([router = m_router.get()](const std::vector<core::PreviewSession>& s) {
      if (auto r = router->set_sessions(s); !r) {
        spdlog::warn("router: preview sessions not updated yet ({}); retrying", r.error().message);
      }
    });
  }
  return m_router->start(routes);
}

void LocalDriver::unfollow_sessions() {
  if (m_ctx.previews.sessions) {
    m_ctx.previews.sessions->listen(nullptr); // returns once no call to the router is under way
  }
}

void LocalDriver::remove_env_files(const std::string& env) {
  auto p = paths(env);
  std::optional<EnvState> state;
  if (auto loaded = load_env_state(p.state); loaded && *loaded) {
    state = **loaded;
  }
  std::string repo = state ? state->repo : "";
  if (state) {
    for (const auto* inst : {state->pending ? &*state->pending : nullptr, state->active ? &*state->active : nullptr}) {
      if (inst) {
        retire(env, repo, *inst, true);
      }
    }
    for (const auto& inst : state->retiring) {
      retire(env, repo, inst, true); // not waiting for their drain: the route is gone
    }
  }
  // Whatever the records missed (a crash before they were written, lost state).
  std::vector<MarkedProcess> left;
  for (auto& proc : find_marked_processes(m_home_id)) {
    if (proc.env == env) {
      left.push_back(proc);
    }
  }
  if (!left.empty()) {
    stop_marked_processes(left, m_opts.stop_grace_ms);
  }
  m_cgroups.remove(m_cgroups.list(env + "."));
  for (const auto& d : subdirs(p.dir)) {
    if (util::starts_with(d, "rev-")) {
      remove_revision_dir(repo, util::path_join(p.dir, d));
    }
  }
  release_uid(env);
  (void)util::remove_all(p.dir); // best effort: a leftover directory is removed at the next start
}

} // namespace idp::drivers::local
