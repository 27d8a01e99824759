#include "drivers/local/local_driver.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <deque>
#include <dirent.h>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/command_line.hpp"
#include "core/schedule.hpp"
#include "drivers/common/failure_cause.hpp"
#include "drivers/local/isolation.hpp"
#include "drivers/local/local_secrets.hpp"
#include "util/redact.hpp"
#include "drivers/local/processes.hpp"
#include "drivers/local/shim.hpp"
#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/interactive_process.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

// Output lines searched for the cause of a failure (common::pick_cause_lines): enough to
// reach past a long help text printed after the reason (npm prints ~90 lines).
constexpr size_t k_cause_scan_lines = 200;
constexpr int64_t k_exec_timeout_ms = 60000;
// Health checks read only the status; the body an app sends is cut here (it may be endless).
constexpr size_t k_health_body_max = 64 * 1024;

// Variables of the daemon's environment that apps and builds inherit. Everything else
// (the daemon's tokens and credentials) stays out of them.
const std::vector<std::string>& passthrough_variables() {
  static const std::vector<std::string> k_vars = {
      "PATH",       "HOME",        "USER",          "LOGNAME",      "LANG",         "LC_ALL",
      "LC_CTYPE",   "TZ",          "TMPDIR",        "SHELL",        "http_proxy",   "https_proxy",
      "no_proxy",   "HTTP_PROXY",  "HTTPS_PROXY",   "NO_PROXY",     "SSL_CERT_FILE", "SSL_CERT_DIR"};
  return k_vars;
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

Expected<void> check_env_name(std::string_view name) {
  if (!valid_env_name(name)) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid environment name " + util::quote(name) + ": expected lowercase letters, digits and '-'");
  }
  return {};
}

bool has(const std::vector<std::string>& v, std::string_view x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::string kind_for(const DeploySpec& spec) {
  if (has(spec.components, "web")) {
    return "web";
  }
  if (has(spec.components, "static")) {
    return "static";
  }
  if (has(spec.components, "schedule")) {
    return "job";
  }
  return "none";
}

// A seed path must stay inside the checkout.
bool safe_relative_path(const std::string& p) {
  if (p.empty() || p[0] == '/') {
    return false;
  }
  for (const auto& part : util::split(p, '/')) {
    if (part == "..") {
      return false;
    }
  }
  return true;
}

// What makes two deployments the same for this runtime: equal hash, no restart.
std::string content_hash(const DeploySpec& spec) {
  const auto& c = spec.config;
  nlohmann::json j = {{"commit", spec.env.commit},
                      {"repo", spec.env.repo},
                      {"components", spec.components},
                      {"template_values", spec.template_values},
                      {"health_check_path", c.health_check_path},
                      {"cpu", c.cpu},
                      {"memory", c.memory},
                      {"log_retention_days", c.log_retention_days},
                      {"environment", c.environment},
                      {"secrets", c.secrets},
                      {"local", {{"build", c.local.build}, {"start", c.local.start}}},
                      {"static", {{"dir", c.static_site.dir}, {"spa", c.static_site.spa}}},
                      {"schedule_expression", c.schedule_expression},
                      {"database", {{"seed", c.database.seed}}}};
  return util::sha256_hex(util::json_dump(j)).substr(0, 16);
}


std::string format_secs(int64_t ms) {
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

util::Millis now_ms() { return util::SystemClock().now_ms(); }

std::string self_exe_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "idp";
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return out;
  }
  while (auto* ent = ::readdir(d)) {
    std::string n = ent->d_name;
    if (n != "." && n != ".." && util::is_directory(util::path_join(dir, n))) {
      out.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> process_environment(pid_t pid) {
  std::map<std::string, std::string> out;
  auto s = util::read_file("/proc/" + std::to_string(pid) + "/environ");
  if (!s) {
    return out;
  }
  size_t start = 0;
  while (start < s->size()) {
    size_t end = s->find('\0', start);
    if (end == std::string::npos) {
      end = s->size();
    }
    std::string kv = s->substr(start, end - start);
    auto eq = kv.find('=');
    if (eq != std::string::npos) {
      out[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    start = end + 1;
  }
  return out;
}

// A description of how the app ended, from the shim's exit.json.
std::string exit_description(const std::string& dir) {
  auto text = util::read_file(util::path_join(dir, "exit.json"));
  if (!text) {
    return "the app is not running";
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    return "the app is not running";
  }
  int sig = j.value("signal", 0);
  if (sig != 0) {
    return "the app was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "the app exited with code " + std::to_string(j.value("code", -1));
}

Error git_error(const Error& e) {
  // A missing commit or an invalid repository will not appear by retrying; a failed
  // fetch might (the remote was unreachable).
  ErrorCode code = e.code == ErrorCode::not_found || e.code == ErrorCode::invalid_argument ? ErrorCode::permanent
                   : e.code == ErrorCode::transient                                         ? ErrorCode::transient
                                                                                             : ErrorCode::permanent;
  return Error(code, e.message);
}

} // namespace

namespace {
// One spelling per home ("/x/home", "/x/home/" and a symlink to it are the same home), so
// a restarted daemon recognises its processes whatever path it was given.
std::string canonical_home(const std::string& home) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(home), ec);
  std::string s = ec ? util::absolute_path(home) : p.string();
  while (s.size() > 1 && s.back() == '/') {
    s.pop_back();
  }
  return s;
}
} // namespace

std::string home_id_for(const std::string& home) { return util::sha256_hex(canonical_home(home)).substr(0, 12); }

LocalDriver::LocalDriver(DriverContext ctx, LocalOptions opts)
    : m_ctx(std::move(ctx)), m_opts(std::move(opts)), m_home(canonical_home(m_ctx.home)),
      m_home_id(home_id_for(m_ctx.home)), m_self_exe(m_ctx.self_exe.empty() ? self_exe_path() : m_ctx.self_exe),
      m_cgroups(m_opts.cgroup_root, m_home_id) {
  if (m_ctx.router_port == 0) {
    if (auto p = util::find_free_port()) {
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
  so.self_exe = m_self_exe;
  so.time_scale = m_opts.schedule_time_scale;
  so.clock = m_ctx.clock;
  so.log_max_bytes = m_opts.log_max_bytes;
  so.log_keep = m_opts.log_keep;
  so.stop_grace_ms = m_opts.stop_grace_ms;
  so.job_runs = m_ctx.job_runs;
  m_scheduler = std::make_unique<JobScheduler>(so);
}

LocalDriver::~LocalDriver() {
  m_scheduler->stop();
  if (m_router) {
    m_router->stop();
  }
}

std::string LocalDriver::url_for(const std::string& env) const {
  if (m_ctx.https.on()) {
    return "https://" + env + "." + m_ctx.domain + (m_ctx.https.port == 443 ? "" : ":" + std::to_string(m_ctx.https.port)) + "/";
  }
  return "http://" + env + "." + m_ctx.domain + ":" + std::to_string(m_ctx.router_port) + "/";
}

pid_t LocalDriver::router_pid_for_test() const { return m_router ? m_router->pid() : 0; }

LocalDriver::EnvPaths LocalDriver::paths(const std::string& env) const {
  std::string dir = util::path_join(util::path_join(m_home, "envs"), env);
  return {dir, util::path_join(dir, "state.json"), util::path_join(dir, "logs")};
}

std::mutex& LocalDriver::env_mutex(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mutex);
  auto& m = m_env_mutexes[env];
  if (!m) {
    m = std::make_shared<std::mutex>();
  }
  return *m;
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

namespace {
std::vector<std::string> procs_files_of(const InstanceRecord& inst) {
  std::vector<std::string> out;
  for (const auto& d : inst.cgroup_dirs) {
    out.push_back(util::path_join(d, "cgroup.procs"));
  }
  return out;
}
} // namespace

Expected<LocalDriver::RunAs> LocalDriver::run_as(const std::string& env) {
  if (!m_isolated) {
    return RunAs{};
  }
  auto fail = [&](const Error& e) { return Unexpected(e.with_context("isolation of environment " + util::quote(env))); };
  auto uid = m_uids->acquire(env);
  if (!uid) {
    return fail(uid.error());
  }
  auto p = paths(env);
  RunAs as{static_cast<int>(*uid), static_cast<int>(*uid), util::path_join(p.dir, "home")};
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
  std::lock_guard<std::mutex> g(m_mutex);
  for (int i = 0; i < 50; ++i) {
    IDP_TRY_ASSIGN(int p, util::find_free_port());
    if (p != m_ctx.router_port && !m_ports.count(p)) {
      m_ports.insert(p);
      return p;
    }
  }
  return make_error(ErrorCode::transient, "no free port found");
}

void LocalDriver::release_port(int port) {
  std::lock_guard<std::mutex> g(m_mutex);
  m_ports.erase(port);
}

std::optional<RouteTarget> LocalDriver::route_for(const std::string& env, const InstanceRecord& inst) const {
  RouteTarget r;
  r.env = env;
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
  res.outputs = {{"revision", inst.key}, {"revision_id", inst.revision_id}, {"commit", inst.commit},
                 {"kind", inst.kind}, {"router_port", m_ctx.router_port}};
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

std::vector<std::string> LocalDriver::app_cause(const std::string& env, const std::string& key) const {
  LogQuery q;
  q.tail = k_cause_scan_lines;
  auto chunk = common::LogReader(paths(env).logs).read(q);
  if (!chunk) {
    return {};
  }
  // Only what this start of the revision printed: the lines after its "starting revision"
  // line (the build's and older runs' output say nothing about this exit).
  const std::string marker = "starting revision " + key + " ";
  size_t from = 0;
  for (size_t i = chunk->lines.size(); i-- > 0;) {
    const auto& l = chunk->lines[i];
    if (l.stream == "system" && util::starts_with(l.text, marker)) {
      from = i + 1;
      break;
    }
  }
  std::vector<std::string> out;
  for (size_t i = from; i < chunk->lines.size(); ++i) {
    if (chunk->lines[i].stream != "system") {
      out.push_back(chunk->lines[i].text);
    }
  }
  return common::pick_cause_lines(out);
}

void LocalDriver::remove_revision_dir(const std::string& repo, const std::string& dir) {
  if (!repo.empty()) {
    util::GitMirror mirror(util::path_join(m_home, "git"), repo);
    if (auto r = mirror.remove_worktree(util::path_join(dir, "src")); !r) {
      spdlog::warn("local driver: cannot remove worktree {}: {}", dir, r.error().message);
    }
  }
  (void)util::remove_all(dir);
}

void LocalDriver::retire(const std::string& env, const std::string& repo, const InstanceRecord& inst,
                         bool remove_dir) {
  if (!stop_instance_processes(m_home_id, env, inst, m_opts.stop_grace_ms)) {
    spdlog::warn("local driver: processes of {} revision {} survived KILL", env, inst.key);
  }
  m_cgroups.remove(inst.cgroup_dirs);
  if (inst.port > 0) {
    release_port(inst.port);
  }
  if (remove_dir && !inst.dir.empty()) {
    remove_revision_dir(repo, inst.dir);
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
  (void)util::remove_all(p.dir);
}

// --- start / stop ---

Expected<void> LocalDriver::start(const std::vector<core::Environment>& live) {
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
  std::string envs_dir = util::path_join(m_home, "envs");

  // Environments that are no longer live lose everything (their databases below).
  bool dead_databases = false;
  for (const auto& name : subdirs(envs_dir)) {
    if (!live_names.count(name)) {
      spdlog::info("local driver: removing leftovers of environment {}", name);
      if (auto loaded = load_env_state(paths(name).state); !loaded || (*loaded && (*loaded)->database)) {
        dead_databases = true;
      }
      remove_env_files(name);
    }
  }

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
      (void)save_env_state(p.state, s);
    }
    if (s.active && s.active->kind == "web" && s.active->port > 0) {
      std::lock_guard<std::mutex> g(m_mutex);
      m_ports.insert(s.active->port);
    }
    states[name] = s;
  }

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

  // Revision directories and cgroups other than the active one's.
  std::vector<RouteTarget> routes;
  for (auto& [name, s] : states) {
    auto p = paths(name);
    for (const auto& d : subdirs(p.dir)) {
      std::string full = util::path_join(p.dir, d);
      if (util::starts_with(d, "rev-") && (!s.active || s.active->dir != full)) {
        remove_revision_dir(s.repo, full);
      }
    }
    std::vector<std::string> stale;
    for (const auto& cg : m_cgroups.list(name + ".")) {
      if (!s.active || !has(s.active->cgroup_dirs, cg)) {
        stale.push_back(cg);
      }
    }
    m_cgroups.remove(stale);
    if (s.route) {
      s.route->env = name;
      routes.push_back(*s.route);
    }
  }

  // The cluster runs when a live environment has a database, and is asked to forget the
  // databases of environments that are gone.
  bool live_databases = std::any_of(states.begin(), states.end(), [](const auto& kv) { return kv.second.database; });
  if (m_cluster->initialized() && (live_databases || dead_databases)) {
    if (auto r = m_cluster->ensure_running(); !r) {
      spdlog::warn("local driver: PostgreSQL: {}; environments' databases are unreachable until it runs",
                   r.error().message);
    } else {
      (void)m_databases->harden();
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
  }
  // Isolated environments keep their uids; the path to their directories is granted again
  // (the daemon may have reset the home's mode, which resets its ACL mask).
  if (auto r = m_uids->retain(live_names); !r) {
    spdlog::warn("local driver: {}", r.error().message);
  }
  for (const auto& [name, st] : states) {
    if (auto r = run_as(name); !r) {
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

  RouterConfig rc;
  rc.dir = util::path_join(m_home, "router");
  rc.caddy_binary = m_opts.caddy_binary;
  rc.listen_host = m_ctx.router_listen_host;
  rc.port = m_ctx.router_port;
  rc.domain = m_ctx.domain;
  rc.home_id = m_home_id;
  rc.tls = {m_ctx.https.mode, m_ctx.https.port, m_ctx.https.acme_email, m_ctx.https.ask_url, m_ctx.https.api_host,
            m_ctx.https.api_upstream};
  if (m_router) {
    m_router->stop();
  }
  m_router = std::make_unique<CaddyRouter>(rc);
  return m_router->start(routes);
}

void LocalDriver::stop(bool keep_running) {
  m_scheduler->stop(); // runs in flight keep going; the next start records how they ended
  if (m_router && keep_running) {
    m_router->detach(); // the apps keep serving through it; the next start adopts it
  } else if (m_router) {
    m_router->stop();
  }
  if (keep_running) {
    m_cluster->detach(); // the apps still use it
    return;
  }
  for (const auto& name : subdirs(util::path_join(m_home, "envs"))) {
    std::lock_guard<std::mutex> lk(env_mutex(name));
    auto loaded = load_env_state(paths(name).state);
    if (loaded && *loaded && (*loaded)->active) {
      EnvState s = **loaded;
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
}

// --- plan / apply ---

Expected<void> LocalDriver::plan(const DeploySpec& spec) {
  IDP_TRY(check_env_name(spec.env.name));
  const auto& c = spec.config;
  std::string kind = kind_for(spec);
  if (kind != "none") {
    if (spec.env.repo.empty()) {
      return make_error(ErrorCode::invalid_config, "environment " + util::quote(spec.env.name) + " has no repository");
    }
    if (spec.env.commit.empty()) {
      return make_error(ErrorCode::invalid_config, "environment " + util::quote(spec.env.name) + " has no commit to deploy");
    }
  }
  if (!c.local.build.empty()) {
    if (auto argv = core::split_command_line(c.local.build); !argv) {
      return make_error(ErrorCode::invalid_config, "local.build: " + argv.error().message);
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
  if (has(spec.components, "schedule")) {
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
  if (has(spec.components, "database") && !c.database.seed.empty()) {
    if (!safe_relative_path(c.database.seed)) {
      return make_error(ErrorCode::invalid_config, "database.seed: expected a path inside the repository, got " +
                                                       util::quote(c.database.seed));
    }
    if (spec.env.repo.empty() || spec.env.commit.empty()) {
      return make_error(ErrorCode::invalid_config, "database.seed: the environment has no repository to read it from");
    }
  }
  IDP_TRY(check_secret_references(c.secrets));
  return {};
}

Expected<void> LocalDriver::checkout(const std::string& repo, const InstanceRecord& inst, const RunAs& as,
                                     Progress& progress) {
  std::string marker = util::path_join(inst.dir, "checkout.ok");
  auto open_to_uid = [&]() -> Expected<void> {
    if (as.uid >= 0) {
      // The revision directory stays the daemon's (app.pid, exit.json, build.ok): search
      // only. After the worktree: creating it chmods the directory, which resets the mask.
      IDP_TRY(grant_search_path({inst.dir}, static_cast<uid_t>(as.uid)));
    }
    return {};
  };
  if (util::path_exists(marker)) {
    return open_to_uid();
  }
  progress.step("checking out " + util::short_commit(inst.commit, 12));
  util::GitMirror mirror(util::path_join(m_home, "git"), repo);
  std::string src = util::path_join(inst.dir, "src");
  if (auto r = mirror.add_worktree(inst.commit, src); !r) {
    return Unexpected(git_error(r.error()));
  }
  if (as.uid >= 0) {
    // The checkout is the environment's own: its build writes there. The daemon (root)
    // still removes it on redeploy and destroy.
    IDP_TRY(chown_tree(src, static_cast<uid_t>(as.uid), static_cast<gid_t>(as.gid)));
  }
  IDP_TRY(open_to_uid());
  return util::write_file_atomic(marker, inst.commit + "\n");
}

void LocalDriver::place_revision(const std::string& env, const DeploySpec& spec, InstanceRecord& inst) {
  CgroupLimits limits{spec.config.cpu, spec.config.memory, m_opts.pids_max};
  auto placement = m_cgroups.create(env + "." + inst.key, limits);
  if (!placement) {
    inst.cgroup_dirs.clear();
    inst.cgroup = nullptr;
    inst.limits_warning = "cpu/memory limits not enforced: " + placement.error().message;
    if (m_opts.pids_max > 0) {
      inst.limits_warning += "; neither is the process limit (pids_max)";
    }
    return;
  }
  inst.cgroup_dirs = placement->dirs;
  inst.cgroup = placement->to_json();
  inst.limits_warning.clear();
  if (m_opts.pids_max > 0 && !placement->pids_warning.empty()) {
    inst.limits_warning = "process limit (pids_max " + std::to_string(m_opts.pids_max) +
                          ") not enforced: " + placement->pids_warning;
  }
}

Expected<void> LocalDriver::build(const DeploySpec& spec, const InstanceRecord& inst, const RunAs& as,
                                  common::LogWriter& log, Progress& progress) {
  const std::string& text = spec.config.local.build;
  std::string marker = util::path_join(inst.dir, "build.ok");
  if (text.empty()) {
    return {};
  }
  if (util::path_exists(marker)) {
    (void)log.append("system", "build of revision " + inst.key + " already done; skipped");
    return {};
  }
  IDP_TRY_ASSIGN(auto argv, core::split_command_line(text));
  progress.step("building: " + text);
  (void)log.append("system", "build of revision " + inst.key + ": " + text);
  util::Command cmd;
  cmd.argv = argv;
  cmd.cwd = util::path_join(inst.dir, "src");
  cmd.clear_env = true;
  cmd.env = base_env();
  // One package cache per home: the second build of a repository does not download again.
  // Not for isolated environments: a shared cache is a way into another's build.
  cmd.env["npm_config_cache"] = as.uid >= 0 ? util::path_join(as.home, ".npm") : util::path_join(m_home, "cache/npm");
  apply_run_as(as, cmd.env);
  for (const auto& [k, v] : spec.config.environment) {
    cmd.env[k] = v;
  }
  for (const auto& [k, v] : marker_env(spec.env.name, inst.key)) {
    cmd.env[k] = v;
  }
  std::deque<std::string> last;
  util::RunOptions ro;
  ro.timeout_ms = m_opts.build_timeout_ms;
  ro.cancel = progress.cancel_flag();
  ro.max_capture = 64 * 1024;
  ro.uid = as.uid;
  ro.gid = as.gid;
  ro.cgroup_proc_files = procs_files_of(inst);
  ro.on_line = [&](std::string_view line, bool) {
    (void)log.append("build", line);
    last.emplace_back(line);
    if (last.size() > k_cause_scan_lines) {
      last.pop_front();
    }
  };
  auto r = util::run(cmd, ro);
  if (!r) {
    return make_error(ErrorCode::permanent, "local.build: " + r.error().message);
  }
  // The lines that say why, not the last ten (often a help text after the reason).
  auto cause = common::pick_cause_lines(std::vector<std::string>(last.begin(), last.end()));
  if (r->cancelled) {
    return make_error(ErrorCode::cancelled, "build cancelled");
  }
  if (r->timed_out) {
    return make_error(ErrorCode::timeout, common::with_cause("local.build did not finish within " +
                                                                 format_secs(m_opts.build_timeout_ms), cause));
  }
  if (!r->ok()) {
    std::string how = r->signal ? "was killed by signal " + std::to_string(r->signal)
                                : "failed with exit code " + std::to_string(r->exit_code);
    (void)log.append("system", "build " + how);
    return make_error(ErrorCode::permanent, common::with_cause("local.build " + how, cause));
  }
  (void)log.append("system", "build finished");
  return util::write_file_atomic(marker, "ok\n");
}

Expected<void> LocalDriver::wait_healthy(const InstanceRecord& inst, const std::string& env, Progress& progress) {
  int64_t t0 = util::steady_ms();
  int64_t deadline = t0 + m_opts.health_timeout_ms;
  std::string url = "http://127.0.0.1:" + std::to_string(inst.port) + inst.health_path;
  std::string last = "no answer yet";
  std::string exit_file = util::path_join(inst.dir, "exit.json");
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "deploy cancelled while waiting for the health check");
    }
    if (util::path_exists(exit_file) || !shim_alive(inst)) {
      std::string what = util::path_exists(exit_file) ? exit_description(inst.dir) : "the app's shim exited unexpectedly";
      return make_error(ErrorCode::permanent, common::with_cause(what + " before its health check on " +
                                                                     inst.health_path + " passed",
                                                                 app_cause(env, inst.key)));
    }
    util::HttpRequest req;
    req.url = url;
    req.timeout_ms = 2000;
    req.connect_timeout_ms = 500;
    req.max_body = k_health_body_max;
    auto resp = util::http_request(req);
    if (resp && resp->status >= 200 && resp->status < 400) {
      return {};
    }
    std::string answer = resp ? "GET " + inst.health_path + " answered HTTP " + std::to_string(resp->status) : resp.error().message;
    if (answer != last) {
      // What `idp create` shows while it waits (and when it gives up waiting).
      progress.step("waiting for GET " + inst.health_path + " to answer 2xx or 3xx; last answer: " + answer);
      last = answer;
    }
    int64_t now = util::steady_ms();
    if (now >= deadline) {
      // The answer is the reason; what the app printed last follows on its own lines.
      std::string msg = "health check on " + inst.health_path + " did not pass within " +
                        format_secs(m_opts.health_timeout_ms) + ": " + last;
      auto output = app_cause(env, inst.key);
      if (!output.empty()) {
        msg += "\nthe app printed: " + util::join(output, "\n");
      }
      return make_error(ErrorCode::permanent, msg);
    }
    // Fast at first: the time to healthy is what users wait for on every push.
    int64_t elapsed = now - t0;
    int interval = elapsed < 1000 ? 5 : elapsed < 5000 ? 25 : 50;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval));
  }
}

Expected<void> LocalDriver::start_web(const DeploySpec& spec, const std::map<std::string, std::string>& secrets,
                                      const std::map<std::string, std::string>& db_env, const RunAs& as,
                                      InstanceRecord& inst, EnvState& state, common::LogWriter& log,
                                      Progress& progress) {
  const auto& c = spec.config;
  const std::string& env = spec.env.name;
  auto p = paths(env);
  std::string src = util::path_join(inst.dir, "src");
  IDP_TRY_ASSIGN(auto argv, core::split_command_line(c.local.start));
  // Fail with a clear message rather than with an app that never comes up.
  const std::string& prog = argv[0];
  if (prog.find('/') == std::string::npos) {
    if (!util::find_executable(prog)) {
      return make_error(ErrorCode::permanent, "local.start: program " + util::quote(prog) + " not found on PATH");
    }
  } else if (::access((prog[0] == '/' ? prog : util::path_join(src, prog)).c_str(), X_OK) != 0) {
    return make_error(ErrorCode::permanent, "local.start: " + util::quote(prog) + " is not an executable file");
  }

  std::vector<std::string> procs_files = procs_files_of(inst); // place_revision() made them
  IDP_TRY_ASSIGN(inst.port, allocate_port());
  state.pending = inst;
  IDP_TRY(save_env_state(p.state, state));

  std::map<std::string, std::string> app_env = base_env();
  // The database's variables first: the config's environment map wins, as on AWS.
  for (const auto& [k, v] : db_env) {
    app_env[k] = v;
  }
  for (const auto& [k, v] : c.environment) {
    app_env[k] = v;
  }
  for (const auto& [k, v] : secrets) {
    app_env[k] = v;
  }
  app_env["PORT"] = std::to_string(inst.port);
  apply_run_as(as, app_env);
  for (const auto& [k, v] : marker_env(env, inst.key)) {
    app_env[k] = v;
  }
  ShimArgs sa;
  sa.dir = inst.dir;
  sa.log_dir = p.logs;
  sa.max_bytes = m_opts.log_max_bytes;
  sa.keep = m_opts.log_keep;
  sa.retention_days = c.log_retention_days;
  sa.argv = argv;
  sa.uid = as.uid;
  sa.gid = as.gid;
  util::Command cmd;
  cmd.argv = {m_self_exe};
  for (auto& a : shim_command_arguments(sa)) {
    cmd.argv.push_back(std::move(a));
  }
  cmd.cwd = src;
  cmd.clear_env = true;
  cmd.env = std::move(app_env);
  util::SpawnOptions so;
  so.detach = true;
  so.new_session = true;
  so.cgroup_proc_files = procs_files;

  progress.step("starting: " + c.local.start);
  (void)log.append("system", "starting revision " + inst.key + " (" + util::short_commit(inst.commit, 12) + "): " + c.local.start +
                                 " on port " + std::to_string(inst.port));
  (void)util::remove_all(util::path_join(inst.dir, "exit.json"));
  (void)util::remove_all(util::path_join(inst.dir, "app.pid"));
  int64_t t0 = util::steady_ms();
  auto pid = util::spawn(cmd, so);
  if (!pid) {
    return make_error(ErrorCode::permanent, "cannot start the shim: " + pid.error().message);
  }
  inst.shim_pid = *pid;
  inst.shim_start_time = util::process_start_time(*pid).value_or(0);
  inst.started_at = now_ms();
  state.pending = inst;
  IDP_TRY(save_env_state(p.state, state));

  progress.step("waiting for GET " + inst.health_path);
  IDP_TRY(wait_healthy(inst, env, progress));
  inst.startup_ms = util::steady_ms() - t0;
  (void)log.append("system", "revision " + inst.key + " is healthy after " + std::to_string(inst.startup_ms) + " ms");
  return {};
}

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
  const std::string& env = spec.env.name;
  std::lock_guard<std::mutex> lk(env_mutex(env));
  auto p = paths(env);
  IDP_TRY(util::ensure_dir(p.logs));
  auto log = env_log(env, spec.config.log_retention_days);

  EnvState state;
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
  const std::string kind = kind_for(spec);
  const std::string hash = content_hash(spec);

  std::vector<std::string> warnings;
  for (const auto& comp : spec.components) {
    if (comp != "web" && comp != "static" && comp != "database" && comp != "schedule") {
      warnings.push_back("component " + util::quote(comp) + " is not handled by the local runtime; ignored");
    }
  }
  const bool wants_database = has(spec.components, "database");
  const bool wants_schedule = has(spec.components, "schedule");
  // Extra outputs: the database (never its password) and the schedule.
  auto finish = [&](ApplyResult res, const InstanceRecord& a) {
    if (state.database) {
      const DatabaseRecord& db = *state.database;
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
      auto st = m_scheduler->status(env);
      if (st.is_object() && st.contains("next_run_at")) {
        res.outputs["next_run_at"] = st["next_run_at"]; // kept current by observe()'s "schedule"
      }
    }
    res.warnings.insert(res.warnings.end(), warnings.begin(), warnings.end());
    return res;
  };

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
      auto route = route_for(env, a);
      if (route) {
        if (!state.route || !(*state.route == *route)) {
          state.route = route;
          IDP_TRY(save_env_state(p.state, state));
        }
        IDP_TRY(m_router->set_route(*route));
      }
      if (wants_database) {
        IDP_TRY(m_cluster->ensure_running()); // supervised anyway; a deploy waits for it
      }
      if (!a.job.is_null() && !m_scheduler->has(env)) {
        IDP_TRY(register_job(env, state, a));
      }
      progress.revision_status(core::RevisionStatus::serving, "revision " + a.key + " already serving");
      ApplyResult res = result_for(env, a);
      if (auto s = resolve_secrets(spec.config.secrets, spec.env.repo, m_ctx.secrets)) {
        res.warnings.insert(res.warnings.end(), s->warnings.begin(), s->warnings.end());
      }
      return finish(res, a);
    }
  }

  IDP_TRY_ASSIGN(ResolvedSecrets secrets, resolve_secrets(spec.config.secrets, spec.env.repo, m_ctx.secrets));
  warnings.insert(warnings.end(), secrets.warnings.begin(), secrets.warnings.end());

  InstanceRecord inst;
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
    if (state.active && state.active->key == inst.key) {
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
  inst.kind = kind;
  inst.health_path = spec.config.health_check_path;
  if (wants_schedule) {
    IDP_TRY_ASSIGN(auto job_argv, core::split_command_line(spec.config.local.start));
    inst.job = {{"expression", spec.config.schedule_expression},
                {"argv", job_argv},
                {"environment", spec.config.environment},
                {"secrets", spec.config.secrets},
                {"retention_days", spec.config.log_retention_days}};
  }
  const bool shares_active_dir = state.active && state.active->dir == inst.dir;
  state.pending = inst;
  IDP_TRY(save_env_state(p.state, state));

  auto abandon = [&](const Error& e) -> Unexpected {
    (void)log->append("system", "revision " + inst.key + " failed: " + util::split(e.message, '\n')[0]);
    retire(env, state.repo, inst, !shares_active_dir);
    state.pending.reset();
    (void)save_env_state(p.state, state);
    progress.revision_status(core::RevisionStatus::failed, e.message);
    return Unexpected(e);
  };
  auto cancelled = [&] { return Error(ErrorCode::cancelled, "deploy of revision " + inst.key + " cancelled"); };
  // Failpoints of the crash campaign (docs/hacking.md): one after each step of a deploy.
  auto crash_point = [&](const char* name) -> std::optional<Unexpected> {
    if (IDP_FAILPOINT(name)) {
      return abandon(util::failpoint_error(name));
    }
    return std::nullopt;
  };
  if (auto f = crash_point("local.apply.pending_recorded")) {
    return *f;
  }

  (void)log->append("system", "deploying revision " + inst.key + " (commit " + util::short_commit(inst.commit, 12) + ")");
  auto as = run_as(env);
  if (!as) {
    return abandon(as.error());
  }
  const bool has_seed = wants_database && !spec.config.database.seed.empty();
  if (kind != "none" || has_seed) {
    progress.revision_status(core::RevisionStatus::building, "checking out " + util::short_commit(inst.commit, 12));
    if (auto r = checkout(spec.env.repo, inst, *as, progress); !r) {
      return abandon(r.error());
    }
    if (auto f = crash_point("local.apply.checked_out")) {
      return *f;
    }
    if (progress.cancelled()) {
      return abandon(cancelled());
    }
  }
  // The database before the build, once the seed can be read from the checkout.
  std::map<std::string, std::string> db_env;
  if (wants_database) {
    if (auto r = ensure_database(spec, state, inst, *log, progress); !r) {
      return abandon(r.error().with_context("database"));
    }
    auto vars = database_env(state);
    if (!vars) {
      return abandon(vars.error().with_context("database"));
    }
    db_env = std::move(*vars);
    if (auto f = crash_point("local.apply.database_ready")) {
      return *f;
    }
    if (progress.cancelled()) {
      return abandon(cancelled());
    }
  }
  if (kind != "none") {
    // The build runs in the revision's cgroup already (pids.max bounds a fork bomb).
    place_revision(env, spec, inst);
    state.pending = inst;
    if (auto r = save_env_state(p.state, state); !r) {
      return abandon(r.error());
    }
    if (auto r = build(spec, inst, *as, *log, progress); !r) {
      return abandon(r.error());
    }
    if (auto f = crash_point("local.apply.built")) {
      return *f;
    }
    if (progress.cancelled()) {
      return abandon(cancelled());
    }
  }
  if (kind == "web") {
    progress.revision_status(core::RevisionStatus::starting, "starting " + spec.config.local.start);
    if (auto r = start_web(spec, secrets.env, db_env, *as, inst, state, *log, progress); !r) {
      return abandon(r.error());
    }
    if (auto f = crash_point("local.apply.started")) {
      return *f;
    }
  } else if (kind == "static") {
    inst.static_root = util::path_join(util::path_join(inst.dir, "src"), spec.config.static_site.dir);
    inst.spa = spec.config.static_site.spa;
    if (!util::path_exists(util::path_join(inst.static_root, "index.html"))) {
      return abandon(Error(ErrorCode::permanent, "static.dir " + util::quote(spec.config.static_site.dir) +
                                                     " has no index.html after the build"));
    }
  }
  if (progress.cancelled()) {
    return abandon(cancelled());
  }

  // Switch: route first (the old revision serves until Caddy has the new upstream), then
  // the record, then the old revision goes.
  auto route = route_for(env, inst);
  std::optional<RouteTarget> old_route = state.route;
  if (route) {
    if (auto r = m_router->set_route(*route); !r) {
      return abandon(r.error());
    }
  } else if (auto r = m_router->remove_route(env); !r) {
    return abandon(r.error());
  }
  if (auto f = crash_point("local.apply.routed")) {
    return *f;
  }
  std::optional<InstanceRecord> old = state.active;
  state.active = inst;
  state.pending.reset();
  state.route = route;
  if (auto r = save_env_state(p.state, state); !r) {
    if (old_route) {
      (void)m_router->set_route(*old_route);
    }
    state.active = old;
    state.route = old_route;
    state.pending = inst;
    return abandon(r.error());
  }
  progress.revision_status(core::RevisionStatus::serving, "serving at " + result_for(env, inst).url);
  (void)log->append("system", "revision " + inst.key + " is serving");
  IDP_FAILPOINT_RETURN("local.apply.switched"); // the new revision serves; the old one still runs

  if (old && old->dir != inst.dir) {
    if (old->port > 0 && m_opts.drain_ms > 0) {
      // Requests Caddy's previous config had already sent to the old revision finish
      // after set_route() returned; stopping it at once would fail them (502).
      progress.step("draining revision " + old->key);
      std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.drain_ms));
    }
    progress.step("stopping revision " + old->key);
    retire(env, state.repo, *old, true);
    (void)log->append("system", "stopped revision " + old->key);
    IDP_FAILPOINT_RETURN("local.apply.old_retired");
  }
  if (wants_schedule) {
    if (auto r = register_job(env, state, inst); !r) {
      return Unexpected(r.error()); // plan() checked the expression; this is unexpected
    }
  } else if (m_scheduler->has(env)) {
    m_scheduler->remove(env, "the environment's template has no schedule any more");
  }
  return finish(result_for(env, inst), inst);
}

// --- database and schedule components ---

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
  {
    std::lock_guard<std::mutex> g(m_mutex);
    if (!m_hardened) {
      IDP_TRY(m_databases->harden());
      m_hardened = true;
    }
  }
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
        return make_error(ErrorCode::permanent, "database.seed " + util::quote(seed_path) + ": no such file at commit " +
                                                    util::short_commit(inst.commit, 12));
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
  IDP_TRY_ASSIGN(RunAs as, run_as(env));
  job.uid = as.uid;
  job.gid = as.gid;
  job.cgroup_proc_files = procs_files_of(inst);
  std::optional<DatabaseRecord> db = state.database;
  auto config_env = j.value("environment", std::map<std::string, std::string>{});
  auto secret_refs = j.value("secrets", std::map<std::string, std::string>{});
  std::string key = inst.key;
  std::string repo = state.repo;
  job.environment = [this, env, key, db, config_env, secret_refs, repo, as]() -> Expected<std::map<std::string, std::string>> {
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

// --- observe / destroy / logs / exec ---

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
  obs.status = {{"runtime", "local"},  {"revision", a.key},  {"revision_id", a.revision_id},
                {"commit", a.commit},  {"kind", a.kind},    {"started_at", a.started_at},
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
    obs.status["startup_ms"] = a.startup_ms;
    if (!instance_running(a)) {
      obs.health = a.stopped_with_server ? Health::stopped : Health::not_running;
      if (a.stopped_with_server) {
        obs.detail = "stopped with the server";
      } else {
        // One line (it becomes an event's reason): how it ended and the first line of why.
        auto cause = app_cause(env.name, a.key);
        obs.detail = common::with_cause(exit_description(a.dir),
                                        cause.empty() ? cause : std::vector<std::string>{cause[0]});
      }
      return obs;
    }
    obs.status["pid"] = read_app_pid(a.dir);
    obs.status["uptime_ms"] = now_ms() - a.started_at;
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
      obs.detail = resp ? "GET " + a.health_path + " answered HTTP " + std::to_string(resp->status) : resp.error().message;
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
    obs.detail = st.contains("running") ? "job run " + util::json_dump(st["running"]["id"]) + " is running"
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
  std::lock_guard<std::mutex> lk(env_mutex(env.name));
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

Expected<LocalDriver::ExecTarget> LocalDriver::exec_command(const core::Environment& env,
                                                            const std::vector<std::string>& argv) {
  IDP_TRY(check_env_name(env.name));
  if (argv.empty()) {
    return make_error(ErrorCode::invalid_argument, "exec needs a command");
  }
  auto loaded = load_env_state(paths(env.name).state);
  if (!loaded) {
    return Unexpected(loaded.error());
  }
  if (!*loaded || !(*loaded)->active) {
    return make_error(ErrorCode::not_found, "environment " + util::quote(env.name) + " is not deployed");
  }
  const InstanceRecord& a = *(*loaded)->active;
  IDP_TRY_ASSIGN(RunAs as, run_as(env.name));
  ExecTarget target;
  target.uid = as.uid;
  target.gid = as.gid;
  target.cgroup_procs = procs_files_of(a); // the revision's pids.max covers exec sessions too
  util::Command& cmd = target.cmd;
  cmd.argv = argv;
  cmd.cwd = util::path_join(a.dir, "src");
  cmd.clear_env = true;
  // The app's own environment (config, secrets, PORT, markers), like `docker exec`.
  pid_t app = read_app_pid(a.dir);
  if (app > 0 && instance_running(a)) {
    cmd.env = process_environment(app);
  } else {
    // No app process to copy from (a job, or the app is down): what a run would get.
    cmd.env = base_env();
    apply_run_as(as, cmd.env);
    IDP_TRY_ASSIGN(auto db_env, database_env(**loaded));
    cmd.env.insert(db_env.begin(), db_env.end());
    if (a.job.is_object() && a.job.contains("environment")) {
      for (const auto& [k, v] : a.job["environment"].get<std::map<std::string, std::string>>()) {
        cmd.env[k] = v;
      }
    }
  }
  for (const auto& [k, v] : marker_env(env.name, a.key)) {
    cmd.env[k] = v;
  }
  return target;
}

Expected<nlohmann::json> LocalDriver::exec(const core::Environment& env, const std::vector<std::string>& argv) {
  IDP_TRY_ASSIGN(ExecTarget t, exec_command(env, argv));
  util::RunOptions ro;
  ro.timeout_ms = k_exec_timeout_ms;
  ro.max_capture = 1024 * 1024;
  ro.uid = t.uid;
  ro.gid = t.gid;
  ro.cgroup_proc_files = t.cgroup_procs;
  IDP_TRY_ASSIGN(auto r, util::run(t.cmd, ro));
  return nlohmann::json{{"exit_code", r.exit_code}, {"signal", r.signal}, {"timed_out", r.timed_out},
                        {"stdout", r.out},         {"stderr", r.err}};
}

namespace {

// An exec session's command on this machine: a process group of our own, on pipes or a
// pseudo-terminal (util::InteractiveProcess).
class LocalExecProcess : public ExecProcess {
public:
  explicit LocalExecProcess(std::unique_ptr<util::InteractiveProcess> p) : m_p(std::move(p)) {}
  std::vector<std::pair<std::string, std::string>> read(int64_t timeout_ms) override {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& c : m_p->read(timeout_ms)) {
      out.emplace_back(c.is_stderr ? "stderr" : "stdout", std::move(c.data));
    }
    return out;
  }
  bool output_done() const override { return m_p->output_done(); }
  Expected<void> write_input(std::string_view data, int64_t timeout_ms) override {
    return m_p->write_input(data, timeout_ms);
  }
  void close_input() override { m_p->close_input(); }
  Expected<void> resize(unsigned short rows, unsigned short cols) override { return m_p->resize(rows, cols); }
  void signal(int sig) override { m_p->signal_group(sig); }
  std::optional<std::pair<int, int>> poll_exit() override {
    auto s = m_p->poll_exit();
    if (!s) {
      return std::nullopt;
    }
    return std::make_pair(s->exit_code, s->signal);
  }

private:
  std::unique_ptr<util::InteractiveProcess> m_p;
};

} // namespace

Expected<std::unique_ptr<ExecProcess>> LocalDriver::start_exec(const core::Environment& env, const ExecRequest& req) {
  IDP_TRY_ASSIGN(ExecTarget t, exec_command(env, req.argv));
  util::Command& cmd = t.cmd;
  if (req.tty && !cmd.env.count("TERM")) {
    cmd.env["TERM"] = "xterm-256color"; // what the client's terminal most likely speaks
  }
  util::InteractiveOptions io;
  io.uid = t.uid;
  io.gid = t.gid;
  io.cgroup_proc_files = t.cgroup_procs;
  io.tty = req.tty;
  io.rows = req.rows;
  io.cols = req.cols;
  auto p = util::InteractiveProcess::start(cmd, io);
  if (!p) {
    return Unexpected(p.error());
  }
  return std::unique_ptr<ExecProcess>(std::make_unique<LocalExecProcess>(std::move(*p)));
}

} // namespace idp::drivers::local
