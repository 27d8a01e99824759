#include "util/subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

extern char** environ;

namespace idp::util {

namespace {

// Everything the child needs, prepared before fork (only async-signal-safe calls after).
struct Prepared {
  std::string path;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

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
  if (gid >= 0) {
    gid_t g = static_cast<gid_t>(gid);
    if (::setgroups(1, &g) != 0 || ::setgid(g) != 0) {
      return errno;
    }
  }
  if (uid >= 0 && ::setuid(static_cast<uid_t>(uid)) != 0) {
    return errno;
  }
  // From root to another uid, setuid() cleared the permitted and effective sets.
  if (uid > 0 && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return errno;
  }
  return 0;
}

namespace {

// In the child, after fork: reset signals, set up fds, session, cgroups, user, cwd; exec.
[[noreturn]] void child_exec(const Prepared& p, const Command& cmd, int in_fd, int out_fd, int err_fd,
                             bool new_session, pid_t join_group, int pdeathsig,
                             const std::vector<std::string>& cgroup_files, int errpipe, pid_t expected_parent = 0,
                             int uid = -1, int gid = -1, bool controlling_tty = false) {
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) {
      ::sigaction(s, &sa, nullptr);
    }
  }
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
  for (const auto& f : cgroup_files) {
    int fd = ::open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[32];
      int n = 0;
      // itoa without malloc
      pid_t me = ::getpid();
      char tmp[32];
      int t = 0;
      do {
        tmp[t++] = static_cast<char>('0' + me % 10);
        me /= 10;
      } while (me > 0);
      while (t > 0) {
        buf[n++] = tmp[--t];
      }
      ssize_t w = ::write(fd, buf, static_cast<size_t>(n));
      (void)w;
      ::close(fd);
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
      int e = errno;
      ssize_t w = ::write(ep, &e, sizeof e);
      (void)w; // nothing more can be done in the child
      ::_exit(126);
    }
  }
  if (::dup2(in_fd >= 0 ? in_fd : devnull, 0) < 0 || ::dup2(out_fd >= 0 ? out_fd : devnull, 1) < 0 ||
      ::dup2(err_fd >= 0 ? err_fd : devnull, 2) < 0) {
    int e = errno;
    ssize_t w = ::write(ep, &e, sizeof e);
    (void)w; // nothing more can be done in the child
    ::_exit(126);
  }
  if (controlling_tty && new_session && ::ioctl(0, TIOCSCTTY, 0) != 0) {
    int e = errno;
    ssize_t w = ::write(ep, &e, sizeof e);
    (void)w;
    ::_exit(126);
  }
  close_from(ep + 1);
  for (int fd = 3; fd < ep; ++fd) {
    ::close(fd);
  }
  // Drop privileges last (cgroup placement needs them); a changed uid clears the
  // parent-death signal, so it is set again.
  if (gid >= 0 || uid >= 0) {
    if (int e = drop_privileges(uid, gid); e != 0) {
      ssize_t w = ::write(ep, &e, sizeof e);
      (void)w;
      ::_exit(126);
    }
    if (pdeathsig != 0) {
      ::prctl(PR_SET_PDEATHSIG, pdeathsig);
      if (expected_parent > 0 && ::getppid() != expected_parent) {
        ::_exit(1);
      }
    }
  }
  if (!cmd.cwd.empty() && ::chdir(cmd.cwd.c_str()) != 0) {
    int e = errno;
    ssize_t w = ::write(ep, &e, sizeof e);
    (void)w;
    ::_exit(126);
  }
  ::execve(p.path.c_str(), p.argv.data(), p.envp.data());
  int e = errno;
  ssize_t w = ::write(ep, &e, sizeof e);
  (void)w;
  ::_exit(127);
}

// Reads errno written by a failed exec; 0 when exec succeeded (pipe closed by CLOEXEC).
int read_exec_errno(int fd) {
  int e = 0;
  ssize_t n;
  do {
    n = ::read(fd, &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  return n == sizeof e ? e : 0;
}

Error exec_error(const Command& cmd, int e) {
  std::string what = e == ENOENT && !cmd.cwd.empty() ? "cannot start " + quote(cmd.argv[0]) + " in " + quote(cmd.cwd)
                                                     : "cannot start " + quote(cmd.argv[0]);
  return Error(e == ENOENT ? ErrorCode::not_found : ErrorCode::io_error, what + ": " + std::strerror(e));
}

} // namespace

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

namespace {

// An owned file descriptor, closed on every way out of run/spawn (error paths included).
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = std::exchange(other.m_fd, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return m_fd; }
  bool is_open() const { return m_fd >= 0; }
  void reset() {
    if (m_fd >= 0) {
      ::close(m_fd);
      m_fd = -1;
    }
  }

private:
  int m_fd = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

// Both ends close-on-exec, so a program another thread starts at the same time never
// inherits them (it would hold our pipe open and delay EOF).
Expected<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  return Pipe{Fd(fds[0]), Fd(fds[1])};
}

// A pidfd (readable once the process exits, close-on-exec) so that waiting for the exit
// after EOF is an event, not a polling loop; not open on kernels before 5.3.
Fd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return Fd(fd >= 0 ? fd : -1);
#else
  (void)pid;
  return Fd();
#endif
}

// True once `pid` has exited, without reaping it: while the zombie exists its pid cannot be
// reused, so signalling its process group stays safe until we reap it at the very end.
bool has_exited(pid_t pid) {
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    if (errno != EINTR) {
      return true; // ECHILD: nothing left to wait for
    }
  }
  return info.si_pid == pid;
}


// The wait status of `pid`; nullopt when it cannot be had (SIGCHLD ignored: auto-reaped).
std::optional<int> reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return std::nullopt;
    }
  }
  return status;
}

// One output stream of a run: the capture (its tail, at most max_capture bytes) and the
// split into lines for on_line, each at most max_line bytes (a longer run without a newline
// is delivered in pieces, so a program that never prints one cannot grow a buffer).
class OutputSink {
public:
  OutputSink(std::string& capture, const RunOptions& opts, bool is_stderr)
      : m_capture(capture), m_opts(opts), m_max_line(std::max<size_t>(opts.max_line, 1)), m_is_stderr(is_stderr) {}

  void add(const char* data, size_t n) {
    m_capture.append(data, n);
    // Trim in batches (when twice the cap), not at every read: erasing the front of a
    // 16 MiB string per 64 KiB read would be quadratic in the output size.
    if (m_capture.size() > m_opts.max_capture + std::max<size_t>(m_opts.max_capture, 64 * 1024)) {
      trim();
    }
    if (!m_opts.on_line) {
      return;
    }
    m_partial.append(data, n);
    size_t start = 0;
    while (start < m_partial.size()) {
      size_t nl = m_partial.find('\n', start);
      size_t end = nl == std::string::npos ? m_partial.size() : nl;
      if (end - start > m_max_line || (nl == std::string::npos && end - start == m_max_line)) {
        m_opts.on_line(std::string_view(m_partial).substr(start, m_max_line), m_is_stderr);
        start += m_max_line;
        continue;
      }
      if (nl == std::string::npos) {
        break;
      }
      m_opts.on_line(std::string_view(m_partial).substr(start, nl - start), m_is_stderr);
      start = nl + 1;
    }
    m_partial.erase(0, start);
  }

  // At EOF: the last line without a newline is delivered too.
  void finish() {
    trim();
    if (m_opts.on_line && !m_partial.empty()) {
      m_opts.on_line(m_partial, m_is_stderr);
    }
    m_partial.clear();
  }

private:
  void trim() {
    if (m_capture.size() > m_opts.max_capture) {
      m_capture.erase(0, m_capture.size() - m_opts.max_capture);
    }
  }

  std::string& m_capture;
  const RunOptions& m_opts;
  size_t m_max_line;
  bool m_is_stderr;
  std::string m_partial;
};

} // namespace

Expected<RunResult> run(const Command& cmd, const RunOptions& opts) {
  IDP_TRY_ASSIGN(Prepared p, prepare(cmd));
  IDP_TRY_ASSIGN(Pipe out, make_pipe());
  IDP_TRY_ASSIGN(Pipe err, make_pipe());
  IDP_TRY_ASSIGN(Pipe exec_status, make_pipe());
  Pipe in;
  if (opts.stdin_data) {
    IDP_TRY_ASSIGN(in, make_pipe());
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    child_exec(p, cmd, in.read.get(), out.write.get(), opts.merge_stderr ? out.write.get() : err.write.get(), true, 0,
               0, opts.cgroup_proc_files, exec_status.write.get(), 0, opts.uid, opts.gid);
  }
  out.write.reset();
  err.write.reset();
  exec_status.write.reset();
  in.read.reset();
  int exec_errno = read_exec_errno(exec_status.read.get());
  exec_status.read.reset();
  if (exec_errno != 0) {
    reap(pid);
    return Unexpected(exec_error(cmd, exec_errno));
  }
  Fd pidfd = open_pidfd(pid);

  RunResult result;
  std::string_view stdin_data = opts.stdin_data ? std::string_view(*opts.stdin_data) : std::string_view();
  size_t stdin_off = 0;
  if (in.write.is_open()) {
    ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
    if (stdin_data.empty()) {
      in.write.reset();
    }
  }
  Fd* reads[2] = {&out.read, &err.read};
  OutputSink sinks[2] = {OutputSink(result.out, opts, false), OutputSink(result.err, opts, true)};
  const int64_t deadline = opts.timeout_ms > 0 ? steady_ms() + opts.timeout_ms : 0;
  const int64_t grace_ms = std::max<int64_t>(opts.term_grace_ms, 0);
  int64_t kill_at = 0;
  bool term_sent = false;
  bool kill_sent = false;
  bool exited = false;

  // Until the child has exited AND both pipes are at EOF. The deadline and the cancel flag
  // are checked at every turn, also after EOF: a child that closed its output and lingers
  // is stopped like any other.
  while (true) {
    if (!exited && has_exited(pid)) {
      exited = true;
      pidfd.reset();
    }
    if (exited && !out.read.is_open() && !err.read.is_open()) {
      break;
    }
    int64_t now = steady_ms();
    bool cancel = opts.cancel && opts.cancel->load();
    if (!term_sent && ((deadline > 0 && now >= deadline) || cancel)) {
      result.timed_out = !cancel;
      result.cancelled = cancel;
      ::kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + grace_ms;
    }
    if (term_sent && !kill_sent && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_sent = true;
    }

    struct pollfd pfds[4];
    int idx[4];
    nfds_t n = 0;
    for (int i = 0; i < 2; ++i) {
      if (reads[i]->is_open()) {
        pfds[n] = {reads[i]->get(), POLLIN, 0};
        idx[n++] = i;
      }
    }
    if (in.write.is_open()) {
      pfds[n] = {in.write.get(), POLLOUT, 0};
      idx[n++] = 2;
    }
    if (!exited && pidfd.is_open()) {
      pfds[n] = {pidfd.get(), POLLIN, 0};
      idx[n++] = 3;
    }
    // The cancel flag cannot wake poll: look at it every 100 ms at least. Without a pidfd,
    // the exit of a child whose pipes are closed is only seen by asking, so ask more often.
    int64_t wait_ms = 100;
    if (!exited && !pidfd.is_open() && !out.read.is_open() && !err.read.is_open()) {
      wait_ms = 10;
    }
    if (!term_sent && deadline > 0) {
      wait_ms = std::min(wait_ms, deadline - now);
    }
    if (term_sent && !kill_sent) {
      wait_ms = std::min(wait_ms, kill_at - now);
    }
    int r = ::poll(pfds, n, static_cast<int>(std::max<int64_t>(wait_ms, 0)));
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      int e = errno;
      ::kill(-pid, SIGKILL);
      reap(pid);
      return make_error(ErrorCode::io_error, std::string("poll: ") + std::strerror(e));
    }
    for (nfds_t k = 0; k < n && r > 0; ++k) {
      if (pfds[k].revents == 0 || idx[k] == 3) {
        continue; // the pidfd only wakes us; has_exited decides
      }
      if (idx[k] == 2) {
        ssize_t w = write_without_sigpipe(in.write.get(), stdin_data.substr(stdin_off));
        if (w > 0) {
          stdin_off += static_cast<size_t>(w);
        }
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off >= stdin_data.size()) {
          in.write.reset();
        }
        continue;
      }
      int i = idx[k];
      char buf[65536];
      ssize_t got = ::read(reads[i]->get(), buf, sizeof buf);
      if (got > 0) {
        sinks[i].add(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        reads[i]->reset();
      }
    }
  }
  in.write.reset();
  sinks[0].finish();
  sinks[1].finish();
  // After a timeout or a cancel nothing of the group may run on (a grandchild that closed
  // its pipes, a tool that backgrounded a child): the rest of the grace, then KILL, and wait
  // until the group is empty. The leader is still an unreaped zombie here, so its pid (the
  // group id) cannot have been reused.
  if (term_sent) {
    if (!kill_sent) {
      wait_group_empty(pid, std::max<int64_t>(kill_at - steady_ms(), 0));
    }
    ::kill(-pid, SIGKILL);
    wait_group_empty(pid, k_kill_wait_ms);
  }
  auto status = reap(pid);
  if (status && WIFEXITED(*status)) {
    result.exit_code = WEXITSTATUS(*status);
  } else if (status && WIFSIGNALED(*status)) {
    result.signal = WTERMSIG(*status);
  }
  return result;
}

Expected<RunResult> run_checked(const Command& cmd, const RunOptions& opts) {
  IDP_TRY_ASSIGN(RunResult r, run(cmd, opts));
  if (r.ok()) {
    return r;
  }
  std::string name = cmd.argv.size() > 1 ? cmd.argv[0] + " " + cmd.argv[1] : cmd.argv[0];
  std::string detail = trim(tail_lines(r.err.empty() ? r.out : r.err, 5));
  if (r.timed_out) {
    return make_error(ErrorCode::timeout, name + " timed out after " + std::to_string(opts.timeout_ms / 1000) + "s" +
                                              (detail.empty() ? "" : ": " + detail));
  }
  if (r.cancelled) {
    return make_error(ErrorCode::cancelled, name + " was cancelled");
  }
  std::string how = r.signal ? "was killed by signal " + std::to_string(r.signal)
                             : "exited with code " + std::to_string(r.exit_code);
  return make_error(ErrorCode::permanent, name + " " + how + (detail.empty() ? "" : ": " + detail));
}

Expected<pid_t> spawn(const Command& cmd, const SpawnOptions& opts) {
  IDP_TRY_ASSIGN(Prepared p, prepare(cmd));
  IDP_TRY_ASSIGN(Pipe exec_status, make_pipe());
  IDP_TRY_ASSIGN(Pipe pid_pipe, make_pipe());
  pid_t self = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (!opts.detach) {
      child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group,
                 opts.parent_death_signal, opts.cgroup_proc_files, exec_status.write.get(), self, opts.uid, opts.gid,
                 opts.controlling_tty);
    }
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group, 0,
                 opts.cgroup_proc_files, exec_status.write.get(), 0, opts.uid, opts.gid, opts.controlling_tty);
    }
    ssize_t w = ::write(pid_pipe.write.get(), &grandchild, sizeof grandchild);
    (void)w; // the parent sees a short read and reports the failed fork
    ::_exit(grandchild > 0 ? 0 : 1);
  }
  exec_status.write.reset();
  pid_pipe.write.reset();
  pid_t target = pid;
  if (opts.detach) {
    reap(pid);
    pid_t gc = -1;
    ssize_t n;
    do {
      n = ::read(pid_pipe.read.get(), &gc, sizeof gc);
    } while (n < 0 && errno == EINTR);
    if (n != sizeof gc || gc <= 0) {
      return make_error(ErrorCode::io_error, "cannot start " + quote(cmd.argv[0]) + ": fork failed");
    }
    target = gc;
  }
  pid_pipe.read.reset();
  int e = read_exec_errno(exec_status.read.get());
  if (e != 0) {
    if (!opts.detach) {
      reap(pid);
    }
    return Unexpected(exec_error(cmd, e));
  }
  return target;
}

std::optional<int> wait_child(pid_t pid, int64_t timeout_ms) {
  int64_t deadline = steady_ms() + timeout_ms;
  while (true) {
    int status = 0;
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
      }
      return 128 + WTERMSIG(status);
    }
    if (w < 0 && errno == ECHILD) {
      return -1;
    }
    if (steady_ms() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ssize_t write_without_sigpipe(int fd, std::string_view data) {
  sigset_t pipe_set;
  sigset_t old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  sigset_t pending;
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t w = ::write(fd, data.data(), data.size());
  int e = errno;
  if (w < 0 && e == EPIPE && !was_pending) {
    struct timespec zero {};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = e;
  return w;
}

} // namespace idp::util
