#pragma once
// The one PostgreSQL cluster of an idp home, for the "database" component.
//
//   <home>/postgres/         owned by the cluster's user, 0700
//   <home>/postgres/data/    PGDATA (initdb on first use)
//   <home>/postgres/run/     the unix socket (the daemon's only way in as superuser)
//   <home>/db/cluster.json   port (chosen once, then kept: apps have it), binaries, user
//   <home>/db/server.log     the server's output
//
// PostgreSQL refuses to run as root. When the daemon is root the cluster runs as an
// unprivileged system user, like a packaged service: "postgres" when it exists (Debian's
// package creates it), else "idp-postgres", created with `useradd --system`. That user is
// given search permission (an ACL entry, search only) on the home to reach its cluster.
// A non-root daemon runs the cluster as itself.
//
// The server listens on 127.0.0.1 only. pg_hba.conf: the superuser "idp" only through the
// socket with peer authentication mapped from the daemon's OS user; every other role only
// over TCP from 127.0.0.1 with scram-sha-256 and only to the database of its own name
// (`sameuser`); everything else is rejected.
//
// The server is started detached (it outlives a crashed daemon, like the apps that use
// it); a restarted daemon adopts it through postmaster.pid (pid alive, its cwd is our data
// directory) or starts it again after a stale pid file. A supervisor thread restarts it
// with backoff when it dies. Thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <sys/types.h>
#include <thread>

#include "drivers/local/pg_connection.hpp"
#include "util/expected.hpp"

namespace idp::drivers::local {

struct ClusterOptions {
  std::string dir;          // <home>/postgres
  std::string state_dir;    // <home>/db
  std::string home;         // the idp home (the cluster's user gets search permission on it)
  std::string bin_dir;      // "" = newest /usr/lib/postgresql/*/bin, else `pg_config --bindir`, else PATH
  std::string user;         // "" = "postgres" when it exists, else "idp-postgres" (created)
  std::string cluster_name; // cluster_name setting: ps shows it on every server process
  int64_t start_timeout_ms = 60000;
  int64_t stop_timeout_ms = 30000;
};

class PostgresCluster {
public:
  static constexpr const char* k_superuser = "idp";

  explicit PostgresCluster(ClusterOptions opts);
  // Stops the supervisor; the server keeps running (as after a daemon crash).
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  // True when initdb has run (data/PG_VERSION exists). No side effects.
  bool initialized() const;
  // Makes the server run: first use creates the user, directories and cluster (initdb);
  // then adopts a running server or starts one and waits until it accepts connections,
  // and starts supervising it. transient when it does not come up (with the tail of
  // server.log), permanent when it cannot (no binaries, unreachable home, initdb failed).
  Expected<void> ensure_running();
  // Stops supervising and shuts the server down (fast: SIGINT, then QUIT, then KILL).
  void stop();
  // Stops supervising; the server keeps running.
  void detach();

  // A superuser connection through the socket to `database`. transient when the server is
  // not up.
  Expected<PgConnection> admin(const std::string& database = "postgres") const;
  // libpq parameters for `role` connecting over TCP like an app would.
  std::map<std::string, std::string> tcp_params(const std::string& role, const std::string& password,
                                                const std::string& database) const;

  int port() const;
  std::string socket_dir() const;
  std::string data_dir() const;
  std::string server_log() const;
  // The server's pid (0 when not running) and how often the supervisor restarted it.
  pid_t pid() const;
  int restarts() const;
  // Durations of the last initdb and the last start-to-accepting (0 when not done).
  int64_t init_ms() const;
  int64_t start_ms() const;

private:
  Expected<void> prepare_locked();
  Expected<void> resolve_user_locked();
  Expected<void> resolve_binaries_locked();
  Expected<void> init_cluster_locked();
  Expected<void> write_access_files_locked();
  bool adopt_locked();
  Expected<void> start_locked();
  Expected<void> wait_ready_locked(int64_t deadline);
  // The server process m_pid (same start time) is alive. Needs no lock: reads atomics.
  bool alive() const;
  // Live processes whose working directory is the data directory (server processes).
  int processes_in_data_dir() const;
  void shutdown_server_locked();
  void supervise();
  std::string log_tail() const;

  ClusterOptions m_opts;
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  std::thread m_thread;
  bool m_prepared = false;
  bool m_wanted = false;
  bool m_stopping = false;
  // The fields below that observe() reads (port(), pid(), counters) are atomics: they are
  // written under m_mu, which start and restart hold across initdb and server start, and
  // read without it, so a status query never waits for a slow start.
  std::atomic<int> m_port{0};
  std::string m_bin;
  std::string m_user;
  int m_uid = -1; // -1: run as the daemon's own user
  int m_gid = -1;
  std::atomic<pid_t> m_pid{0};
  std::atomic<uint64_t> m_pid_start{0};
  std::atomic<int> m_restarts{0};
  std::atomic<int64_t> m_init_ms{0};
  std::atomic<int64_t> m_start_ms{0};
};

// The PostgreSQL binaries directory to use: `configured` when set, else the newest
// /usr/lib/postgresql/<v>/bin, else `pg_config --bindir`, else the directory of `postgres`
// on PATH. not_found when there is none.
Expected<std::string> find_postgres_bin_dir(const std::string& configured);

} // namespace idp::drivers::local
