#include "drivers/local/job_scheduler.hpp"

#include <csignal>
#include <fcntl.h>

#include <spdlog/spdlog.h>

#include "drivers/common/log_files.hpp"
#include "drivers/local/shim.hpp"
#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {

namespace {

constexpr int64_t k_tick_ms = 100;
// A cron walk over a very long outage stops counting here; the count is only reported.
constexpr int k_max_walk = 100000;
constexpr size_t k_max_unrecorded = 100;

std::string iso(util::Millis t) { return util::format_iso8601(t); }

core::JobRun from_json_run(const nlohmann::json& j) {
  core::JobRun r;
  r.id = j.value("id", int64_t{0});
  r.env = j.value("env", "");
  r.scheduled_at = j.value("scheduled_at", int64_t{0});
  r.started_at = j.value("started_at", int64_t{0});
  r.finished_at = j.value("finished_at", int64_t{0});
  r.exit_code = j.value("exit_code", -1);
  r.status = j.value("status", "");
  r.message = j.value("message", "");
  return r;
}

nlohmann::json to_json_run(const core::JobRun& r) {
  return {{"id", r.id},
          {"env", r.env},
          {"scheduled_at", r.scheduled_at},
          {"started_at", r.started_at},
          {"finished_at", r.finished_at},
          {"exit_code", r.exit_code},
          {"status", r.status},
          {"message", r.message}};
}

} // namespace

DueTimes due_times(const core::Schedule& schedule, const ScheduleClock& clock, util::Millis last, util::Millis now) {
  DueTimes out;
  const util::Millis s_now = clock.to_schedule(now);
  if (schedule.is_rate()) {
    const util::Millis step = schedule.rate_ms();
    if (s_now < last + step) {
      return out;
    }
    int64_t k = (s_now - last) / step; // due times last+step … last+k*step
    out.due = last + k * step;
    out.missed = static_cast<int>(std::min<int64_t>(k - 1, INT32_MAX));
    out.first_missed = last + step;
    return out;
  }
  util::Millis t = last;
  for (int i = 0; i < k_max_walk; ++i) {
    auto n = schedule.next_after(t);
    if (!n || *n > s_now) {
      break;
    }
    if (out.due) {
      if (out.missed == 0) {
        out.first_missed = *out.due;
      }
      ++out.missed;
    }
    out.due = *n;
    t = *n;
  }
  return out;
}

JobScheduler::JobScheduler(Options opts) : m_opts(std::move(opts)) {
  if (m_opts.time_scale < 1) {
    m_opts.time_scale = 1;
  }
}

JobScheduler::~JobScheduler() { stop(); }

util::Millis JobScheduler::now() const { return m_opts.clock ? m_opts.clock->now_ms() : util::SystemClock().now_ms(); }

void JobScheduler::start() {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_thread.joinable()) {
    return;
  }
  m_stopping = false;
  m_thread = std::thread([this] { util::thread_main("job_scheduler", [this] { loop(); }); });
}

void JobScheduler::stop() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_stopping = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

void JobScheduler::loop() {
  std::unique_lock<std::mutex> lk(m_mu);
  while (!m_stopping) {
    m_cv.wait_for(lk, std::chrono::milliseconds(k_tick_ms));
    if (m_stopping) {
      break;
    }
    util::guarded_step("job_scheduler", [&] { tick_locked(now()); });
  }
}

void JobScheduler::tick() {
  std::lock_guard<std::mutex> g(m_mu);
  tick_locked(now());
}

bool JobScheduler::has(const std::string& env) const {
  std::lock_guard<std::mutex> g(m_status_mu);
  return m_status.count(env) > 0;
}

void JobScheduler::log(const Entry& e, const std::string& line) const {
  common::LogFileOptions o;
  o.max_bytes = m_opts.log_max_bytes;
  o.keep = m_opts.log_keep;
  o.retention_days = e.job.retention_days;
  common::LogWriter w(e.job.log_dir, "app.log", o);
  (void)w.append("system", line);
}

void JobScheduler::save(const Entry& e) const {
  nlohmann::json j = {{"expression", e.job.expression},
                      {"anchor", e.anchor},
                      {"last", e.last},
                      {"local_seq", e.local_seq},
                      {"last_run", e.last_run}};
  if (e.running) {
    const Running& r = *e.running;
    j["running"] = {{"id", r.id},   {"scheduled_at", r.scheduled_at}, {"started_at", r.started_at},
                    {"dir", r.dir}, {"shim_pid", r.shim_pid},         {"shim_start_time", r.shim_start_time}};
  } else {
    j["running"] = nullptr;
  }
  nlohmann::json un = nlohmann::json::array();
  for (const auto& r : e.unrecorded) {
    un.push_back(to_json_run(r));
  }
  j["unrecorded"] = un;
  if (auto w =
          util::write_file_atomic(util::path_join(e.job.env_dir, "schedule.json"), util::json_dump(j, 2) + "\n", 0600);
      !w) {
    spdlog::warn("local driver: {}: cannot save the schedule state: {}", e.job.env, w.error().message);
  }
}

Expected<void> JobScheduler::set(const Job& job) {
  auto schedule = core::Schedule::parse(job.expression);
  if (!schedule) {
    return make_error(ErrorCode::invalid_config,
                      "schedule_expression " + util::quote(job.expression) + ": " + schedule.error().message);
  }
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_entries.find(job.env);
  if (it != m_entries.end()) {
    Entry& e = it->second;
    if (e.job.expression != job.expression) {
      e.schedule = *schedule;
      e.anchor = now();
      e.last = e.anchor;
      log(e, "schedule changed to " + job.expression);
    }
    e.job = job;
    save(e);
    publish_locked(e);
    return {};
  }
  Entry e;
  e.job = job;
  e.schedule = *schedule;
  util::Millis t = now();
  e.anchor = t;
  e.last = t;
  bool resumed = false;
  if (auto text = util::read_file(util::path_join(job.env_dir, "schedule.json"))) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object()) {
      e.local_seq = j.value("local_seq", int64_t{0});
      e.last_run = j.value("last_run", nlohmann::json());
      if (j.contains("running") && j["running"].is_object()) {
        const auto& r = j["running"];
        Running run;
        run.id = r.value("id", int64_t{0});
        run.scheduled_at = r.value("scheduled_at", int64_t{0});
        run.started_at = r.value("started_at", int64_t{0});
        run.dir = r.value("dir", "");
        run.shim_pid = r.value("shim_pid", 0);
        run.shim_start_time = r.value("shim_start_time", uint64_t{0});
        e.running = run;
      }
      for (const auto& r : j.value("unrecorded", nlohmann::json::array())) {
        e.unrecorded.push_back(from_json_run(r));
      }
      if (j.value("expression", "") == job.expression) {
        e.anchor = j.value("anchor", t);
        e.last = j.value("last", t);
        resumed = true;
      }
    }
  }
  IDP_TRY(util::ensure_dir(util::path_join(job.env_dir, "runs")));
  settle_store_runs(e, t);
  if (!resumed) {
    log(e, "scheduled " + job.expression + " (UTC)" +
               (m_opts.time_scale > 1 ? "; schedule time runs " + std::to_string(m_opts.time_scale) + "x faster"
                                      : std::string()));
  }
  save(e);
  publish_locked(e);
  m_entries.emplace(job.env, std::move(e));
  return {};
}

Expected<int64_t> JobScheduler::insert(Entry& e, const core::JobRun& run) {
  if (!m_opts.job_runs.insert) {
    return ++e.local_seq;
  }
  return m_opts.job_runs.insert(run);
}

void JobScheduler::update(Entry& e, const core::JobRun& run) {
  if (!m_opts.job_runs.update || run.id <= 0) {
    return;
  }
  if (auto r = m_opts.job_runs.update(run); !r) {
    spdlog::warn("local driver: {}: cannot record job run {}: {}; will retry", e.job.env, run.id, r.error().message);
    if (e.unrecorded.size() < k_max_unrecorded) {
      e.unrecorded.push_back(run);
    }
  }
}

void JobScheduler::record_skip(Entry& e, util::Millis scheduled_at, util::Millis t, const std::string& why) {
  core::JobRun run;
  run.env = e.job.env;
  run.scheduled_at = scheduled_at;
  run.finished_at = t;
  run.exit_code = -1;
  run.status = "skipped";
  run.message = why;
  auto id = insert(e, run);
  if (!id) {
    spdlog::warn("local driver: {}: cannot record a skipped run: {}", e.job.env, id.error().message);
  }
  log(e, "job run " + (id ? std::to_string(*id) + " " : std::string()) + "(scheduled " + iso(scheduled_at) +
             ") skipped: " + why);
}

void JobScheduler::start_run(Entry& e, util::Millis scheduled_at, util::Millis t) {
  // Crash-safe order: the run is in schedule.json before it is in the store, and has its
  // store id there before its shim starts. A daemon killed in between finds it on
  // restart (collect_finished) and records how it ended, or that it never started; a
  // store row whose id never reached schedule.json is adopted (settle_store_runs).
  std::string key = std::to_string(scheduled_at);
  Running r;
  r.scheduled_at = scheduled_at;
  r.started_at = t;
  r.dir = util::path_join(util::path_join(e.job.env_dir, "runs"), key);
  e.running = r;
  save(e);
  core::JobRun run;
  run.env = e.job.env;
  run.scheduled_at = scheduled_at;
  run.started_at = t;
  run.status = "running";
  auto id = insert(e, run);
  if (!id) {
    spdlog::warn("local driver: {}: cannot record a job run ({}); running it unrecorded", e.job.env,
                 id.error().message);
  }
  run.id = id ? *id : 0;
  e.running->id = run.id;
  save(e);
  std::string name = run.id > 0 ? std::to_string(run.id) : "(unrecorded)";
  auto fail = [&](const std::string& why) {
    run.finished_at = t;
    run.exit_code = -1;
    run.status = "failed";
    run.message = why;
    update(e, run);
    e.last_run = core::to_json(run);
    e.running.reset();
    log(e, "job run " + name + " could not start: " + why);
  };
  (void)util::remove_all(r.dir);
  if (auto made = util::ensure_dir(r.dir); !made) {
    fail(made.error().message);
    return;
  }
  auto vars = e.job.environment ? e.job.environment() : Expected<std::map<std::string, std::string>>({});
  if (!vars) {
    fail(vars.error().message);
    return;
  }
  // The run's id as `idp status` lists it (its schedule time when the store could not
  // record it); also the marker that finds the run's processes after a daemon crash.
  (*vars)["IDP_JOB_RUN"] = run.id > 0 ? std::to_string(run.id) : key;
  ShimArgs sa;
  sa.dir = r.dir;
  sa.log_dir = e.job.log_dir;
  sa.max_bytes = m_opts.log_max_bytes;
  sa.keep = m_opts.log_keep;
  sa.retention_days = e.job.retention_days;
  sa.argv = e.job.argv;
  sa.uid = e.job.uid;
  sa.gid = e.job.gid;
  util::Command cmd;
  cmd.argv = {m_opts.self_exe};
  for (auto& a : shim_command_arguments(sa)) {
    cmd.argv.push_back(std::move(a));
  }
  cmd.cwd = e.job.cwd;
  cmd.clear_env = true;
  cmd.env = std::move(*vars);
  util::SpawnOptions so;
  so.detach = true; // a run outlives the daemon; its shim records how it ended
  so.new_session = true;
  so.placement = e.job.placement;
  log(e, "job run " + name + " started (scheduled " + iso(scheduled_at) + "): " + util::join(e.job.argv, " "));
  auto pid = util::spawn(cmd, so);
  if (!pid) {
    fail("cannot start the shim: " + pid.error().message);
    return;
  }
  e.running->shim_pid = *pid;
  e.running->shim_start_time = util::process_start_time(*pid).value_or(0);
  // The run is started but schedule.json does not name it yet. No error path here: a run
  // that cannot be started is recorded by fail(), which this step is past.
  (void)IDP_FAILPOINT("local.job.started");
}

void JobScheduler::settle_store_runs(Entry& e, util::Millis t) {
  // A daemon killed after the store recorded a run as running but before schedule.json
  // had its id leaves a row that nothing would ever finish: the resumed run adopts it
  // (same schedule time) and any other row still "running" is recorded as failed.
  if (!m_opts.job_runs.list) {
    return;
  }
  auto runs = m_opts.job_runs.list(e.job.env, 50);
  if (!runs) {
    spdlog::warn("local driver: {}: cannot read job runs: {}", e.job.env, runs.error().message);
    return;
  }
  for (auto run : *runs) {
    if (run.status != "running" || (e.running && e.running->id == run.id)) {
      continue;
    }
    if (e.running && e.running->id <= 0 && e.running->scheduled_at == run.scheduled_at) {
      e.running->id = run.id;
      save(e);
      continue;
    }
    run.finished_at = t;
    run.exit_code = -1;
    run.status = "failed";
    run.message = "the server stopped while starting this run";
    update(e, run);
    log(e, "job run " + std::to_string(run.id) + " failed: " + run.message);
  }
}

bool JobScheduler::collect_finished(Entry& e, util::Millis t) {
  if (!e.running) {
    return false;
  }
  Running& r = *e.running;
  std::string exit_file = util::path_join(r.dir, "exit.json");
  auto shim_alive = [&] {
    auto st = util::process_start_time(r.shim_pid);
    return r.shim_pid > 0 && st && *st == r.shim_start_time;
  };
  // Without a recorded shim (the daemon died while starting it), its processes carry the
  // run's marker: the run's id, the environment's name and the home's id (another home on
  // this machine has runs with the same ids, and maybe an environment of the same name).
  auto marked_alive = [&] {
    std::string key = r.dir.substr(r.dir.rfind('/') + 1);
    for (const std::string& marker : {r.id > 0 ? std::to_string(r.id) : key, key}) {
      for (pid_t p : util::find_processes_with_env("IDP_JOB_RUN", marker)) {
        if (util::process_env_value(p, "IDP_ENVIRONMENT").value_or("") == e.job.env &&
            util::process_env_value(p, "IDP_HOME_ID").value_or("") == m_opts.home_id) {
          return true;
        }
      }
    }
    return false;
  };
  auto text = util::read_file(exit_file);
  if (!text && (r.shim_pid > 0 ? shim_alive() : marked_alive())) {
    return false; // still running
  }
  if (!text) {
    text = util::read_file(exit_file); // it may have written the file just before exiting
  }
  core::JobRun run;
  run.id = r.id;
  run.env = e.job.env;
  run.scheduled_at = r.scheduled_at;
  run.started_at = r.started_at;
  std::string key = r.id > 0 ? std::to_string(r.id) : r.dir.substr(r.dir.rfind('/') + 1);
  auto j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
  if (j.is_object()) {
    int code = j.value("code", -1);
    int sig = j.value("signal", 0);
    run.finished_at = j.value("at", t);
    run.exit_code = sig ? -1 : code;
    run.status = sig == 0 && code == 0 ? "succeeded" : "failed";
    run.message = sig ? "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")"
                      : "exited with code " + std::to_string(code);
  } else {
    run.finished_at = t;
    run.exit_code = -1;
    run.status = "failed";
    run.message = r.shim_pid > 0 ? "the run's shim disappeared without recording an exit"
                                 : "the server stopped while starting this run";
  }
  if (run.id > 0) {
    update(e, run);
  } else if (auto id = insert(e, run)) {
    run.id = *id; // the daemon died before the store had it
  }
  e.last_run = core::to_json(run);
  log(e, "job run " + key + " " + run.status + ": " + run.message);
  (void)util::remove_all(r.dir);
  e.running.reset();
  return true;
}

void JobScheduler::tick_locked(util::Millis t) {
  for (auto& [name, e] : m_entries) {
    bool changed = false;
    if (!e.unrecorded.empty() && m_opts.job_runs.update) {
      std::vector<core::JobRun> retry;
      retry.swap(e.unrecorded);
      for (const auto& run : retry) {
        update(e, run);
      }
      changed = true;
    }
    changed |= collect_finished(e, t);
    DueTimes due = due_times(e.schedule, clock_of(e), e.last, t);
    if (due.due) {
      ScheduleClock c = clock_of(e);
      if (due.missed > 0) {
        record_skip(e, c.to_real(due.first_missed), t,
                    std::to_string(due.missed) + " run(s) due from " + iso(c.to_real(due.first_missed)) +
                        " missed while the server was not running");
      }
      util::Millis scheduled_at = c.to_real(*due.due);
      if (e.running) {
        record_skip(e, scheduled_at, t,
                    "run " + std::to_string(e.running->id) + " (scheduled " + iso(e.running->scheduled_at) +
                        ") is still running");
      } else {
        start_run(e, scheduled_at, t);
      }
      e.last = *due.due;
      changed = true;
    }
    if (changed) {
      save(e);
    }
    publish_locked(e); // next_run_at moves with every tick
  }
}

void JobScheduler::stop_running(Entry& e, const std::string& reason) {
  if (!e.running) {
    return;
  }
  Running& r = *e.running;
  auto st = util::process_start_time(r.shim_pid);
  if (r.shim_pid > 0 && st && *st == r.shim_start_time) {
    util::terminate_group(r.shim_pid, m_opts.stop_grace_ms);
  }
  core::JobRun run;
  run.id = r.id;
  run.env = e.job.env;
  run.scheduled_at = r.scheduled_at;
  run.started_at = r.started_at;
  run.finished_at = now();
  run.exit_code = -1;
  run.status = "failed";
  run.message = reason;
  update(e, run);
  log(e, "job run " + std::to_string(r.id) + " stopped: " + reason);
  e.running.reset();
}

void JobScheduler::remove(const std::string& env, const std::string& reason) {
  std::map<std::string, Entry>::node_type node;
  {
    std::lock_guard<std::mutex> g(m_mu);
    node = m_entries.extract(env);
  }
  {
    std::lock_guard<std::mutex> g(m_status_mu);
    m_status.erase(env);
  }
  if (node.empty()) {
    return;
  }
  // The entry is ours alone now: stopping its run (TERM, grace, KILL) happens outside m_mu,
  // so the ticks of the other environments and status() never wait for it. A run that
  // ended already gets its real result, not `reason`.
  collect_finished(node.mapped(), now());
  stop_running(node.mapped(), reason);
}

nlohmann::json JobScheduler::status(const std::string& env) const {
  std::lock_guard<std::mutex> g(m_status_mu);
  auto it = m_status.find(env);
  return it == m_status.end() ? nlohmann::json(nullptr) : it->second;
}

void JobScheduler::publish_locked(const Entry& e) {
  ScheduleClock c = clock_of(e);
  nlohmann::json j = {{"schedule", e.job.expression}};
  if (auto n = e.schedule.next_after(e.last)) {
    j["next_run_at"] = iso(c.to_real(*n));
  }
  if (m_opts.time_scale > 1) {
    j["time_scale"] = m_opts.time_scale;
  }
  if (e.running) {
    j["running"] = {{"id", e.running->id},
                    {"scheduled_at", iso(e.running->scheduled_at)},
                    {"started_at", iso(e.running->started_at)}};
  }
  if (!e.last_run.is_null()) {
    j["last_run"] = e.last_run;
  }
  std::lock_guard<std::mutex> g(m_status_mu);
  m_status[e.job.env] = std::move(j);
}

} // namespace idp::drivers::local
