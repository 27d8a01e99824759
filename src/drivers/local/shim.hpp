#pragma once
// The shim (like conmon): the process the local driver starts for each revision. It runs
// the app as its child, owns the app's stdout/stderr, writes them to the environment log,
// and records the app's exit. It survives the daemon, so no output and no exit code is
// lost when the daemon dies.
//
//   idp __shim --dir <rev dir> --log-dir <logs dir> --max-bytes N --keep K
//              --retention-days R [--uid U --gid G] -- <argv...>
//
// The shim is started in its own session (it is the session and process-group leader) and
// the app stays in that group, so one group signal reaches both. It ignores SIGINT and
// SIGHUP; on SIGTERM it forwards TERM to the app and keeps logging until the app exits.
// Files it writes in <rev dir>: app.pid (the app's pid) once the app runs, and exit.json
// {"code":N,"signal":S,"at":ms} when it has exited (code -1 when killed by signal S).
// With --uid/--gid (a root daemon's isolated environment) only the app runs as that user
// (util::drop_privileges: no capabilities, no_new_privs); the shim stays the daemon's
// user, so the app can neither signal it nor write its log, app.pid or exit.json.

#include <cstdint>
#include <string>
#include <vector>

namespace idp::drivers::local {

struct ShimArgs {
  std::string dir;     // revision directory: app.pid and exit.json go here
  std::string log_dir; // the environment's logs directory (app.log)
  int64_t max_bytes = 10 * 1024 * 1024;
  int keep = 5;
  int retention_days = 0;
  int uid = -1; // the app's user and group (-1 = the shim's own)
  int gid = -1;
  std::vector<std::string> argv; // the app's command
};

// The arguments after the program name for starting a shim: "__shim --dir … -- argv…".
std::vector<std::string> shim_command_arguments(const ShimArgs& args);

// Entry point of `idp __shim`. argv[0] is the program; an optional "__shim" word may
// follow it. Returns the app's exit code (128+signal when killed), 2 for bad arguments,
// 127 when the app cannot be started.
int run_shim(int argc, char** argv);

} // namespace idp::drivers::local
