// The child side of util::run and util::spawn (subprocess_exec.hpp), the switch of user
// (drop_privileges) and the PATH lookup (find_executable).

#include "util/subprocess_exec.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <map>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/fs.hpp"
#include "util/strings.hpp"

extern char** environ;

namespace idp::util {

namespace {

void close_from(int lowfd) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, lowfd, ~0U, 0) == 0) {
    return;
  }
#endif
  for (int fd = lowfd; fd < 65536; ++fd) {
    ::close(fd);
  }
}

// In a child: reports errno `err` of a setup step or of exec on the errpipe, then exits.
[[noreturn]] void report(int errpipe, int err, int code) {
  detail::ExecFailure f;
  f.err = err;
  ssize_t w = ::write(errpipe, &f, sizeof f);
  (void)w; // nothing more can be done in the child
  ::_exit(code);
}

} // namespace

int drop_privileges(int uid, int gid) {
  if (uid > 0) {
    // While still root: empty the bounding and ambient sets, so nothing run later (a
    // setuid-root file included, with no_new_privs below) regains a capability.
    for (int cap = 0; cap <= 63; ++cap) {
      ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); // EINVAL past the kernel's last cap: fine
    }
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  }
  // The system calls themselves, not glibc's setgid/setuid: those change every thread of
  // the process by signalling each one (setxid), and a child that shares its parent's
  // memory (util::spawn's start_child) would signal the parent's threads instead.
  if (gid >= 0) {
    gid_t g = static_cast<gid_t>(gid);
    if (::syscall(SYS_setgroups, 1, &g) != 0 || ::syscall(SYS_setgid, g) != 0) {
      return errno;
    }
  }
  if (uid >= 0 && ::syscall(SYS_setuid, static_cast<uid_t>(uid)) != 0) {
    return errno;
  }
  // From root to another uid, setuid() cleared the permitted and effective sets.
  if (uid > 0 && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return errno;
  }
  return 0;
}

std::optional<std::string> find_executable(std::string_view program) {
  if (program.find('/') != std::string_view::npos) {
    return ::access(std::string(program).c_str(), X_OK) == 0 ? std::optional<std::string>(std::string(program))
                                                             : std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (const auto& dir : split(p, ':')) {
    std::string candidate = path_join(dir.empty() ? "." : dir, program);
    if (::access(candidate.c_str(), X_OK) == 0 && !is_directory(candidate)) {
      return candidate;
    }
  }
  return std::nullopt;
}

namespace detail {

Expected<Prepared> prepare(const Command& cmd) {
  if (cmd.argv.empty()) {
    return make_error(ErrorCode::internal, "empty command");
  }
  auto path = find_executable(cmd.argv[0]);
  if (!path) {
    return make_error(ErrorCode::not_found, "program " + quote(cmd.argv[0]) + " not found on PATH");
  }
  Prepared p;
  p.path = *path;
  p.argv_storage = cmd.argv;
  std::map<std::string, std::string> env;
  if (!cmd.clear_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string_view::npos) {
        env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
      }
    }
  }
  for (const auto& k : cmd.unset_env) {
    env.erase(k);
  }
  for (const auto& [k, v] : cmd.env) {
    env[k] = v;
  }
  for (const auto& [k, v] : env) {
    p.env_storage.push_back(k + "=" + v);
  }
  for (auto& a : p.argv_storage) {
    p.argv.push_back(a.data());
  }
  p.argv.push_back(nullptr);
  for (auto& e : p.env_storage) {
    p.envp.push_back(e.data());
  }
  p.envp.push_back(nullptr);
  return p;
}

[[noreturn]] void child_exec(const Prepared& p, const Command& cmd, int in_fd, int out_fd, int err_fd, bool new_session,
                             pid_t join_group, int pdeathsig, const ChildPlacement& placement, int errpipe,
                             pid_t expected_parent, int uid, int gid, bool controlling_tty) {
  auto fail = [errpipe](int err, int step, int index, int code) {
    ExecFailure f;
    f.err = err;
    f.step = step;
    f.index = index;
    ssize_t w = ::write(errpipe, &f, sizeof f); // one write under PIPE_BUF: read whole
    (void)w;                                    // nothing more can be done in the child
    ::_exit(code);
  };
  // Handlers back to the default before any signal is let through: this child may share
  // the caller's memory (start_child), where a handler of the caller must not run.
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) {
      ::sigaction(s, &sa, nullptr);
    }
  }
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  if (new_session) {
    ::setsid();
  } else if (join_group > 0) {
    ::setpgid(0, join_group);
  }
  if (pdeathsig != 0) {
    ::prctl(PR_SET_PDEATHSIG, pdeathsig);
    // The parent may have died between fork and prctl: then the signal never comes.
    if (expected_parent > 0 && ::getppid() != expected_parent) {
      ::_exit(1);
    }
  }
  // The cgroups first, before anything of the child runs: a child left outside them would
  // run without the limits (pids.max) its caller counts on, so that fails the start.
  // The child has one thread here, so on a v1 hierarchy it enters by the group's `tasks`
  // file, writing "0" (itself): a thread moved by itself skips the kernel's global
  // threadgroup lock, whose write side waits out an RCU grace period (5-15 ms a start,
  // where cgroup.procs is written). A v2 group has no `tasks`: cgroup.procs, "0" too.
  const auto& cgroup_files = placement.cgroup_proc_files;
  for (size_t i = 0; i < cgroup_files.size(); ++i) {
    const std::string& procs = cgroup_files[i];
    int fd = -1;
    static constexpr char k_procs[] = "cgroup.procs";
    static constexpr size_t k_procs_len = sizeof k_procs - 1;
    char tasks[4096];
    if (procs.size() >= k_procs_len && procs.size() < sizeof tasks &&
        procs.compare(procs.size() - k_procs_len, k_procs_len, k_procs) == 0) {
      size_t dir_len = procs.size() - k_procs_len;
      std::memcpy(tasks, procs.data(), dir_len);
      std::memcpy(tasks + dir_len, "tasks", sizeof "tasks"); // with its NUL
      fd = ::open(tasks, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    }
    bool moved = false;
    int e = errno;
    if (fd >= 0) {
      moved = ::write(fd, "0", 1) == 1;
      e = errno;
      ::close(fd);
    }
    if (!moved && !placement.cgroups_best_effort) {
      fail(e != 0 ? e : EIO, ExecFailure::cgroup, static_cast<int>(i), 126);
    }
  }
  if (placement.nproc_limit > 0) {
    struct rlimit rl {};
    rl.rlim_cur = static_cast<rlim_t>(placement.nproc_limit);
    rl.rlim_max = static_cast<rlim_t>(placement.nproc_limit);
    if (::setrlimit(RLIMIT_NPROC, &rl) != 0) {
      fail(errno, ExecFailure::rlimit, 0, 126);
    }
  }
  // Keep errpipe open (it is CLOEXEC) above 2, where the dup2s below cannot replace it,
  // while closing everything else. Without it no failure could be reported: give up.
  int ep = errpipe >= 3 ? errpipe : ::fcntl(errpipe, F_DUPFD_CLOEXEC, 3);
  if (ep < 0) {
    ::_exit(127);
  }
  // Out of fds (EMFILE) is reported like a failed exec, not run with our stdio.
  int devnull = -1;
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    devnull = ::open("/dev/null", O_RDWR);
    if (devnull < 0) {
      report(ep, errno, 126);
    }
  }
  if (::dup2(in_fd >= 0 ? in_fd : devnull, 0) < 0 || ::dup2(out_fd >= 0 ? out_fd : devnull, 1) < 0 ||
      ::dup2(err_fd >= 0 ? err_fd : devnull, 2) < 0) {
    report(ep, errno, 126);
  }
  if (controlling_tty && new_session && ::ioctl(0, TIOCSCTTY, 0) != 0) {
    report(ep, errno, 126);
  }
  close_from(ep + 1);
  for (int fd = 3; fd < ep; ++fd) {
    ::close(fd);
  }
  // Drop privileges last (cgroup placement needs them); a changed uid clears the
  // parent-death signal, so it is set again.
  if (gid >= 0 || uid >= 0) {
    if (int e = drop_privileges(uid, gid); e != 0) {
      report(ep, e, 126);
    }
    if (pdeathsig != 0) {
      ::prctl(PR_SET_PDEATHSIG, pdeathsig);
      if (expected_parent > 0 && ::getppid() != expected_parent) {
        ::_exit(1);
      }
    }
  }
  if (!cmd.cwd.empty() && ::chdir(cmd.cwd.c_str()) != 0) {
    report(ep, errno, 126);
  }
  ::execve(p.path.c_str(), p.argv.data(), p.envp.data());
  report(ep, errno, 127);
}

ExecFailure read_exec_failure(int fd) {
  ExecFailure f;
  ssize_t n;
  do {
    n = ::read(fd, &f, sizeof f);
  } while (n < 0 && errno == EINTR);
  return n == sizeof f ? f : ExecFailure{};
}

Error exec_error(const Command& cmd, const ExecFailure& f, const ChildPlacement& placement) {
  std::string start = "cannot start " + quote(cmd.argv[0]);
  if (f.step == ExecFailure::cgroup) {
    const auto& files = placement.cgroup_proc_files;
    std::string file = f.index >= 0 && static_cast<size_t>(f.index) < files.size() ? files[f.index] : "?";
    return Error(ErrorCode::io_error, start + ": cannot enter cgroup " + quote(file) + ": " + std::strerror(f.err));
  }
  if (f.step == ExecFailure::rlimit) {
    return Error(ErrorCode::io_error, start + ": cannot set RLIMIT_NPROC to " + std::to_string(placement.nproc_limit) +
                                          ": " + std::strerror(f.err));
  }
  std::string what = f.err == ENOENT && !cmd.cwd.empty() ? start + " in " + quote(cmd.cwd) : start;
  return Error(f.err == ENOENT ? ErrorCode::not_found : ErrorCode::io_error, what + ": " + std::strerror(f.err));
}

} // namespace detail

} // namespace idp::util
