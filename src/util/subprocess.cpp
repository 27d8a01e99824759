// Spawning and waiting: util::run (capture, deadline, cancel) and util::spawn (detached
// or not), and wait_child. What the child does between fork and exec is in
// subprocess_exec.cpp; /proc inspection in proc.cpp, free ports in ports.cpp.

#include "util/subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include "util/strings.hpp"
#include "util/subprocess_exec.hpp"
#include "util/time.hpp"

// Sanitized builds fork (start_child): their runtimes keep per-thread state that a child
// sharing our memory would share too.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IDP_CHILD_FORKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define IDP_CHILD_FORKS 1
#endif
#endif

namespace idp::util {

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

#ifndef IDP_CHILD_FORKS
// The child's stack while it shares our memory (child_exec needs a few KiB).
constexpr size_t k_child_stack_bytes = 256 * 1024;

template <typename Fn>
int run_child(void* fn) {
  (*static_cast<Fn*>(fn))();
  return 127; // fn execs or exits; never reached
}
#endif

// Starts `fn` in a child the way posix_spawn does: the child shares our memory and this
// thread waits until it execs or exits (CLONE_VM | CLONE_VFORK). fork() instead copies the
// page tables of the whole daemon, tens of milliseconds on a large one (and every write of
// the other threads faults until the child execs), on each deploy, wake and git command.
// `fn` runs on a stack of its own with every signal blocked (a handler of ours must never
// run in it); it may only make system calls (child_exec: no allocation, no lock) and must
// end in exec or _exit. Returns the child's pid, or -1 with errno. Under ASan or TSan a
// plain fork: CI's plain suite runs util_subprocess_test, the soak and the browser tests
// on the path below.
template <typename Fn>
pid_t start_child(Fn& fn) {
#ifdef IDP_CHILD_FORKS
  pid_t forked = ::fork();
  if (forked == 0) {
    fn();
  }
  return forked;
#else
  void* stack =
      ::mmap(nullptr, k_child_stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    return -1;
  }
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid =
      ::clone(&run_child<Fn>, static_cast<char*>(stack) + k_child_stack_bytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &fn);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::munmap(stack, k_child_stack_bytes);
  errno = err;
  return pid;
#endif
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
  IDP_TRY_ASSIGN(detail::Prepared p, detail::prepare(cmd));
  IDP_TRY_ASSIGN(Pipe out, make_pipe());
  IDP_TRY_ASSIGN(Pipe err, make_pipe());
  IDP_TRY_ASSIGN(Pipe exec_status, make_pipe());
  Pipe in;
  if (opts.stdin_data) {
    IDP_TRY_ASSIGN(in, make_pipe());
  }
  auto child = [&] {
    detail::child_exec(p, cmd, in.read.get(), out.write.get(), opts.merge_stderr ? out.write.get() : err.write.get(),
                       true, 0, 0, opts.placement, exec_status.write.get(), 0, opts.uid, opts.gid);
  };
  pid_t pid = start_child(child);
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("cannot start a process: ") + std::strerror(errno));
  }
  out.write.reset();
  err.write.reset();
  exec_status.write.reset();
  in.read.reset();
  detail::ExecFailure failed = detail::read_exec_failure(exec_status.read.get());
  exec_status.read.reset();
  if (failed.err != 0) {
    reap(pid);
    return Unexpected(detail::exec_error(cmd, failed, opts.placement));
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
  std::string how =
      r.signal ? "was killed by signal " + std::to_string(r.signal) : "exited with code " + std::to_string(r.exit_code);
  return make_error(ErrorCode::permanent, name + " " + how + (detail.empty() ? "" : ": " + detail));
}

Expected<pid_t> spawn(const Command& cmd, const SpawnOptions& opts) {
  IDP_TRY_ASSIGN(detail::Prepared p, detail::prepare(cmd));
  IDP_TRY_ASSIGN(Pipe exec_status, make_pipe());
  IDP_TRY_ASSIGN(Pipe pid_pipe, make_pipe());
  pid_t self = ::getpid();
  auto grandchild_exec = [&] {
    detail::child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group, 0,
                       opts.placement, exec_status.write.get(), 0, opts.uid, opts.gid, opts.controlling_tty);
  };
  auto child = [&] {
    if (!opts.detach) {
      detail::child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group,
                         opts.parent_death_signal, opts.placement, exec_status.write.get(), self, opts.uid, opts.gid,
                         opts.controlling_tty);
    }
    // Detached: the grandchild runs the program; this child exits once it has exec'd, so
    // the program is nobody's child here (init or the subreaper reaps it).
    pid_t grandchild = start_child(grandchild_exec);
    ssize_t w = ::write(pid_pipe.write.get(), &grandchild, sizeof grandchild);
    (void)w; // the parent sees a short read and reports the failed start
    ::_exit(grandchild > 0 ? 0 : 1);
  };
  pid_t pid = start_child(child);
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("cannot start a process: ") + std::strerror(errno));
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
  detail::ExecFailure failed = detail::read_exec_failure(exec_status.read.get());
  if (failed.err != 0) {
    if (!opts.detach) {
      reap(pid);
    }
    return Unexpected(detail::exec_error(cmd, failed, opts.placement));
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

} // namespace idp::util
