#pragma once
// Internal to util/subprocess*.cpp: what a child runs between fork and exec. prepare()
// resolves the program and builds argv/envp before fork (the child may only make
// async-signal-safe calls); child_exec() sets the child up and execs, reporting a failure
// as an errno on `errpipe`, which read_exec_errno() reads in the parent.

#include <string>
#include <sys/types.h>
#include <vector>

#include "util/expected.hpp"
#include "util/subprocess.hpp"

namespace idp::util::detail {

// Everything the child needs, prepared before fork (only async-signal-safe calls after).
struct Prepared {
  std::string path;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// not_found when the program is not on PATH; internal for an empty argv.
Expected<Prepared> prepare(const Command& cmd);

// What a child that could not exec reports on its errpipe: the errno and the step.
struct ExecFailure {
  enum Step : int { exec = 0, cgroup = 1, rlimit = 2 };
  int err = 0; // errno; 0 = exec succeeded (the pipe closed by CLOEXEC)
  int step = exec;
  int index = 0; // step cgroup: which of the cgroup.procs files
};

// In the child, after fork: default signal dispositions and an empty mask; a new session
// or process group; the parent-death signal (exits when the parent is already gone);
// the placement (cgroup.procs files: a failed move is reported unless best effort;
// RLIMIT_NPROC); stdio (-1 = /dev/null); every other fd closed; the user and group
// (drop_privileges); cwd; then execve. Never returns.
[[noreturn]] void child_exec(const Prepared& p, const Command& cmd, int in_fd, int out_fd, int err_fd, bool new_session,
                             pid_t join_group, int pdeathsig, const ChildPlacement& placement, int errpipe,
                             pid_t expected_parent = 0, int uid = -1, int gid = -1, bool controlling_tty = false);

// Reads what a failed child wrote; err 0 when exec succeeded (pipe closed by CLOEXEC).
ExecFailure read_exec_failure(int fd);

// "cannot start <program> [in <cwd>]: <strerror>", not_found for ENOENT, else io_error; for
// a failed cgroup move "cannot start <program>: cannot enter cgroup <file>: <strerror>", and
// for the process limit "cannot start <program>: cannot set RLIMIT_NPROC to N: <strerror>".
Error exec_error(const Command& cmd, const ExecFailure& f, const ChildPlacement& placement);

} // namespace idp::util::detail
