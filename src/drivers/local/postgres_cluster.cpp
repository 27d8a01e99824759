#include "drivers/local/postgres_cluster.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "drivers/local/search_access.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

constexpr const char* k_default_user = "postgres";
constexpr const char* k_created_user = "idp-postgres";
constexpr int64_t k_log_rotate_bytes = 10 * 1024 * 1024;
constexpr int64_t k_supervise_interval_ms = 1000;
constexpr int64_t k_max_backoff_ms = 30000;

struct UserInfo {
  uid_t uid;
  gid_t gid;
};

std::optional<UserInfo> lookup_user(const std::string& name) {
  struct passwd pw {};
  struct passwd* out = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out) != 0 || !out) {
    return std::nullopt;
  }
  return UserInfo{out->pw_uid, out->pw_gid};
}

std::string user_name_of(uid_t uid) {
  struct passwd pw {};
  struct passwd* out = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) != 0 || !out) {
    return std::to_string(uid);
  }
  return out->pw_name;
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// Major version from ".../postgresql/<v>/bin", 0 when the path has none.
int version_of_bin_dir(const std::string& dir) {
  auto parts = util::split(dir, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i] == "postgresql") {
      return util::parse_int<int>(parts[i + 1], 1, 999).value_or(0);
    }
  }
  return 0;
}

Expected<void> chown_path(const std::string& path, int uid, int gid) {
  if (uid < 0) {
    return {};
  }
  if (::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
    return make_error(ErrorCode::io_error,
                      "cannot give " + util::quote(path) + " to the cluster's user: " + std::strerror(errno));
  }
  return {};
}

} // namespace

Expected<std::string> find_postgres_bin_dir(const std::string& configured) {
  if (!configured.empty()) {
    if (::access(util::path_join(configured, "postgres").c_str(), X_OK) != 0) {
      return make_error(ErrorCode::invalid_config,
                        "driver \"local\": option \"postgres_bin_dir\": no postgres binary in " +
                            util::quote(configured));
    }
    return configured;
  }
  int best = 0;
  std::string best_dir;
  if (DIR* d = ::opendir("/usr/lib/postgresql")) {
    while (auto* ent = ::readdir(d)) {
      std::string bin = std::string("/usr/lib/postgresql/") + ent->d_name + "/bin";
      int v = util::parse_int<int>(ent->d_name, 1, 999).value_or(0);
      if (v > best && ::access((bin + "/postgres").c_str(), X_OK) == 0 &&
          ::access((bin + "/initdb").c_str(), X_OK) == 0) {
        best = v;
        best_dir = bin;
      }
    }
    ::closedir(d);
  }
  if (!best_dir.empty()) {
    return best_dir;
  }
  if (util::find_executable("pg_config")) {
    util::Command c;
    c.argv = {"pg_config", "--bindir"};
    if (auto r = util::run(c); r && r->ok()) {
      std::string dir = util::trim(r->out);
      if (::access(util::path_join(dir, "initdb").c_str(), X_OK) == 0) {
        return dir;
      }
    }
  }
  if (auto p = util::find_executable("postgres")) {
    std::string dir = std::filesystem::path(*p).parent_path().string();
    if (::access(util::path_join(dir, "initdb").c_str(), X_OK) == 0) {
      return dir;
    }
  }
  return make_error(ErrorCode::permanent, "PostgreSQL is not installed (no initdb/postgres found under "
                                          "/usr/lib/postgresql, by pg_config or on PATH); install postgresql");
}

PostgresCluster::PostgresCluster(ClusterOptions opts) : m_opts(std::move(opts)) {}

PostgresCluster::~PostgresCluster() { detach(); }

bool PostgresCluster::initialized() const { return util::path_exists(util::path_join(data_dir(), "PG_VERSION")); }

std::string PostgresCluster::data_dir() const { return util::path_join(m_opts.dir, "data"); }
std::string PostgresCluster::socket_dir() const { return util::path_join(m_opts.dir, "run"); }
std::string PostgresCluster::server_log() const { return util::path_join(m_opts.state_dir, "server.log"); }

int PostgresCluster::port() const { return m_port.load(); }
pid_t PostgresCluster::pid() const { return alive() ? m_pid.load() : 0; }
int PostgresCluster::restarts() const { return m_restarts.load(); }
int64_t PostgresCluster::init_ms() const { return m_init_ms.load(); }
int64_t PostgresCluster::start_ms() const { return m_start_ms.load(); }

std::string PostgresCluster::log_tail() const {
  auto text = util::read_file(server_log());
  return text ? util::trim(util::tail_lines(*text, 8)) : "";
}

Expected<void> PostgresCluster::resolve_user_locked() {
  if (::geteuid() != 0) {
    m_uid = -1;
    m_gid = -1;
    m_user = user_name_of(::geteuid());
    return {};
  }
  std::string name = m_opts.user;
  if (name.empty()) {
    name = lookup_user(k_default_user) ? k_default_user : k_created_user;
  }
  auto info = lookup_user(name);
  if (!info && name == k_created_user) {
    util::Command c;
    c.argv = {"useradd", "--system",          "--user-group", "--no-create-home",       "--home-dir", "/nonexistent",
              "--shell", "/usr/sbin/nologin", "--comment",    "idp managed PostgreSQL", name};
    auto r = util::run_checked(c);
    if (!r) {
      return make_error(ErrorCode::permanent,
                        "cannot create the system user " + util::quote(name) + " for PostgreSQL: " + r.error().message);
    }
    spdlog::info("local driver: created system user {} for PostgreSQL", name);
    info = lookup_user(name);
  }
  if (!info) {
    return make_error(ErrorCode::invalid_config,
                      "driver \"local\": option \"postgres_user\": no such user " + util::quote(name));
  }
  if (info->uid == 0) {
    return make_error(ErrorCode::invalid_config,
                      "driver \"local\": option \"postgres_user\": PostgreSQL cannot run as root (user " +
                          util::quote(name) + ")");
  }
  m_user = name;
  m_uid = static_cast<int>(info->uid);
  m_gid = static_cast<int>(info->gid);
  return {};
}

Expected<void> PostgresCluster::resolve_binaries_locked() {
  std::string configured = m_opts.bin_dir;
  // A cluster stays with the binaries that created it (a data directory belongs to one
  // major version).
  if (configured.empty()) {
    if (auto text = util::read_file(util::path_join(m_opts.state_dir, "cluster.json"))) {
      auto j = nlohmann::json::parse(*text, nullptr, false);
      if (j.is_object() && j.contains("bin_dir") && initialized()) {
        std::string saved = j.value("bin_dir", "");
        if (::access(util::path_join(saved, "postgres").c_str(), X_OK) == 0) {
          configured = saved;
        }
      }
    }
  }
  IDP_TRY_ASSIGN(m_bin, find_postgres_bin_dir(configured));
  if (initialized()) {
    auto v = util::read_file(util::path_join(data_dir(), "PG_VERSION"));
    int data_version = v ? util::parse_int<int>(util::trim(*v), 1, 999).value_or(0) : 0;
    int bin_version = version_of_bin_dir(m_bin);
    if (data_version > 0 && bin_version > 0 && data_version != bin_version) {
      return make_error(ErrorCode::permanent, "the cluster in " + util::quote(data_dir()) +
                                                  " was created by PostgreSQL " + std::to_string(data_version) +
                                                  ", but the binaries in " + util::quote(m_bin) + " are version " +
                                                  std::to_string(bin_version));
    }
  }
  return {};
}

Expected<void> PostgresCluster::prepare_locked() {
  if (m_prepared) {
    return {};
  }
  IDP_TRY(util::ensure_dir(m_opts.state_dir, 0700));
  IDP_TRY(resolve_user_locked());
  IDP_TRY(resolve_binaries_locked());

  // The port is part of every environment's DATABASE_URL: chosen once, then kept.
  std::string meta_path = util::path_join(m_opts.state_dir, "cluster.json");
  nlohmann::json meta = nlohmann::json::object();
  if (auto text = util::read_file(meta_path)) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object()) {
      meta = j;
    }
  }
  m_port = meta.value("port", 0);
  if (m_port <= 0) {
    IDP_TRY_ASSIGN(m_port, util::find_free_app_port());
  }
  meta["port"] = m_port.load();
  meta["bin_dir"] = m_bin;
  meta["user"] = m_user;
  IDP_TRY(util::write_file_atomic(meta_path, util::json_dump(meta, 2) + "\n", 0600));

  IDP_TRY(util::ensure_dir(m_opts.dir, 0700));
  IDP_TRY(chown_path(m_opts.dir, m_uid, m_gid));
  IDP_TRY(util::ensure_dir(socket_dir(), 0700));
  IDP_TRY(chown_path(socket_dir(), m_uid, m_gid));
  if (m_uid >= 0) {
    IDP_TRY_ASSIGN(std::string note, grant_search_permission(m_opts.home, static_cast<uid_t>(m_uid)));
    if (!note.empty()) {
      spdlog::warn("local driver: {}", note);
    }
    IDP_TRY(check_reachable_by(m_opts.dir, static_cast<uid_t>(m_uid), static_cast<gid_t>(m_gid), m_user));
  }
  if (!initialized()) {
    IDP_TRY(init_cluster_locked());
  }
  m_prepared = true;
  return {};
}

Expected<void> PostgresCluster::init_cluster_locked() {
  // A half-made data directory (initdb interrupted) is started over.
  (void)util::remove_all(data_dir());
  int64_t t0 = util::steady_ms();
  util::Command c;
  c.argv = {util::path_join(m_bin, "initdb"), "-D", data_dir(), "-U",         k_superuser,        "--auth-local=peer",
            "--auth-host=scram-sha-256",      "-E", "UTF8",     "--locale=C", "--no-instructions"};
  c.cwd = m_opts.dir;
  c.clear_env = true;
  c.env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C"}, {"TZ", "UTC"}};
  util::RunOptions o;
  o.uid = m_uid;
  o.gid = m_gid;
  o.timeout_ms = 300000;
  o.merge_stderr = true;
  auto r = util::run(c, o);
  if (!r || !r->ok()) {
    std::string why = r ? util::trim(util::tail_lines(r->out, 6)) : r.error().message;
    (void)util::remove_all(data_dir());
    return make_error(ErrorCode::permanent, "initdb failed: " + why);
  }
  m_init_ms = util::steady_ms() - t0;
  spdlog::info("local driver: PostgreSQL cluster created in {} (initdb: {} ms, user {})", m_opts.dir, m_init_ms,
               m_user);
  return {};
}

Expected<void> PostgresCluster::write_access_files_locked() {
  std::string me = user_name_of(::geteuid());
  std::string hba = std::string("# Written by idp serve at every start; edits are lost.\n"
                                "# The superuser only through the unix socket, as the daemon's OS user.\n"
                                "local   all       ") +
                    k_superuser + "       peer map=idp\n" +
                    "local   all       all       reject\n"
                    "host    all       " +
                    k_superuser + "       127.0.0.1/32   reject\n" +
                    "# Environment roles: over TCP from this machine, only to their own database.\n"
                    "host    sameuser  all       127.0.0.1/32   scram-sha-256\n"
                    "host    all       all       0.0.0.0/0      reject\n"
                    "host    all       all       ::/0           reject\n";
  std::string ident = "# Written by idp serve at every start.\nidp   " + me + "   " + k_superuser + "\n";
  for (const auto& [name, text] : {std::pair<std::string, std::string>{"pg_hba.conf", hba}, {"pg_ident.conf", ident}}) {
    std::string path = util::path_join(data_dir(), name);
    IDP_TRY(util::write_file_atomic(path, text, 0600));
    IDP_TRY(chown_path(path, m_uid, m_gid));
  }
  return {};
}

bool PostgresCluster::alive() const {
  if (m_pid <= 0) {
    return false;
  }
  auto st = util::process_start_time(m_pid);
  return st && *st == m_pid_start;
}

int PostgresCluster::processes_in_data_dir() const {
  std::string want = real_path(data_dir());
  int n = 0;
  DIR* d = ::opendir("/proc");
  if (!d) {
    return 0;
  }
  while (auto* ent = ::readdir(d)) {
    auto pid = util::parse_int<pid_t>(ent->d_name, 1);
    if (!pid) {
      continue;
    }
    char buf[PATH_MAX];
    ssize_t len = ::readlink(("/proc/" + std::string(ent->d_name) + "/cwd").c_str(), buf, sizeof buf - 1);
    if (len > 0 && std::string(buf, static_cast<size_t>(len)) == want && util::process_alive(*pid)) {
      ++n;
    }
  }
  ::closedir(d);
  return n;
}

bool PostgresCluster::adopt_locked() {
  auto text = util::read_file(util::path_join(data_dir(), "postmaster.pid"));
  if (!text) {
    return false;
  }
  auto lines = util::split(*text, '\n');
  if (lines.size() < 4) {
    return false;
  }
  pid_t pid = util::parse_int<pid_t>(util::trim(lines[0]), 1).value_or(0);
  int port = util::parse_int<int>(util::trim(lines[3]), 1, 65535).value_or(0);
  if (pid <= 0 || !util::process_alive(pid)) {
    return false;
  }
  // Same pid, but is it our postmaster? Its working directory is the data directory.
  char buf[PATH_MAX];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1);
  if (n <= 0 || std::string(buf, static_cast<size_t>(n)) != real_path(data_dir())) {
    return false;
  }
  if (port != m_port) {
    spdlog::warn("local driver: the running PostgreSQL (pid {}) listens on port {}, not {}; restarting it", pid, port,
                 m_port);
    m_pid = pid;
    m_pid_start = util::process_start_time(pid).value_or(0);
    shutdown_server_locked();
    return false;
  }
  m_pid = pid;
  m_pid_start = util::process_start_time(pid).value_or(0);
  return true;
}

Expected<void> PostgresCluster::wait_ready_locked(int64_t deadline) {
  std::string last = "no answer yet";
  while (true) {
    if (!alive()) {
      std::string tail = log_tail();
      return make_error(ErrorCode::transient,
                        "PostgreSQL exited during startup" + (tail.empty() ? std::string() : "; server.log:\n" + tail));
    }
    // Like pg_ctl: wait for the status line of postmaster.pid to say "ready" before trying
    // to connect (each early attempt would leave a FATAL line in server.log).
    auto pidfile = util::read_file(util::path_join(data_dir(), "postmaster.pid"));
    auto lines = pidfile ? util::split(*pidfile, '\n') : std::vector<std::string>{};
    bool ready = lines.size() >= 8 && util::trim(lines[7]) == "ready";
    if (!ready) {
      if (util::steady_ms() >= deadline) {
        return make_error(ErrorCode::transient, "PostgreSQL did not become ready within " +
                                                    std::to_string(m_opts.start_timeout_ms / 1000) + "s (recovering?)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto c = PgConnection::connect({{"host", socket_dir()},
                                    {"port", std::to_string(m_port)},
                                    {"user", k_superuser},
                                    {"dbname", "postgres"},
                                    {"connect_timeout", "2"},
                                    {"application_name", "idp"}});
    if (c) {
      return {};
    }
    last = c.error().message;
    if (c.error().code != ErrorCode::transient) {
      return make_error(ErrorCode::permanent, "PostgreSQL refuses the daemon: " + last);
    }
    if (util::steady_ms() >= deadline) {
      return make_error(ErrorCode::transient, "PostgreSQL did not accept connections within " +
                                                  std::to_string(m_opts.start_timeout_ms / 1000) + "s: " + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Expected<void> PostgresCluster::start_locked() {
  IDP_TRY(write_access_files_locked());
  // A server that is gone (adopt_locked said so) may have left live processes behind
  // (backends still exiting after a killed postmaster): they hold its shared memory, and
  // a new server must not start beside them. Every server process works in the data
  // directory, which is how we find them.
  if (processes_in_data_dir() > 0) {
    return make_error(ErrorCode::transient, "processes of the previous PostgreSQL are still exiting");
  }
  // With none left, its lock files are stale. The server would clear them itself, except
  // when their pid still exists: reused by another process of the same user, or a killed
  // postmaster that stays a zombie until init reaps it.
  std::string lock = ".s.PGSQL." + std::to_string(m_port) + ".lock";
  for (const auto& f : {util::path_join(data_dir(), "postmaster.pid"), util::path_join(socket_dir(), lock)}) {
    (void)util::remove_all(f);
  }
  if (util::file_size(server_log()) > k_log_rotate_bytes) {
    ::rename(server_log().c_str(), (server_log() + ".1").c_str());
  }
  int log_fd = ::open(server_log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    return make_error(ErrorCode::io_error, "cannot open " + util::quote(server_log()) + ": " + std::strerror(errno));
  }
  util::Command c;
  c.argv = {util::path_join(m_bin, "postgres"), "-D", data_dir(), "-c", "listen_addresses=127.0.0.1", "-c",
            "port=" + std::to_string(m_port), "-c", "unix_socket_directories=" + socket_dir(), "-c",
            "unix_socket_permissions=0700", "-c", "cluster_name=" + m_opts.cluster_name, "-c", "max_connections=200",
            "-c", "logging_collector=off", "-c", "log_line_prefix=%m [%p] %q%u@%d ", "-c",
            "password_encryption=scram-sha-256",
            // After a crash, one syncfs() of the data directory's filesystem instead of an
            // fsync of every file before recovery: seconds less on a loaded machine.
            "-c", "recovery_init_sync_method=syncfs"};
  c.cwd = m_opts.dir;
  c.clear_env = true;
  c.env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C"}, {"TZ", "UTC"}};
  util::SpawnOptions so;
  so.detach = true; // outlives the daemon, like the apps that use it
  so.new_session = true;
  so.stdout_fd = log_fd;
  so.stderr_fd = log_fd;
  so.uid = m_uid;
  so.gid = m_gid;
  int64_t t0 = util::steady_ms();
  auto pid = util::spawn(c, so);
  ::close(log_fd);
  if (!pid) {
    return make_error(ErrorCode::permanent, "cannot start PostgreSQL: " + pid.error().message);
  }
  m_pid = *pid;
  m_pid_start = util::process_start_time(*pid).value_or(0);
  auto ready = wait_ready_locked(t0 + m_opts.start_timeout_ms);
  if (!ready) {
    shutdown_server_locked();
    return ready;
  }
  m_start_ms = util::steady_ms() - t0;
  spdlog::info("local driver: PostgreSQL (pid {}) accepts connections on 127.0.0.1:{} after {} ms", m_pid, m_port,
               m_start_ms);
  return {};
}

Expected<void> PostgresCluster::ensure_running() {
  std::unique_lock<std::mutex> lk(m_mu);
  if (m_stopping) {
    return make_error(ErrorCode::transient, "PostgreSQL is stopping");
  }
  m_wanted = true;
  if (!alive()) {
    IDP_TRY(prepare_locked());
    if (adopt_locked()) {
      IDP_TRY(write_access_files_locked());
      IDP_TRY(wait_ready_locked(util::steady_ms() + m_opts.start_timeout_ms));
      spdlog::info("local driver: adopted the running PostgreSQL (pid {}) on port {}", m_pid, m_port);
    } else {
      IDP_TRY(start_locked());
    }
  }
  if (!m_thread.joinable()) {
    m_thread = std::thread([this] { util::thread_main("postgres_supervise", [this] { supervise(); }); });
  }
  return {};
}

void PostgresCluster::shutdown_server_locked() {
  if (!alive()) {
    m_pid = 0;
    return;
  }
  // SIGINT = fast shutdown: clients are disconnected, a checkpoint is written.
  struct Step {
    int sig;
    int64_t wait_ms;
  };
  for (Step s : {Step{SIGINT, m_opts.stop_timeout_ms}, Step{SIGQUIT, 5000}, Step{SIGKILL, 5000}}) {
    ::kill(m_pid, s.sig);
    int64_t deadline = util::steady_ms() + s.wait_ms;
    while (alive() && util::steady_ms() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!alive()) {
      break;
    }
    spdlog::warn("local driver: PostgreSQL (pid {}) did not stop on signal {}", m_pid, s.sig);
  }
  m_pid = 0;
}

void PostgresCluster::supervise() {
  int64_t backoff = 1000;
  int64_t next_attempt = 0;
  std::unique_lock<std::mutex> lk(m_mu);
  while (!m_stopping) {
    m_cv.wait_for(lk, std::chrono::milliseconds(k_supervise_interval_ms));
    if (m_stopping || !m_wanted || alive()) {
      continue;
    }
    int64_t now = util::steady_ms();
    if (now < next_attempt) {
      continue;
    }
    spdlog::warn("local driver: PostgreSQL (pid {}) is gone; restarting it", m_pid);
    auto r = start_locked();
    if (r) {
      ++m_restarts;
      backoff = 1000;
      next_attempt = 0;
    } else {
      spdlog::warn("local driver: PostgreSQL restart failed ({}); next attempt in {} ms", r.error().message, backoff);
      next_attempt = util::steady_ms() + backoff;
      backoff = std::min(backoff * 2, k_max_backoff_ms);
    }
  }
}

void PostgresCluster::detach() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_stopping = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) {
    m_thread.join();
  }
  std::lock_guard<std::mutex> g(m_mu);
  m_stopping = false;
  m_wanted = false;
}

void PostgresCluster::stop() {
  detach();
  std::lock_guard<std::mutex> g(m_mu);
  if (alive()) {
    spdlog::info("local driver: stopping PostgreSQL (pid {})", m_pid);
  } else if (m_prepared || initialized()) {
    // A server we never looked at (e.g. left running by a crashed daemon).
    if (m_port == 0) {
      if (auto text = util::read_file(util::path_join(m_opts.state_dir, "cluster.json"))) {
        auto j = nlohmann::json::parse(*text, nullptr, false);
        m_port = j.is_object() ? j.value("port", 0) : 0;
      }
    }
    if (!adopt_locked()) {
      return;
    }
  }
  shutdown_server_locked();
}

Expected<PgConnection> PostgresCluster::admin(const std::string& database) const {
  int port = 0;
  {
    std::lock_guard<std::mutex> g(m_mu);
    port = m_port;
  }
  if (port == 0) {
    return make_error(ErrorCode::transient, "PostgreSQL is not started");
  }
  return PgConnection::connect({{"host", socket_dir()},
                                {"port", std::to_string(port)},
                                {"user", k_superuser},
                                {"dbname", database},
                                {"connect_timeout", "10"},
                                {"application_name", "idp"},
                                {"options", "-c client_min_messages=warning"}});
}

std::map<std::string, std::string> PostgresCluster::tcp_params(const std::string& role, const std::string& password,
                                                               const std::string& database) const {
  return {{"host", "127.0.0.1"},
          {"port", std::to_string(port())},
          {"user", role},
          {"password", password},
          {"dbname", database},
          {"connect_timeout", "10"},
          {"application_name", "idp"}};
}

} // namespace idp::drivers::local
