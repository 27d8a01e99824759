// `idp exec` on the local runtime: argv in the active revision's checkout with the app's
// environment (copied from the running app, or what a job run gets), as the environment's
// uid and in its revision's cgroup when isolated; exec() runs it to completion within
// k_exec_timeout_ms, start_exec() as an interactive session (pipes or a pseudo-terminal).

#include "drivers/common/interactive_exec.hpp"
#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/processes.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {

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
  IDP_TRY_ASSIGN(RunAs as, run_as(env.name, a.untrusted));
  ExecTarget target;
  // A fork's environment: the command runs in its network sandbox too (the wrapper drops
  // to the uid), so `idp exec` never gives its code the server's network.
  target.uid = as.untrusted ? -1 : as.uid;
  target.gid = as.untrusted ? -1 : as.gid;
  target.placement = placement_for(a, as); // the revision's process limit covers exec sessions too
  util::Command& cmd = target.cmd;
  cmd.argv = sandboxed(argv, as, 0, {});
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
  ro.placement = t.placement;
  IDP_TRY_ASSIGN(auto r, util::run(t.cmd, ro));
  return nlohmann::json{{"exit_code", r.exit_code},
                        {"signal", r.signal},
                        {"timed_out", r.timed_out},
                        {"stdout", r.out},
                        {"stderr", r.err}};
}

Expected<std::unique_ptr<ExecProcess>> LocalDriver::start_exec(const core::Environment& env, const ExecRequest& req) {
  IDP_TRY_ASSIGN(ExecTarget t, exec_command(env, req.argv));
  util::Command& cmd = t.cmd;
  if (req.tty && !cmd.env.count("TERM")) {
    cmd.env["TERM"] = "xterm-256color"; // what the client's terminal most likely speaks
  }
  util::InteractiveOptions io;
  io.uid = t.uid;
  io.gid = t.gid;
  io.placement = t.placement;
  io.tty = req.tty;
  io.rows = req.rows;
  io.cols = req.cols;
  return start_interactive_exec(cmd, io);
}

} // namespace idp::drivers::local
