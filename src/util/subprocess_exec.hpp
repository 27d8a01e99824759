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

// In the child, after fork: default signal dispositions and an empty mask; a new session
// or process group; the parent-death signal (exits when the parent is already gone);
// the cgroup.procs files; stdio (-1 = /dev/null); every other fd closed; the user and
// group (drop_privileges); cwd; then execve. Never returns.
[[noreturn]] void child_exec(const Prepared& p, const Command& cmd, int in_fd, int out_fd, int err_fd, bool new_session,
                             pid_t join_group, int pdeathsig, const std::vector<std::string>& cgroup_files, int errpipe,
                             pid_t expected_parent = 0, int uid = -1, int gid = -1, bool controlling_tty = false);

// Reads errno written by a failed exec; 0 when exec succeeded (pipe closed by CLOEXEC).
int read_exec_errno(int fd);

// "cannot start <program> [in <cwd>]: <strerror>", not_found for ENOENT, else io_error.
Error exec_error(const Command& cmd, int e);

} // namespace idp::util::detail
