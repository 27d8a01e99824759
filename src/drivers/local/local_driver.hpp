#pragma once
// The local runtime: environments as processes on this machine behind one Caddy.
//
// Layout under <home>:
//   envs/<env>/state.json       what exists (env_state.hpp), written before each creation
//   envs/<env>/rev-<key>/src    checkout of the revision's commit (files only, no .git)
//   envs/<env>/rev-<key>/build.ok   local.build finished for this revision
//   envs/<env>/rev-<key>/app.pid, exit.json   written by the shim (shim.hpp)
//   envs/<env>/logs/app.log(.N) the environment log (build, app, system lines)
//   envs/<env>/schedule.json, runs/<id>/   the job scheduler's state and runs (job_scheduler.hpp)
//   git/                        bare mirrors (util::GitMirror)
//   router/                     Caddy's config, admin socket, data and caddy.log
//   postgres/, db/              the managed PostgreSQL cluster and its records (postgres_cluster.hpp)
//   cache/npm/                  npm's cache for builds (npm_config_cache), shared by environments
//                               (isolated environments use one in their own HOME instead)
//   uids.json                   isolated environments' uids (uid_allocator.hpp)
//   envs/<env>/home             an isolated environment's HOME (owned by its uid, 0700)
//
// Isolation (docs/security.md): when the daemon is root (and the option isolation is
// "auto"), everything an environment runs (build, app, job runs, exec) runs as a uid of
// its own, with no capabilities and no_new_privs, HOME in envs/<env>/home. That uid may
// search (not list) the home, envs/ and its own env and revision directories, owns its
// checkout, and can read nothing else of the home. A build, the app, job runs and exec
// sessions run in the revision's cgroup, whose pids.max bounds the processes.
//
// A "web" revision is a shim (`idp-shim __shim …`, or `idp __shim …`) running the app on a free port,
// detached and in its own session, in a cgroup with the config's cpu/memory when the
// machine allows it; it is routed once GET <health_check_path> answers 2xx/3xx. A
// "static" revision is the built directory served by Caddy's file_server. Deploys are
// zero-downtime: the new revision starts beside the old one, the route switches only when
// it is healthy, and the old one is stopped afterwards; a failing new revision is stopped
// and the old one keeps serving.
//
// Other components: "database" gives the environment its own database and role in the
// home's PostgreSQL (databases.hpp; DB_* and DATABASE_URL in the app's environment),
// created after the checkout (the seed is read from it) and before the build; "schedule"
// runs local.start at the times of schedule_expression (job_scheduler.hpp); alone, it
// makes a "job" revision: checked out and built, with nothing running between runs.
//
// Thread-safety: operations on different environments run concurrently; operations on
// one environment are serialised (the engine's leases already guarantee that). observe()
// and read_logs() only read files and never wait for a running apply.

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "drivers/common/log_files.hpp"
#include "drivers/driver.hpp"
#include "drivers/local/access_log.hpp"
#include "drivers/local/caddy_router.hpp"
#include "drivers/local/cgroups.hpp"
#include "drivers/local/databases.hpp"
#include "drivers/local/env_state.hpp"
#include "drivers/local/job_scheduler.hpp"
#include "drivers/local/local_options.hpp"
#include "drivers/local/postgres_cluster.hpp"
#include "drivers/local/uid_allocator.hpp"
#include "util/keyed_mutex.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {

// sha256(absolute home)[:12]: the IDP_HOME_ID marker of this home's processes.
std::string home_id_for(const std::string& home);

class LocalDriver final : public Driver {
public:
  // `ctx.router_port` 0 picks a free port. Does not start anything (see start()).
  LocalDriver(DriverContext ctx, LocalOptions opts);
  // Stops the router; environments keep running (as after a daemon crash).
  ~LocalDriver() override;

  std::string_view name() const override { return "local"; }
  Expected<void> start(const std::vector<core::Environment>& live) override;
  void stop(bool keep_running) override;
  Expected<void> plan(const DeploySpec& spec) override;
  Expected<ApplyResult> apply(const DeploySpec& spec, Progress& progress) override;
  Expected<Observation> observe(const core::Environment& env) override;
  // Its revisions' cgroup counters (cpu.stat usage_usec, memory.current; cgroup v1's
  // cpuacct.usage, memory.usage_in_bytes) and its database's size. Running: an active web
  // revision. Not measured when no group of it could be read (cgroups unusable).
  Expected<std::optional<Usage>> usage(const core::Environment& env) override;
  // Idle sleep (idle_sleep.cpp): a web app's processes stop, its route leads to the
  // daemon's wake handler; the engine's apply of the same revision starts it in place.
  Expected<void> sleep(const core::Environment& env, Progress& progress) override;
  // From the router's access log.
  Expected<std::optional<util::Millis>> last_request(const core::Environment& env) override;
  Expected<void> destroy(const core::Environment& env, Progress& progress) override;
  // An environment that does not exist (or was destroyed) has an empty log.
  Expected<LogChunk> read_logs(const core::Environment& env, const LogQuery& q) override;
  // Runs argv in the active revision's checkout with the app's environment (60 s limit), as the
  // environment's uid and in its revision's cgroup when isolated.
  Expected<nlohmann::json> exec(const core::Environment& env, const std::vector<std::string>& argv) override;
  Expected<std::unique_ptr<ExecProcess>> start_exec(const core::Environment& env, const ExecRequest& req) override;

  const std::string& home_id() const { return m_home_id; }
  int router_port() const { return m_ctx.router_port; }
  // "http://<env>.<domain>:<router port>/", or "https://<env>.<domain>[:<https port>]/".
  std::string url_for(const std::string& env) const;
  // Pid of the router's Caddy (0 when not running), for tests.
  pid_t router_pid_for_test() const;
  // The home's PostgreSQL cluster (also when not started) and the scheduler, for tests.
  PostgresCluster& cluster_for_test() { return *m_cluster; }
  JobScheduler& scheduler_for_test() { return *m_scheduler; }
  DatabaseManager& databases_for_test() { return *m_databases; }
  // Revisions handed to the retirer and not stopped yet (tests, bench).
  size_t retiring_count() const;

private:
  // The units of this class, one file each (their contracts at the top of each file):
  //   local_driver.cpp       construction, identities (paths, uids, ports), plan, observe, destroy
  //   recovery.cpp           start(): what a restarted daemon finds, kept or removed
  //   revision_launcher.cpp  one revision: checkout, cgroups, build, start, health, retire
  //   components.cpp         database and schedule components
  //   apply.cpp              apply(): prepare → bring up → switch → retire the old revision
  //   retirer.cpp            the old revision stopped after the drain, in the background
  //   local_exec.cpp         exec() and start_exec()
  struct ApplyRun; // one apply in progress (apply_run.hpp)

  struct EnvPaths {
    std::string dir, state, logs;
  };
  EnvPaths paths(const std::string& env) const;
  std::unique_ptr<common::LogWriter> env_log(const std::string& env, int retention_days) const;
  std::map<std::string, std::string> base_env() const;
  std::map<std::string, std::string> marker_env(const std::string& env, const std::string& key) const;

  // Who an environment's code runs as: its uid/gid and private HOME when isolated (the
  // uid allocated and recorded, HOME created and the path to the env dir searchable for
  // it); uid -1 and HOME "" when not.
  struct RunAs {
    int uid = -1;
    int gid = -1;
    std::string home;
    bool untrusted = false; // the untrusted profile: every process in the network sandbox (sandboxed)
  };
  // Who the environment's code runs as: its own uid when isolated, and always for the
  // untrusted profile (a permanent error when the server is not root: it needs the uid
  // and a network namespace).
  Expected<RunAs> run_as(const std::string& env, bool untrusted = false);
  // `argv` as it runs for `as`: unchanged, or for the untrusted profile inside `idp __netns`
  // (drivers/local/netns_sandbox.hpp) as the environment's uid, with the egress allowlist,
  // `publish` (the app's port) reachable from the host and `forward` (its database's port)
  // from inside. The caller then runs it as root (uid -1): the wrapper drops privileges.
  std::vector<std::string> sandboxed(const std::vector<std::string>& argv, const RunAs& as, int publish,
                                     const std::vector<int>& forward) const;
  // The port of the environment's database from its variables (PGPORT), to relay into the
  // sandbox; none without a database.
  static std::vector<int> database_ports(const std::map<std::string, std::string>& db_env);
  // The process limit of a revision: pids_max, or the untrusted profile's when tighter.
  int64_t pids_max_for(const InstanceRecord& inst) const;
  // The variables that say who the code runs as (HOME) over `vars`.
  static void apply_run_as(const RunAs& as, std::map<std::string, std::string>& vars);
  // Warnings every answer about the environment carries (not isolated, limits missing).
  std::vector<std::string> standing_warnings(const InstanceRecord& inst) const;
  // Stops whatever still runs as the environment's uid and frees it (destroy).
  void release_uid(const std::string& env);
  Expected<int> allocate_port();
  void release_port(int port);
  ApplyResult result_for(const std::string& env, const InstanceRecord& inst) const;
  std::optional<RouteTarget> route_for(const std::string& env, const std::string& repo,
                                       const InstanceRecord& inst) const;
  // Whether the preview of an environment of `repo` needs a sign-in (server config
  // previews:); true when the server's answer is an error (fail closed).
  bool preview_protected(const std::string& repo, bool wants_public) const;

  // --- recovery.cpp ---
  // Environments not in `live_names` lose their files and processes; true when one of
  // them had (or may have had) a database.
  bool remove_dead_environments(const std::set<std::string>& live_names);
  // The records of live environments, each with its half-started revision retired.
  std::map<std::string, EnvState> adopt_live_environments(const std::set<std::string>& live_names);
  // Stops processes of this home that no adopted active revision owns.
  void stop_orphans(const std::map<std::string, EnvState>& states);
  // The routes the records name (with today's preview protection): what the router serves.
  std::vector<RouteTarget> recorded_routes(std::map<std::string, EnvState>& states);
  // Removes revision directories and cgroups other than the active ones.
  void prune_revisions(const std::map<std::string, EnvState>& states);
  // Runs the cluster when a database is needed, drops databases of environments that are gone.
  void recover_databases(const std::set<std::string>& live_names, const std::map<std::string, EnvState>& states,
                         bool dead_databases);
  // Keeps live environments' uids (and their search path) and resumes their schedules.
  void resume_environments(const std::set<std::string>& live_names, const std::map<std::string, EnvState>& states);
  // (Re)creates the router with `routes` and waits until it serves them.
  Expected<void> start_router(const std::vector<RouteTarget>& routes);
  // Stops passing preview sessions to the router (before it stops or is replaced).
  void unfollow_sessions();
  // Everything of an environment except its route: processes, cgroups, checkouts, dir.
  void remove_env_files(const std::string& env);

  // --- revision_launcher.cpp ---
  Expected<void> checkout(const std::string& repo, const InstanceRecord& inst, const RunAs& as, Progress& progress);
  // The revision's cgroup(s) (cpu, memory, pids.max), recorded in `inst`; a warning in
  // inst.limits_warning for whatever cannot be enforced here, and in inst.process_limit
  // which process limit holds (the pids cgroup, else RLIMIT_NPROC: placement_for()).
  void place_revision(const std::string& env, const DeploySpec& spec, const RunAs& as, InstanceRecord& inst);
  // Where code of revision `inst` run as `as` goes: its cgroups (a failed move fails the
  // start, unless isolation is "off"), and RLIMIT_NPROC when no pids cgroup bounds it.
  util::ChildPlacement placement_for(const InstanceRecord& inst, const RunAs& as) const;
  Expected<void> build(const DeploySpec& spec, const InstanceRecord& inst, const RunAs& as, common::LogWriter& log,
                       Progress& progress);
  Expected<void> start_web(const DeploySpec& spec, const std::map<std::string, std::string>& secrets,
                           const std::map<std::string, std::string>& db_env, const RunAs& as, InstanceRecord& inst,
                           EnvState& state, common::LogWriter& log, Progress& progress);
  Expected<void> wait_healthy(const InstanceRecord& inst, const std::string& env, Progress& progress);
  // Why the app of revision `key` failed: common::pick_cause_lines over what it printed
  // since it was last started (the environment log's last lines).
  std::vector<std::string> app_cause(const std::string& env, const std::string& key) const;
  // Stops an instance's processes and removes its cgroups; with remove_dir also its
  // checkout and directory.
  void retire(const std::string& env, const std::string& repo, const InstanceRecord& inst, bool remove_dir);
  void remove_revision_dir(const std::string& repo, const std::string& dir);

  // --- components.cpp ---
  // database component: the environment's database exists (created, cloned or re-checked).
  Expected<void> ensure_database(const DeploySpec& spec, EnvState& state, const InstanceRecord& inst,
                                 common::LogWriter& log, Progress& progress);
  // DB_* and DATABASE_URL of the environment's database; empty when it has none.
  Expected<std::map<std::string, std::string>> database_env(const EnvState& state);
  // Drops an environment's database and role (after its processes are gone), and seed
  // templates of `repo` nothing uses any more. ok when the cluster never existed.
  Expected<void> drop_database(const std::string& env, const std::string& repo);
  // Seed templates in use by any environment of this home.
  std::set<std::string> templates_in_use() const;
  // schedule component: hands the active revision's job to the scheduler.
  Expected<void> register_job(const std::string& env, const EnvState& state, const InstanceRecord& inst);

  // --- apply.cpp (steps in apply_run.hpp) ---
  Expected<ApplyResult> apply_unredacted(const DeploySpec& spec, Progress& progress);
  // Loads the records, retires a half-started revision, and either answers at once (the
  // same deployment already serves: a result) or records the new revision as pending.
  Expected<std::optional<ApplyResult>> prepare(ApplyRun& run);
  // Checkout, database, cgroups, build, then the app started and healthy (web) or the
  // built directory checked (static). Every failure is abandon()ed.
  Expected<void> bring_up(ApplyRun& run);
  // The route to the new revision, then the record that it is active.
  Expected<void> switch_to(ApplyRun& run);
  // Hands the revision the switch replaced to the retirer (stopped after the drain, in the
  // background), then the schedule follows.
  Expected<void> retire_old(ApplyRun& run);

  // --- retirer.cpp ---
  // Stops revision `key` of `env` (recorded in EnvState::retiring) after `delay_ms`, on the
  // retirer thread (started on first use).
  void schedule_retire(const std::string& env, const std::string& key, int64_t delay_ms);
  // Ends the retirer; what it had not retired yet stays recorded (the next start retires it).
  void stop_retirer();
  void retirer_loop();
  // Retires `key` of `env` if it is still recorded as retiring; false when the environment's
  // lock is busy (the retirer tries again shortly).
  bool retire_recorded(const std::string& env, const std::string& key);
  // A failed deploy: the new revision is stopped, its record dropped; the old one serves.
  Unexpected abandon(ApplyRun& run, const Error& e);
  // The result with the database and schedule outputs and the run's warnings.
  ApplyResult finish(ApplyRun& run, ApplyResult res, const InstanceRecord& a);

  // --- local_exec.cpp ---
  // What `idp exec` runs: argv in the active instance's checkout, with the app's environment.
  // The user, group and cgroups it runs as and in.
  struct ExecTarget {
    util::Command cmd;
    int uid = -1;
    int gid = -1;
    util::ChildPlacement placement;
  };
  Expected<ExecTarget> exec_command(const core::Environment& env, const std::vector<std::string>& argv);

  DriverContext m_ctx;
  LocalOptions m_opts;
  std::string m_home;
  std::string m_home_id;
  std::string m_helper_exe; // runs `__shim` and `__netns`: idp-shim beside idp, or idp itself
  Cgroups m_cgroups;
  std::unique_ptr<CaddyRouter> m_router;
  std::unique_ptr<AccessLog> m_access_log; // the router's (idle sleep: last_request)
  std::unique_ptr<PostgresCluster> m_cluster;
  std::unique_ptr<DatabaseManager> m_databases;
  std::unique_ptr<JobScheduler> m_scheduler;

  util::KeyedMutex m_env_locks; // one per environment: its operations are serialised

  // limits.concurrent_builds: builds running now, and the wait for a slot.
  std::mutex m_build_mu;
  std::condition_variable m_build_cv;
  int m_builds_running = 0;
  mutable std::mutex m_retire_mu; // guards the retirer's members below
  std::condition_variable m_retire_cv;
  std::multimap<int64_t, std::pair<std::string, std::string>> m_retire_queue; // steady ms -> (env, key)
  size_t m_retiring_now = 0;                                                  // being retired by the thread now
  bool m_retire_stop = false;
  std::thread m_retirer;
  std::mutex m_mutex; // guards the members below (memory only: no I/O under it)
  std::set<int> m_ports;
  bool m_isolated = false; // root and isolation "auto": environments run as their own uid
  std::unique_ptr<UidAllocator> m_uids;
};

} // namespace idp::drivers::local
