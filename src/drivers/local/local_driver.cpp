// LocalDriver's core (local_driver.hpp has the overview): construction, the identities an
// environment's code runs with (paths, uid, ports, variables), plan(), stop(), observe(),
// destroy() and read_logs(). Recovery at start, the revision launcher, the components,
// apply's steps and exec are in their own files (see the list in local_driver.hpp).

#include "drivers/local/local_driver.hpp"

#include <algorithm>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/command_line.hpp"
#include "core/schedule.hpp"
#include "drivers/common/failure_cause.hpp"
#include "drivers/local/isolation.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/local_secrets.hpp"
#include "drivers/local/netns_sandbox.hpp"
#include "drivers/local/processes.hpp"
#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

std::string home_id_for(const std::string& home) { return util::sha256_hex(canonical_home(home)).substr(0, 12); }

LocalDriver::LocalDriver(DriverContext ctx, LocalOptions opts)
    : m_ctx(std::move(ctx)), m_opts(std::move(opts)), m_home(canonical_home(m_ctx.home)),
      m_home_id(home_id_for(m_ctx.home)),
      m_helper_exe(helper_exe_for(m_ctx.self_exe.empty() ? self_exe_path() : m_ctx.self_exe)),
      m_cgroups(m_opts.cgroup_root, m_home_id) {
  if (m_ctx.router_port == 0) {
    if (auto p = util::find_free_app_port()) {
      m_ctx.router_port = *p;
    }
  }
  ClusterOptions co;
  co.dir = util::path_join(m_home, "postgres");
  co.state_dir = util::path_join(m_home, "db");
  co.home = m_home;
  co.bin_dir = m_opts.postgres_bin_dir;
  co.user = m_opts.postgres_user;
  co.cluster_name = "idp-" + m_home_id;
  m_cluster = std::make_unique<PostgresCluster>(co);
  m_databases = std::make_unique<DatabaseManager>(*m_cluster, util::path_join(co.state_dir, "master.key"),
                                                  m_opts.database_connection_limit);
  m_isolated = ::geteuid() == 0 && m_opts.isolation == "auto";
  m_uids = std::make_unique<UidAllocator>(util::path_join(m_home, "uids.json"), m_opts.uid_range,
                                          m_isolated ? "/run/idp-uids" : "");
  JobScheduler::Options so;
  so.self_exe = m_helper_exe;
  so.home_id = m_home_id;
  so.time_scale = m_opts.schedule_time_scale;
  so.clock = m_ctx.clock;
  so.log_max_bytes = m_opts.log_max_bytes;
  so.log_keep = m_opts.log_keep;
  so.stop_grace_ms = m_opts.stop_grace_ms;
  so.job_runs = m_ctx.job_runs;
  m_scheduler = std::make_unique<JobScheduler>(so);
}

LocalDriver::~LocalDriver() {
  stop_retirer(); // what it had not stopped yet stays recorded: the next start stops it
  m_scheduler->stop();
  if (m_router) {
    unfollow_sessions();
    m_router->stop();
  }
}

std::string LocalDriver::url_for(const std::string& env) const {
  if (m_ctx.https.on()) {
    return "https://" + env + "." + m_ctx.domain +
           (m_ctx.https.port == 443 ? "" : ":" + std::to_string(m_ctx.https.port)) + "/";
  }
  return "http://" + env + "." + m_ctx.domain + ":" + std::to_string(m_ctx.router_port) + "/";
}

pid_t LocalDriver::router_pid_for_test() const { return m_router ? m_router->pid() : 0; }

LocalDriver::EnvPaths LocalDriver::paths(const std::string& env) const {
  std::string dir = util::path_join(util::path_join(m_home, "envs"), env);
  return {dir, util::path_join(dir, "state.json"), util::path_join(dir, "logs")};
}

std::unique_ptr<common::LogWriter> LocalDriver::env_log(const std::string& env, int retention_days) const {
  common::LogFileOptions o;
  o.max_bytes = m_opts.log_max_bytes;
  o.keep = m_opts.log_keep;
  o.retention_days = retention_days;
  return std::make_unique<common::LogWriter>(paths(env).logs, "app.log", o);
}

std::map<std::string, std::string> LocalDriver::base_env() const {
  std::map<std::string, std::string> env;
  for (const auto& k : passthrough_variables()) {
    if (const char* v = std::getenv(k.c_str())) {
      env[k] = v;
    }
  }
  if (!env.count("PATH")) {
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  }
  return env;
}

std::map<std::string, std::string> LocalDriver::marker_env(const std::string& env, const std::string& key) const {
  return {{k_marker_home, m_home_id}, {k_marker_env, env}, {k_marker_revision, key}};
}

Expected<LocalDriver::RunAs> LocalDriver::run_as(const std::string& env, bool untrusted) {
  if (untrusted && ::geteuid() != 0) {
    return make_error(ErrorCode::permanent,
                      "environment " + util::quote(env) +
                          " runs a pull request from a fork: the untrusted profile needs a server running as root "
                          "(its own uid and network namespace); this server runs as uid " +
                          std::to_string(::geteuid()));
  }
  if (!m_isolated && !untrusted) {
    return RunAs{};
  }
  auto fail = [&](const Error& e) {
    return Unexpected(e.with_context("isolation of environment " + util::quote(env)));
  };
  auto uid = m_uids->acquire(env);
  if (!uid) {
    return fail(uid.error());
  }
  auto p = paths(env);
  RunAs as{static_cast<int>(*uid), static_cast<int>(*uid), util::path_join(p.dir, "home"), untrusted};
  if (auto r = util::ensure_dir(p.dir, 0700); !r) {
    return fail(r.error());
  }
  // Search only, down to its own directory: the uid cannot list or read anything on the
  // way (the home's files are 0600/0700, umask 077), nor enter another environment's.
  // Directories above the home that others may not search (a home under /root, a 0700
  // temporary directory) get the same search-only entry, or nothing would be reachable.
  std::vector<std::string> way = ancestors_closed_to_others(m_home);
  way.insert(way.end(), {m_home, util::path_join(m_home, "envs"), p.dir});
  auto notes = grant_search_path(way, *uid);
  if (!notes) {
    return fail(notes.error());
  }
  for (const auto& n : *notes) {
    spdlog::warn("local driver: {}", n);
  }
  if (auto r = ensure_private_dir(as.home, *uid, *uid); !r) {
    return fail(r.error());
  }
  return as;
}

std::vector<std::string> LocalDriver::sandboxed(const std::vector<std::string>& argv, const RunAs& as, int publish,
                                                const std::vector<int>& forward) const {
  if (!as.untrusted) {
    return argv;
  }
  NetnsArgs na;
  na.uid = as.uid;
  na.gid = as.gid;
  if (publish > 0) {
    na.publish.push_back(publish);
  }
  na.forward = forward;
  na.allow = m_ctx.untrusted.egress_allow;
  // The proxy shares the namespace's 127.0.0.1 with the relayed ports.
  auto taken = [&](int p) {
    return std::find(na.publish.begin(), na.publish.end(), p) != na.publish.end() ||
           std::find(na.forward.begin(), na.forward.end(), p) != na.forward.end();
  };
  while (taken(na.proxy_port)) {
    na.proxy_port += 1;
  }
  na.argv = argv;
  std::vector<std::string> out = {m_helper_exe};
  for (auto& a : netns_command_arguments(na)) {
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<int> LocalDriver::database_ports(const std::map<std::string, std::string>& db_env) {
  auto it = db_env.find("PGPORT");
  if (it == db_env.end()) {
    return {};
  }
  auto port = util::parse_int<int>(it->second, 1, 65535);
  return port ? std::vector<int>{*port} : std::vector<int>{};
}

int64_t LocalDriver::pids_max_for(const InstanceRecord& inst) const {
  if (!inst.untrusted) {
    return m_opts.pids_max;
  }
  const int64_t profile = m_ctx.untrusted.pids_max;
  return m_opts.pids_max > 0 ? std::min(m_opts.pids_max, profile) : profile;
}

void LocalDriver::apply_run_as(const RunAs& as, std::map<std::string, std::string>& vars) {
  if (as.uid < 0) {
    return;
  }
  vars["HOME"] = as.home;
  // The daemon's names ("root") would be wrong; the uid has no passwd entry.
  vars.erase("USER");
  vars.erase("LOGNAME");
}

std::vector<std::string> LocalDriver::standing_warnings(const InstanceRecord& inst) const {
  std::vector<std::string> out;
  if (!inst.limits_warning.empty()) {
    out.push_back(inst.limits_warning);
  }
  if (!m_isolated) {
    out.push_back(::geteuid() != 0
                      ? "apps are not isolated: the server does not run as root, so builds and apps run as its own "
                        "user and can read its files (docs/security.md)"
                      : "apps are not isolated: the local driver's option isolation is \"off\", so builds and apps "
                        "run as root (docs/security.md)");
  }
  return out;
}

void LocalDriver::release_uid(const std::string& env) {
  if (::geteuid() != 0) {
    return;
  }
  auto uid = m_uids->find(env);
  if (!uid || !*uid) {
    return;
  }
  // Anything the environment left running (a daemonised child that dropped its markers).
  auto left = processes_of_uid(**uid);
  if (!left.empty() && !util::terminate_processes(left, m_opts.stop_grace_ms)) {
    spdlog::warn("local driver: processes of {} (uid {}) survived KILL", env, **uid);
  }
  std::vector<std::string> way = ancestors_closed_to_others(m_home);
  way.insert(way.end(), {m_home, util::path_join(m_home, "envs")});
  for (const auto& w : revoke_search_path(way, **uid)) {
    spdlog::warn("local driver: {}", w);
  }
  if (auto r = m_uids->release(env); !r) {
    spdlog::warn("local driver: {}: cannot free its uid: {}", env, r.error().message);
  }
}

Expected<int> LocalDriver::allocate_port() {
  for (int i = 0; i < 50; ++i) {
    IDP_TRY_ASSIGN(int p, util::find_free_app_port()); // a bind: outside the mutex
    std::lock_guard<std::mutex> g(m_mutex);
    if (p != m_ctx.router_port && m_ports.insert(p).second) {
      return p;
    }
  }
  return make_error(ErrorCode::transient, "no free port found");
}

void LocalDriver::release_port(int port) {
  std::lock_guard<std::mutex> g(m_mutex);
  m_ports.erase(port);
}

bool LocalDriver::preview_protected(const std::string& repo, bool wants_public) const {
  if (!m_ctx.previews.protect) {
    return false;
  }
  auto p = m_ctx.previews.protect(repo, wants_public);
  return p ? *p : true;
}

std::optional<RouteTarget> LocalDriver::route_for(const std::string& env, const std::string& repo,
                                                  const InstanceRecord& inst) const {
  RouteTarget r;
  r.env = env;
  // A fork's preview needs a sign-in whatever the server's previews.protect says.
  r.protect = inst.untrusted || preview_protected(repo, inst.public_preview);
  if (inst.kind == "web" && inst.asleep) {
    r.wake = true;
    return r;
  }
  if (inst.kind == "web" && inst.port > 0) {
    r.port = inst.port;
    return r;
  }
  if (inst.kind == "static" && !inst.static_root.empty()) {
    r.static_root = inst.static_root;
    r.spa = inst.spa;
    return r;
  }
  return std::nullopt;
}

ApplyResult LocalDriver::result_for(const std::string& env, const InstanceRecord& inst) const {
  ApplyResult res;
  res.url = inst.kind == "web" || inst.kind == "static" ? url_for(env) : "";
  res.outputs = {{"revision", inst.key},
                 {"revision_id", inst.revision_id},
                 {"commit", inst.commit},
                 {"kind", inst.kind},
                 {"router_port", m_ctx.router_port}};
  if (inst.kind == "web") {
    res.outputs["pid"] = read_app_pid(inst.dir);
    res.outputs["shim_pid"] = inst.shim_pid;
    res.outputs["port"] = inst.port;
    res.outputs["startup_ms"] = inst.startup_ms;
  } else if (inst.kind == "static") {
    res.outputs["root"] = inst.static_root;
  }
  res.warnings = standing_warnings(inst);
  return res;
}

// --- stop ---

void LocalDriver::stop(bool keep_running) {
  stop_retirer();      // revisions not retired yet stay recorded (below, or the next start)
  m_scheduler->stop(); // runs in flight keep going; the next start records how they ended
  if (m_router) {
    unfollow_sessions();
  }
  if (m_router && keep_running) {
    m_router->detach(); // the apps keep serving through it; the next start adopts it
  } else if (m_router) {
    m_router->stop();
  }
  if (keep_running) {
    m_cluster->detach();              // the apps still use it
    m_cgroups.remove_empty_parents(); // only those no running revision holds
    return;
  }
  for (const auto& name : subdirs(util::path_join(m_home, "envs"))) {
    auto lk = m_env_locks.lock(name);
    auto loaded = load_env_state(paths(name).state);
    if (!loaded || !*loaded) {
      continue;
    }
    EnvState s = **loaded;
    if (!s.retiring.empty()) {
      // Replaced revisions still draining: they go now, recorded first as gone.
      std::vector<InstanceRecord> going = std::move(s.retiring);
      s.retiring.clear();
      (void)save_env_state(paths(name).state, s); // best effort: the next start retires them (a no-op)
      for (const auto& r : going) {
        retire(name, s.repo, r, !(s.active && s.active->dir == r.dir));
      }
    }
    if (s.active) {
      InstanceRecord& a = *s.active;
      if (a.kind == "web" && instance_running(a) && !a.stopped_with_server) {
        // Recorded before the app goes: the next start tells this stop from a crash
        // (a crash is a new revision and `degraded`; this is the same revision again).
        a.stopped_with_server = true;
        if (auto r = save_env_state(paths(name).state, s); !r) {
          spdlog::warn("local driver: {}: {}; its restart will look like a crash", name, r.error().message);
        }
      }
      retire(name, s.repo, a, false);
    }
  }
  m_cluster->stop(); // after the apps, so none of them sees its database vanish first
  // The revisions' groups went with them; this home's parents go too, when nothing holds them.
  m_cgroups.remove_empty_parents();
}

// --- plan ---

Expected<void> LocalDriver::plan(const DeploySpec& spec) {
  IDP_TRY(check_env_name(spec.env.name));
  const auto& c = spec.config;
  std::string kind = kind_for(spec);
  if (kind != "none") {
    if (spec.env.repo.empty()) {
      return make_error(ErrorCode::invalid_config, "environment " + util::quote(spec.env.name) + " has no repository");
    }
    if (spec.env.commit.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "environment " + util::quote(spec.env.name) + " has no commit to deploy");
    }
  }
  if (!c.local.build.empty()) {
    if (auto argv = core::split_command_line(c.local.build); !argv) {
      return make_error(ErrorCode::invalid_config, "local.build: " + argv.error().message);
    }
  }
  if (c.public_preview && m_ctx.previews.protect) {
    if (auto p = m_ctx.previews.protect(spec.env.repo, true); !p) {
      auto pos = c.positions.find("public");
      std::string where = pos == c.positions.end() ? ".idp/config.yml"
                                                   : ".idp/config.yml:" + std::to_string(pos->second.first) + ":" +
                                                         std::to_string(pos->second.second);
      return make_error(ErrorCode::invalid_config, where + ": key \"public\": " + p.error().message);
    }
  }
  if (kind == "web") {
    if (c.local.start.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "local.start: the local runtime needs a start command, like \"node server.js\"");
    }
    if (auto argv = core::split_command_line(c.local.start); !argv) {
      return make_error(ErrorCode::invalid_config, "local.start: " + argv.error().message);
    }
    if (c.health_check_path.empty() || c.health_check_path[0] != '/') {
      return make_error(ErrorCode::invalid_config,
                        "health_check_path: expected a path starting with /, got " + util::quote(c.health_check_path));
    }
  }
  if (kind == "static" && c.static_site.dir.empty()) {
    return make_error(ErrorCode::invalid_config, "static.dir: the static component needs the directory to serve");
  }
  if (vector_has(spec.components, "schedule")) {
    if (c.schedule_expression.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "schedule_expression: the schedule component needs one, like \"rate(1 hour)\"");
    }
    if (auto sch = core::Schedule::parse(c.schedule_expression); !sch) {
      return make_error(ErrorCode::invalid_config, "schedule_expression: " + sch.error().message);
    }
    if (c.local.start.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "local.start: the local runtime needs the job's command, like \"node job.js\"");
    }
    if (auto argv = core::split_command_line(c.local.start); !argv) {
      return make_error(ErrorCode::invalid_config, "local.start: " + argv.error().message);
    }
  }
  if (vector_has(spec.components, "database") && !c.database.seed.empty()) {
    if (!safe_relative_path(c.database.seed)) {
      return make_error(ErrorCode::invalid_config,
                        "database.seed: expected a path inside the repository, got " + util::quote(c.database.seed));
    }
    if (spec.env.repo.empty() || spec.env.commit.empty()) {
      return make_error(ErrorCode::invalid_config, "database.seed: the environment has no repository to read it from");
    }
  }
  IDP_TRY(check_secret_references(c.secrets));
  return {};
}

// --- observe / destroy / logs ---

namespace {

// A cgroup counter file's value: "usage_usec N" of cpu.stat, or a file holding one number.
std::optional<double> cgroup_number(const std::string& file, std::string_view key) {
  auto text = util::read_file(file);
  if (!text) {
    return std::nullopt;
  }
  if (key.empty()) {
    auto n = util::parse_int<int64_t>(util::trim(*text), 0, INT64_MAX);
    return n ? std::optional<double>(static_cast<double>(*n)) : std::nullopt;
  }
  for (const auto& line : util::split(*text, '\n')) {
    if (util::starts_with(line, std::string(key) + " ")) {
      auto n = util::parse_int<int64_t>(util::trim(line.substr(key.size() + 1)), 0, INT64_MAX);
      return n ? std::optional<double>(static_cast<double>(*n)) : std::nullopt;
    }
  }
  return std::nullopt;
}

} // namespace

Expected<std::optional<Usage>> LocalDriver::usage(const core::Environment& env) {
  Usage u;
  IDP_TRY_ASSIGN(auto state, load_env_state(paths(env.name).state));
  if (!state) {
    return std::optional<Usage>(u);
  }
  // Asleep: nothing reserved (no process runs; its cgroups went with them).
  u.running = state->active && state->active->kind == "web" && !state->active->asleep;
  std::vector<const InstanceRecord*> instances;
  for (const auto* inst : {state->active ? &*state->active : nullptr, state->pending ? &*state->pending : nullptr}) {
    if (inst) {
      instances.push_back(inst);
    }
  }
  for (const auto& inst : state->retiring) {
    instances.push_back(&inst);
  }
  for (const auto* inst : instances) {
    for (const auto& dir : inst->cgroup_dirs) {
      if (auto usec = cgroup_number(util::path_join(dir, "cpu.stat"), "usage_usec")) {
        u.cpu_seconds[dir] = *usec / 1e6;
        u.measured = true;
      } else if (auto ns = cgroup_number(util::path_join(dir, "cpuacct.usage"), "")) {
        u.cpu_seconds[dir] = *ns / 1e9;
        u.measured = true;
      }
      if (auto mem = cgroup_number(util::path_join(dir, "memory.current"), "")) {
        u.memory_bytes += static_cast<int64_t>(*mem);
      } else if (auto v1 = cgroup_number(util::path_join(dir, "memory.usage_in_bytes"), "")) {
        u.memory_bytes += static_cast<int64_t>(*v1);
      }
    }
  }
  if (state->database) {
    // A cluster that is not running (no environment started it yet) holds nothing to count.
    u.storage_bytes = m_databases->size_of(state->database->name).value_or(0);
  }
  return std::optional<Usage>(u);
}

Expected<Observation> LocalDriver::observe(const core::Environment& env) {
  IDP_TRY(check_env_name(env.name));
  Observation obs;
  auto loaded = load_env_state(paths(env.name).state);
  if (!loaded) {
    obs.health = Health::unknown;
    obs.detail = loaded.error().message;
    return obs;
  }
  if (!*loaded || !(*loaded)->active) {
    obs.health = Health::not_running;
    obs.detail = "not deployed";
    return obs;
  }
  const InstanceRecord& a = *(*loaded)->active;
  obs.status = {{"runtime", "local"},
                {"revision", a.key},
                {"revision_id", a.revision_id},
                {"commit", a.commit},
                {"kind", a.kind},
                {"started_at", a.started_at},
                {"url", a.kind == "web" || a.kind == "static" ? url_for(env.name) : ""}};
  if (const auto& db = (*loaded)->database) {
    obs.status["database"] = {{"name", db->name}, {"port", m_cluster->port()}, {"created", db->created_by}};
    if (m_cluster->pid() == 0) {
      obs.warnings.push_back("PostgreSQL is not running; it is being restarted");
    }
  }
  for (auto& w : standing_warnings(a)) {
    obs.warnings.push_back(std::move(w));
  }
  if (m_router && (a.kind == "web" || a.kind == "static")) {
    if (std::string w = m_router->reload_warning(); !w.empty()) {
      obs.warnings.push_back(std::move(w));
    }
  }
  if (a.kind == "web") {
    obs.status["port"] = a.port;
    obs.status["shim_pid"] = a.shim_pid;
    obs.status["cgroup"] = a.cgroup;
    obs.status["process_limit"] = a.process_limit;
    obs.status["startup_ms"] = a.startup_ms;
    if (!instance_running(a)) {
      obs.health = a.asleep ? Health::asleep : a.stopped_with_server ? Health::stopped : Health::not_running;
      if (a.asleep) {
        obs.status["asleep"] = true;
        obs.detail = "asleep: its first request wakes it";
      } else if (a.stopped_with_server) {
        obs.detail = "stopped with the server";
      } else {
        // One line (it becomes an event's reason): how it ended and the first line of why.
        auto cause = app_cause(env.name, a.key);
        obs.detail =
            common::with_cause(exit_description(a.dir), cause.empty() ? cause : std::vector<std::string>{cause[0]});
      }
      return obs;
    }
    obs.status["pid"] = read_app_pid(a.dir);
    obs.status["uptime_ms"] = wall_now_ms() - a.started_at;
    util::HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(a.port) + a.health_path;
    req.timeout_ms = 3000;
    req.connect_timeout_ms = 1000;
    req.max_body = k_health_body_max;
    auto resp = util::http_request(req);
    if (resp && resp->status >= 200 && resp->status < 400) {
      obs.health = Health::healthy;
      obs.detail = "GET " + a.health_path + " answered HTTP " + std::to_string(resp->status);
    } else {
      obs.health = Health::unhealthy;
      obs.detail =
          resp ? "GET " + a.health_path + " answered HTTP " + std::to_string(resp->status) : resp.error().message;
    }
    return obs;
  }
  if (a.kind == "static") {
    obs.status["root"] = a.static_root;
    bool ok = util::path_exists(util::path_join(a.static_root, "index.html"));
    obs.health = ok ? Health::healthy : Health::unhealthy;
    obs.detail = ok ? "serving files from " + util::quote(a.static_root)
                    : util::quote(a.static_root + "/index.html") + " is missing";
    return obs;
  }
  if (!a.job.is_null()) {
    auto st = m_scheduler->status(env.name);
    if (st.is_null()) {
      obs.health = Health::not_running;
      obs.detail = "the schedule is not running";
      return obs;
    }
    obs.status["schedule"] = st;
    obs.health = Health::healthy;
    obs.detail = st.contains("running")       ? "job run " + util::json_dump(st["running"]["id"]) + " is running"
                 : st.contains("next_run_at") ? "next run at " + st["next_run_at"].get<std::string>()
                                              : "the schedule has no more runs";
    return obs;
  }
  obs.health = Health::healthy;
  obs.detail = "nothing to run on the local runtime";
  return obs;
}

Expected<void> LocalDriver::destroy(const core::Environment& env, Progress& progress) {
  IDP_TRY(check_env_name(env.name));
  auto lk = m_env_locks.lock(env.name);
  m_scheduler->remove(env.name, "stopped: the environment was destroyed");
  progress.step("removing the route");
  Expected<void> routed = {};
  if (m_router) {
    routed = m_router->remove_route(env.name);
  }
  IDP_FAILPOINT_RETURN("local.destroy.route_removed");
  std::string repo = env.repo;
  bool had_database = false;
  if (auto loaded = load_env_state(paths(env.name).state); loaded && *loaded) {
    repo = (*loaded)->repo.empty() ? repo : (*loaded)->repo;
    had_database = (*loaded)->database.has_value();
  }
  progress.step("stopping processes and removing files");
  remove_env_files(env.name);
  IDP_FAILPOINT_RETURN("local.destroy.files_removed");
  // The database goes after the app (nothing reconnects), and also when the records are
  // gone but the cluster runs (a crash between creating it and recording it cannot
  // happen: the record is written first; this covers lost state files).
  if (had_database || m_cluster->pid() > 0) {
    if (had_database) {
      progress.step("dropping the database"); // shown only when there was one to drop
    }
    if (auto r = drop_database(env.name, repo); !r) {
      return Unexpected(r.error().with_context("database"));
    }
  }
  return routed;
}

Expected<LogChunk> LocalDriver::read_logs(const core::Environment& env, const LogQuery& q) {
  IDP_TRY(check_env_name(env.name));
  return common::LogReader(paths(env.name).logs).read(q);
}

} // namespace idp::drivers::local
