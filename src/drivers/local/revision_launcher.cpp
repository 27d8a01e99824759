// One revision of an environment on this machine, from nothing to serving and back:
// its checkout of the commit, its cgroups (place_revision), local.build (build), the
// app under the shim on a free port (start_web) until GET <health_check_path> answers
// (wait_healthy), and retire(), which stops its processes and removes its cgroups and,
// when asked, its directory. Each step is idempotent for a revision directory that holds
// it already (checkout.ok, build.ok). Errors name the step and quote the output that
// says why (app_cause, common::pick_cause_lines).

#include <cerrno>
#include <chrono>
#include <deque>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/command_line.hpp"
#include "drivers/common/failure_cause.hpp"
#include "drivers/local/isolation.hpp"
#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/processes.hpp"
#include "drivers/local/shim.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/http_client.hpp"
#include "util/ports.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

Expected<void> LocalDriver::checkout(const std::string& repo, const InstanceRecord& inst, const RunAs& as,
                                     Progress& progress) {
  std::string marker = util::path_join(inst.dir, "checkout.ok");
  auto open_to_uid = [&]() -> Expected<void> {
    if (as.uid >= 0) {
      // The revision directory stays the daemon's (app.pid, exit.json, build.ok): search
      // only. After the checkout: creating it chmods the directory, which resets the mask.
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
  if (auto r = mirror.checkout(inst.commit, src); !r) {
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

void LocalDriver::place_revision(const std::string& env, const DeploySpec& spec, const RunAs& as,
                                 InstanceRecord& inst) {
  inst.untrusted = spec.env.untrusted();
  const int64_t pids_max = pids_max_for(inst);
  CgroupLimits limits{spec.config.cpu, spec.config.memory, pids_max};
  auto placement = m_cgroups.create(env + "." + inst.key, limits);
  std::vector<std::string> warnings;
  std::string no_pids_cgroup; // why the process limit is not a pids cgroup
  if (!placement) {
    inst.cgroup_dirs.clear();
    inst.cgroup = nullptr;
    warnings.push_back("cpu/memory limits not enforced: " + placement.error().message);
    no_pids_cgroup = placement.error().message;
  } else {
    inst.cgroup_dirs = placement->dirs;
    inst.cgroup = placement->to_json();
    if (!placement->cpu_memory_warning.empty()) {
      warnings.push_back("cpu/memory limits not enforced: " + placement->cpu_memory_warning);
    }
    no_pids_cgroup = placement->pids_warning;
  }
  // The process limit: the pids cgroup when there is one, else RLIMIT_NPROC, which the
  // kernel counts per real uid and does not apply to root (placement_for says the value).
  const std::string wanted = "process limit (pids_max " + std::to_string(pids_max) + ")";
  if (pids_max <= 0) {
    inst.process_limit = "none (pids_max 0)";
  } else if (placement && placement->pids_max > 0) {
    inst.process_limit = "pids.max " + std::to_string(placement->pids_max) + " (cgroup)";
  } else if (as.uid >= 0) {
    inst.process_limit =
        "RLIMIT_NPROC " + std::to_string(pids_max) + " (uid " + std::to_string(as.uid) + ", the environment's own)";
    warnings.push_back(
        wanted + " enforced with RLIMIT_NPROC for the environment's uid instead of a pids cgroup: " + no_pids_cgroup);
  } else if (::geteuid() != 0) {
    inst.process_limit = "RLIMIT_NPROC: " + std::to_string(pids_max) + " more than the server's user runs";
    warnings.push_back(wanted + " enforced with RLIMIT_NPROC instead of a pids cgroup (" + no_pids_cgroup +
                       "): it counts every process of the server's user, so the app may start at most " +
                       std::to_string(pids_max) + " more than that user runs when it starts");
  } else {
    inst.process_limit = "none";
    warnings.push_back(wanted + " not enforced: " + no_pids_cgroup +
                       "; RLIMIT_NPROC does not apply to root (isolation is \"off\")");
  }
  inst.limits_warning = util::join(warnings, "; ");
  spdlog::info("local driver: {} revision {}: process limit {}", env, inst.key, inst.process_limit);
}

util::ChildPlacement LocalDriver::placement_for(const InstanceRecord& inst, const RunAs& as) const {
  util::ChildPlacement out;
  out.cgroup_proc_files = procs_files_of(inst);
  // Isolation off: the operator chose best effort, so a group that vanished (or a hierarchy
  // that refuses the move) does not stop the app; otherwise its limits must hold.
  out.cgroups_best_effort = m_opts.isolation == "off";
  const bool pids_cgroup = inst.cgroup.is_object() && inst.cgroup.value("pids_max", int64_t{0}) > 0;
  const int64_t pids_max = pids_max_for(inst);
  if (pids_max <= 0 || pids_cgroup) {
    return out;
  }
  if (as.uid >= 0) {
    // The environment's own uid: RLIMIT_NPROC counts exactly its processes (all its
    // revisions together), the same budget pids.max gives one revision.
    out.nproc_limit = pids_max;
  } else if (::geteuid() != 0) {
    // The server's own user: the limit counts all of that user's tasks (the server, other
    // environments, the user's shells), so it is set that many above what runs now: the app
    // can add at most pids_max. Counted at each start.
    out.nproc_limit = static_cast<int64_t>(tasks_of_uid(::getuid())) + pids_max;
  }
  // Root without isolation: RLIMIT_NPROC does not bind root; place_revision warned.
  return out;
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
  cmd.argv = sandboxed(argv, as, 0, {});
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
  // limits.concurrent_builds: wait for a slot (a cancel ends the wait).
  const int max_builds = m_ctx.max_concurrent_builds;
  if (max_builds > 0) {
    std::unique_lock<std::mutex> lk(m_build_mu);
    if (m_builds_running >= max_builds) {
      std::string wait = "waiting for a build slot: " + std::to_string(m_builds_running) +
                         " build(s) running, limits.concurrent_builds is " + std::to_string(max_builds);
      progress.step(wait);
      (void)log.append("system", wait);
    }
    while (m_builds_running >= max_builds) {
      if (progress.cancelled()) {
        return make_error(ErrorCode::cancelled, "build cancelled while waiting for a build slot");
      }
      m_build_cv.wait_for(lk, std::chrono::milliseconds(100));
    }
    ++m_builds_running;
  }
  struct Slot {
    LocalDriver* d;
    bool held;
    ~Slot() {
      if (held) {
        std::lock_guard<std::mutex> g(d->m_build_mu);
        --d->m_builds_running;
        d->m_build_cv.notify_one();
      }
    }
  } slot{this, max_builds > 0};
  std::deque<std::string> last;
  util::RunOptions ro;
  ro.timeout_ms = m_opts.build_timeout_ms;
  ro.cancel = progress.cancel_flag();
  ro.max_capture = 64 * 1024;
  // In the network sandbox the wrapper stays root and drops to the uid itself.
  ro.uid = as.untrusted ? -1 : as.uid;
  ro.gid = as.untrusted ? -1 : as.gid;
  ro.placement = placement_for(inst, as);
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
    return make_error(
        ErrorCode::timeout,
        common::with_cause("local.build did not finish within " + format_secs(m_opts.build_timeout_ms), cause));
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
  bool listening = false;
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "deploy cancelled while waiting for the health check");
    }
    if (util::path_exists(exit_file) || !shim_alive(inst)) {
      std::string what =
          util::path_exists(exit_file) ? exit_description(inst.dir) : "the app's shim exited unexpectedly";
      return make_error(ErrorCode::permanent,
                        common::with_cause(what + " before its health check on " + inst.health_path + " passed",
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
    std::string answer =
        resp ? "GET " + inst.health_path + " answered HTTP " + std::to_string(resp->status) : resp.error().message;
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
    // Fast at first: the time to healthy is what users wait for on every push. Within the
    // first second, a connect probe every millisecond in between: the health check runs
    // the moment the app listens, not at the next tick.
    int64_t elapsed = now - t0;
    int interval = elapsed < 1000 ? 5 : elapsed < 5000 ? 25 : 50;
    // Once it listens (or a relay in front of it does), the ticks alone.
    if (elapsed >= 1000 || listening) {
      std::this_thread::sleep_for(std::chrono::milliseconds(interval));
      continue;
    }
    for (int waited = 0; waited < interval && !listening; ++waited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      listening = util::accepts_connections(inst.port);
    }
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

  util::ChildPlacement placement = placement_for(inst, as); // place_revision() made the cgroups
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
  // In the sandbox, the database is reached through a relay of its port.
  sa.argv = sandboxed(argv, as, inst.port, database_ports(db_env));
  sa.uid = as.untrusted ? -1 : as.uid; // in the sandbox, its wrapper drops to the uid
  sa.gid = as.untrusted ? -1 : as.gid;
  util::Command cmd;
  cmd.argv = {m_helper_exe};
  for (auto& a : shim_command_arguments(sa)) {
    cmd.argv.push_back(std::move(a));
  }
  cmd.cwd = src;
  cmd.clear_env = true;
  cmd.env = std::move(app_env);
  util::SpawnOptions so;
  so.detach = true;
  so.new_session = true;
  so.placement = placement;

  progress.step("starting: " + c.local.start);
  (void)log.append("system", "starting revision " + inst.key + " (" + util::short_commit(inst.commit, 12) +
                                 "): " + c.local.start + " on port " + std::to_string(inst.port));
  (void)util::remove_all(util::path_join(inst.dir, "exit.json"));
  (void)util::remove_all(util::path_join(inst.dir, "app.pid"));
  // The startup boost: the app starts unthrottled; its cpu limit holds again from the
  // moment it is healthy or its start fails (below). Should the daemon die meanwhile, the
  // revision is still pending, and a pending revision is stopped at the next start.
  const int64_t cpu_quota = inst.cgroup.is_object() ? inst.cgroup.value("cpu_quota_us", int64_t{0}) : 0;
  const int64_t cpu_period = inst.cgroup.is_object() ? inst.cgroup.value("cpu_period_us", int64_t{100000}) : 100000;
  const bool boosted =
      m_opts.startup_cpu_boost && cpu_quota > 0 && Cgroups::set_cpu_quota(inst.cgroup_dirs, 0, cpu_period);
  auto end_boost = [&]() -> Expected<void> {
    if (!boosted) {
      return {};
    }
    if (auto r = Cgroups::set_cpu_quota(inst.cgroup_dirs, cpu_quota, cpu_period); !r) {
      return Unexpected(r.error().with_context("cannot put back the cpu limit after the startup boost"));
    }
    return {};
  };
  int64_t t0 = util::steady_ms();
  auto pid = util::spawn(cmd, so);
  if (!pid) {
    (void)end_boost();
    return make_error(ErrorCode::permanent, "cannot start the shim: " + pid.error().message);
  }
  inst.shim_pid = *pid;
  inst.shim_start_time = util::process_start_time(*pid).value_or(0);
  inst.started_at = wall_now_ms();
  state.pending = inst;
  IDP_TRY(save_env_state(p.state, state));

  progress.phase("start"); // the shim and the app spawned, recorded
  progress.step("waiting for GET " + inst.health_path);
  auto healthy = wait_healthy(inst, env, progress);
  inst.startup_ms = util::steady_ms() - t0;
  IDP_TRY(end_boost());
  IDP_TRY(healthy);
  progress.phase("healthy");
  if (state.route && state.route->wake && m_ctx.previews.wake_board) {
    // Woken: the request that woke it goes to the app now, before the route switch.
    m_ctx.previews.wake_board->post(env, "127.0.0.1:" + std::to_string(inst.port));
  }
  (void)log.append("system", "revision " + inst.key + " is healthy after " + std::to_string(inst.startup_ms) + " ms");
  return {};
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

void LocalDriver::retire(const std::string& env, const std::string& repo, const InstanceRecord& inst, bool remove_dir) {
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

void LocalDriver::remove_revision_dir(const std::string& repo, const std::string& dir) {
  if (!repo.empty()) {
    util::GitMirror mirror(util::path_join(m_home, "git"), repo);
    if (auto r = mirror.remove_checkout(util::path_join(dir, "src")); !r) {
      spdlog::warn("local driver: cannot remove the checkout in {}: {}", dir, r.error().message);
    }
  }
  (void)util::remove_all(dir); // best effort: the next start removes revision directories nothing uses
}

} // namespace idp::drivers::local
