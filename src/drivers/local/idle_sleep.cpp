// Idle sleep (issue 12): an environment nobody requests stops its processes and keeps its
// database, files and URL. Its route leads to the daemon's wake handler (CaddyRouter's
// wake route); the engine's wake is an apply of the serving revision, which starts it in
// its directory (checked out and built already: no checkout, no build) and switches the
// route back to the app.

#include "drivers/local/local_driver.hpp"

#include "drivers/local/local_driver_support.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

Expected<void> LocalDriver::sleep(const core::Environment& env, Progress& progress) {
  IDP_TRY(check_env_name(env.name));
  if (!m_router) {
    return make_error(ErrorCode::transient, "the router is not running");
  }
  if (m_router->lookup_mode()) {
    return make_error(ErrorCode::invalid_argument,
                      "idle sleep needs the router's own routes: router_mode \"lookup\" cannot wake an environment");
  }
  if (m_ctx.previews.auth_upstream.empty() || m_ctx.previews.wake_key.empty()) {
    return make_error(ErrorCode::invalid_argument, "idle sleep needs the daemon's wake handler (idp serve)");
  }
  auto lk = m_env_locks.lock(env.name);
  auto p = paths(env.name);
  IDP_TRY_ASSIGN(auto loaded, load_env_state(p.state));
  if (!loaded || !loaded->active) {
    return make_error(ErrorCode::invalid_argument,
                      "environment " + util::quote(env.name) + " runs nothing that could go to sleep");
  }
  EnvState state = std::move(*loaded);
  InstanceRecord& a = *state.active;
  if (a.kind != "web") {
    return make_error(ErrorCode::invalid_argument, "only a web app sleeps: environment " + util::quote(env.name) +
                                                       " is a " + a.kind + " one, which runs no process to stop");
  }
  if (!a.asleep || !state.route || !state.route->wake) {
    // Recorded first: a daemon killed from here on finds it asleep, routed to the wake
    // handler, and stops whatever is left of its processes.
    a.asleep = true;
    state.route = route_for(env.name, state.repo, a);
    IDP_TRY(save_env_state(p.state, state));
  }
  progress.step("going to sleep");
  IDP_TRY(m_router->set_route(*state.route)); // from here on, requests wake it
  retire(env.name, state.repo, a, false);     // its processes and cgroups; the directory stays
  (void)env_log(env.name, 0)->append("system", "revision " + a.key + " is asleep: its first request wakes it");
  return {};
}

Expected<std::optional<util::Millis>> LocalDriver::last_request(const core::Environment& env) {
  IDP_TRY(check_env_name(env.name));
  if (!m_router || !m_access_log) {
    return std::optional<util::Millis>();
  }
  m_access_log->poll();
  return m_access_log->last_request(m_router->host_for(env.name));
}

} // namespace idp::drivers::local
