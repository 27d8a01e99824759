#pragma once
// Running programs: always argv, never a shell. Environment, cwd, timeouts, cancellation,
// process groups, cgroup placement. Spawning and waiting are in subprocess.cpp, the
// child's side (setup between fork and exec, drop_privileges, find_executable) in
// subprocess_exec.cpp, write_without_sigpipe in subprocess_io.cpp. /proc inspection
// (util/proc.hpp) and free ports (util/ports.hpp) are included for callers that expect
// them here.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "util/expected.hpp"
#include "util/ports.hpp"
#include "util/proc.hpp"

namespace idp::util {

struct Command {
  std::vector<std::string> argv;          // argv[0] is looked up on PATH when it has no '/'
  std::map<std::string, std::string> env; // set (or override) in the child's environment
  std::vector<std::string> unset_env;     // removed from the inherited environment
  bool clear_env = false;                 // start from an empty environment (plus `env`)
  std::string cwd;                        // "" = inherit
};

// Where a child goes before exec and what bounds its process count: the local driver's
// revisions, in their cgroups, or under RLIMIT_NPROC where no pids cgroup can be had.
struct ChildPlacement {
  std::vector<std::string> cgroup_proc_files; // "…/cgroup.procs" files the child enters before exec
  // A failed move into one of them fails the start (io_error naming the file and errno),
  // since the limits the caller counted on would not hold; with this set it is ignored
  // (the local driver's isolation "off": limits are best effort there).
  bool cgroups_best_effort = false;
  // RLIMIT_NPROC, soft and hard, set in the child before exec; 0 = unchanged. The kernel
  // counts it per real uid (every process of that user, whoever started it) and does not
  // apply it to root (CAP_SYS_RESOURCE): callers pick the value accordingly.
  int64_t nproc_limit = 0;
};

struct RunOptions {
  std::optional<std::string> stdin_data; // nullopt = /dev/null
  // 0 = none. On expiry (or cancel) the process group gets TERM, then KILL after
  // term_grace_ms; run returns once nothing of the group is left, also when the child had
  // already closed its output.
  int64_t timeout_ms = 0;
  int64_t term_grace_ms = 3000;
  size_t max_capture = 16 * 1024 * 1024; // bytes kept of each stream (the tail is kept)
  bool merge_stderr = false;             // stderr into the stdout capture
  // Called with each output line (stdout and stderr, without its newline) as it arrives,
  // from the calling thread. Used to stream a tool's output into an environment log.
  // A line longer than max_line is delivered in pieces of max_line bytes.
  std::function<void(std::string_view line, bool is_stderr)> on_line;
  size_t max_line = 64 * 1024;
  const std::atomic<bool>* cancel = nullptr; // set to true to stop the process (as a timeout)
  // Run as this user/group (-1 = unchanged; needs root): drop_privileges(uid, gid) in the
  // child before cwd and exec. A failed switch is an io_error like a failed exec.
  int uid = -1;
  int gid = -1;
  ChildPlacement placement; // cgroups it enters and its process limit
};

struct RunResult {
  int exit_code = -1; // -1 when killed by a signal
  int signal = 0;     // terminating signal, 0 if exited
  bool timed_out = false;
  bool cancelled = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0 && !timed_out && !cancelled; }
};

// Runs to completion and captures output. Error only when the program cannot be started
// (not_found for a missing executable); a non-zero exit is a RunResult, not an error.
Expected<RunResult> run(const Command& cmd, const RunOptions& opts = {});

// Convenience: run, and turn non-zero exit / timeout into an Error whose message names the
// program and carries the last lines of its stderr.
Expected<RunResult> run_checked(const Command& cmd, const RunOptions& opts = {});

struct SpawnOptions {
  int stdin_fd = -1;           // -1 = /dev/null
  int stdout_fd = -1;          // -1 = /dev/null
  int stderr_fd = -1;          // -1 = /dev/null
  bool new_session = true;     // setsid(): own session and process group (pgid == pid)
  pid_t join_group = 0;        // instead of new_session: join this process group
  bool detach = true;          // double-fork: reparented to init, survives and is never our zombie
  int parent_death_signal = 0; // with detach=false: signal the child gets when we die
  ChildPlacement placement;    // cgroups it enters and its process limit
  int uid = -1;                // as RunOptions::uid/gid: user and group to run as (-1 = unchanged)
  int gid = -1;
  // With new_session and stdin_fd a terminal: make it the child's controlling terminal
  // (TIOCSCTTY), so ^C typed into it signals the child's foreground group (idp exec -t).
  bool controlling_tty = false;
};

// In a child after fork (async-signal-safe; raw system calls, so only the calling thread
// changes: call it where that is the whole process): setgroups({gid}) and setgid when
// gid >= 0, setuid when uid >= 0; for a non-root uid also empties the capability bounding and
// ambient sets first and sets no_new_privs after. Returns 0, or the errno that failed.
int drop_privileges(int uid, int gid);

// Starts a long-running program and returns its pid. With detach=false the caller must
// reap it (wait_child).
Expected<pid_t> spawn(const Command& cmd, const SpawnOptions& opts = {});

// waitpid with a timeout (0 = no wait). Returns the exit code (128+signal when killed),
// nullopt when still running.
std::optional<int> wait_child(pid_t pid, int64_t timeout_ms);

// write() that fails with EPIPE instead of raising SIGPIPE (which would kill a caller that
// does not ignore it) when the reader is gone: the signal is blocked for this thread and the
// one the write raised is consumed. errno as write() leaves it.
ssize_t write_without_sigpipe(int fd, std::string_view data);

// Full path of `program` on PATH (or itself if it contains '/'); nullopt if not found.
std::optional<std::string> find_executable(std::string_view program);

} // namespace idp::util
