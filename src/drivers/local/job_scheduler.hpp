#pragma once
// The "schedule" component on the local runtime: runs an environment's local.start at the
// times of its schedule_expression (EventBridge rate()/cron(), UTC; core::Schedule).
//
// Each run goes through the shim (shim.hpp) like a web app, so its output lands in the
// environment log and its exit code in <env dir>/runs/<id>/exit.json even when the daemon
// dies meanwhile. One environment never has two runs at once: a time that comes while the
// previous run still runs is recorded as a skipped run. Times missed while the daemon was
// not running are collapsed: the latest one runs when it comes back, the earlier ones are
// recorded as one skipped run (like a persistent systemd timer). rate() schedules count
// from when the schedule was first deployed (as on AWS); a changed expression starts over.
//
// What the scheduler knows of an environment survives restarts in <env dir>/schedule.json
// (the anchor, the last handled time, the running run): a restarted daemon registers the
// environment again and the scheduler resumes, finishing the bookkeeping of runs that
// ended while it was down. Every run is recorded through the DriverContext recorder hooks
// (store job_runs); without hooks runs still happen, unrecorded.
//
// time_scale (a test-only driver option, schedule_time_scale) makes schedule time pass
// faster: one schedule minute takes 60/scale real seconds. 1 in production.
//
// Thread-safe. The worker thread ticks every 100 ms; tick() is the same step, public so
// tests can drive it with a fake clock.

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/environment.hpp"
#include "core/schedule.hpp"
#include "drivers/driver.hpp"
#include "util/expected.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

// Real time ↔ schedule time: schedule time runs `scale` times faster from `anchor` on.
struct ScheduleClock {
  util::Millis anchor = 0;
  int64_t scale = 1;
  util::Millis to_schedule(util::Millis real) const { return anchor + (real - anchor) * scale; }
  util::Millis to_real(util::Millis sched) const { return anchor + (sched - anchor) / scale; }
};

// What is due at real time `now` for a schedule whose last handled time (schedule time) is
// `last`: the newest due time, and how many earlier ones were passed over. Pure.
struct DueTimes {
  std::optional<util::Millis> due; // schedule time of the run to start (or skip) now
  util::Millis first_missed = 0;   // schedule time of the first passed-over time
  int missed = 0;                  // earlier due times collapsed into `due`
};
DueTimes due_times(const core::Schedule& schedule, const ScheduleClock& clock, util::Millis last, util::Millis now);

class JobScheduler {
public:
  struct Options {
    std::string self_exe; // runs the shim: <self_exe> __shim … (idp-shim, or idp)
    // This idp home's id (IDP_HOME_ID in every job process): a run whose shim is unknown
    // after a crash is found by its processes' markers, and only this home's count.
    std::string home_id;
    int64_t time_scale = 1;
    util::Clock* clock = nullptr; // nullptr = system clock
    int64_t log_max_bytes = 10 * 1024 * 1024;
    int log_keep = 5;
    int64_t stop_grace_ms = 5000; // TERM → KILL when a run is stopped
    // list is used on resume, to settle runs the store still calls "running" after a crash.
    JobRunHooks job_runs;
  };

  // One environment's job.
  struct Job {
    std::string env;
    std::string expression;        // schedule_expression
    std::vector<std::string> argv; // local.start
    std::string cwd;               // the revision's checkout
    std::string env_dir;           // <home>/envs/<env>: schedule.json and runs/ go here
    std::string log_dir;           // the environment log
    int retention_days = 0;
    int uid = -1; // the run's user and group (-1 = the daemon's; shim.hpp)
    int gid = -1;
    util::ChildPlacement placement; // the revision's cgroups a run enters, its process limit
    // The run's environment variables (config, secrets, database, markers), computed at
    // each start so secrets and passwords are never stored. An error fails that run.
    std::function<Expected<std::map<std::string, std::string>>()> environment;
  };

  explicit JobScheduler(Options opts);
  // Stops the worker; running jobs keep running (their results are picked up later).
  ~JobScheduler();

  void start();
  void stop();

  // Adds or replaces an environment's job (idempotent). invalid_config for a bad
  // expression. Resumes from schedule.json when one exists for the same expression.
  Expected<void> set(const Job& job);
  // Forgets the environment: a running run is stopped (TERM, then KILL) and recorded as
  // failed with `reason`. Its files are left for the caller to remove.
  void remove(const std::string& env, const std::string& reason);
  bool has(const std::string& env) const;

  // next_run_at, running run, last runs: for observe()/idp status. null when unknown.
  nlohmann::json status(const std::string& env) const;

  // Starts what is due and records what finished, at the clock's now.
  void tick();

private:
  struct Running {
    int64_t id = 0;
    util::Millis scheduled_at = 0; // real time
    util::Millis started_at = 0;
    std::string dir;
    pid_t shim_pid = 0;
    uint64_t shim_start_time = 0;
  };
  struct Entry {
    Job job;
    core::Schedule schedule;
    util::Millis anchor = 0;
    util::Millis last = 0; // schedule time of the last handled due time
    std::optional<Running> running;
    std::vector<core::JobRun> unrecorded; // finished runs whose store update failed
    int64_t local_seq = 0;                // run ids when there is no recorder
    nlohmann::json last_run;              // the last finished run, for status()
  };

  void loop();
  void tick_locked(util::Millis now);
  void start_run(Entry& e, util::Millis scheduled_at, util::Millis now);
  void record_skip(Entry& e, util::Millis scheduled_at, util::Millis now, const std::string& why);
  bool collect_finished(Entry& e, util::Millis now);
  void settle_store_runs(Entry& e, util::Millis now);
  void stop_running(Entry& e, const std::string& reason);
  Expected<int64_t> insert(Entry& e, const core::JobRun& run);
  void update(Entry& e, const core::JobRun& run);
  void save(const Entry& e) const;
  void log(const Entry& e, const std::string& line) const;
  ScheduleClock clock_of(const Entry& e) const { return {e.anchor, m_opts.time_scale}; }
  util::Millis now() const;

  // The status() answer of each environment, computed under m_mu after every change and
  // read under m_status_mu alone (lock order: m_mu, then m_status_mu), so observe() never
  // waits for a tick that is starting or stopping a run.
  void publish_locked(const Entry& e);

  Options m_opts;
  mutable std::mutex m_status_mu;
  std::map<std::string, nlohmann::json> m_status;
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  std::map<std::string, Entry> m_entries;
  bool m_stopping = false;
  std::thread m_thread;
};

} // namespace idp::drivers::local
