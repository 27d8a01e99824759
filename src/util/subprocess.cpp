#include "util/subprocess.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

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

// In the child, after fork: reset signals, set up fds, session, cgroups, user, cwd; exec.
[[noreturn]] void child_exec(const Prepared& p, const Command& cmd, int in_fd, int out_fd, int err_fd,
                             bool new_session, pid_t join_group, int pdeathsig,
                             const std::vector<std::string>& cgroup_files, int errpipe, pid_t expected_parent = 0,
                             int uid = -1, int gid = -1) {
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
  int devnull = ::open("/dev/null", O_RDWR);
  ::dup2(in_fd >= 0 ? in_fd : devnull, 0);
  ::dup2(out_fd >= 0 ? out_fd : devnull, 1);
  ::dup2(err_fd >= 0 ? err_fd : devnull, 2);
  // Keep errpipe open (it is CLOEXEC) above 2 while closing everything else.
  int ep = ::fcntl(errpipe, F_DUPFD_CLOEXEC, 3);
  close_from(ep + 1);
  for (int fd = 3; fd < ep; ++fd) {
    ::close(fd);
  }
  // Drop privileges last (cgroup placement needs them); a changed uid clears the
  // parent-death signal, so it is set again.
  if (gid >= 0 || uid >= 0) {
    gid_t g = static_cast<gid_t>(gid);
    if ((gid >= 0 && (::setgroups(1, &g) != 0 || ::setgid(g) != 0)) ||
        (uid >= 0 && ::setuid(static_cast<uid_t>(uid)) != 0)) {
      int e = errno;
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

Expected<RunResult> run(const Command& cmd, const RunOptions& opts) {
  IDP_TRY_ASSIGN(Prepared p, prepare(cmd));
  int out_pipe[2];
  int err_pipe[2];
  int in_pipe[2] = {-1, -1};
  int exec_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  if (opts.stdin_data && ::pipe2(in_pipe, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    child_exec(p, cmd, in_pipe[0], out_pipe[1], opts.merge_stderr ? out_pipe[1] : err_pipe[1], true, 0, 0, {},
               exec_pipe[1], 0, opts.uid, opts.gid);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  if (in_pipe[0] >= 0) {
    ::close(in_pipe[0]);
  }
  int exec_errno = read_exec_errno(exec_pipe[0]);
  ::close(exec_pipe[0]);
  if (exec_errno != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    if (in_pipe[1] >= 0) {
      ::close(in_pipe[1]);
    }
    ::waitpid(pid, nullptr, 0);
    return Unexpected(exec_error(cmd, exec_errno));
  }

  RunResult result;
  std::string stdin_rest = opts.stdin_data.value_or("");
  size_t stdin_off = 0;
  int in_fd = in_pipe[1];
  if (in_fd >= 0) {
    ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
    if (stdin_rest.empty()) {
      ::close(in_fd);
      in_fd = -1;
    }
  }
  int fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* bufs[2] = {&result.out, &result.err};
  std::string partial[2];
  int64_t deadline = opts.timeout_ms > 0 ? steady_ms() + opts.timeout_ms : 0;
  int64_t kill_at = 0;
  bool term_sent = false;

  auto emit_lines = [&](int i, bool flush) {
    if (!opts.on_line) {
      return;
    }
    size_t start = 0;
    while (true) {
      size_t nl = partial[i].find('\n', start);
      if (nl == std::string::npos) {
        break;
      }
      opts.on_line(std::string_view(partial[i]).substr(start, nl - start), i == 1);
      start = nl + 1;
    }
    partial[i].erase(0, start);
    if (flush && !partial[i].empty()) {
      opts.on_line(partial[i], i == 1);
      partial[i].clear();
    }
  };

  while (fds[0] >= 0 || fds[1] >= 0) {
    struct pollfd pfds[3];
    int n = 0;
    int idx[3];
    for (int i = 0; i < 2; ++i) {
      if (fds[i] >= 0) {
        pfds[n] = {fds[i], POLLIN, 0};
        idx[n++] = i;
      }
    }
    if (in_fd >= 0) {
      pfds[n] = {in_fd, POLLOUT, 0};
      idx[n++] = 2;
    }
    int r = ::poll(pfds, static_cast<nfds_t>(n), 100);
    if (r < 0 && errno != EINTR) {
      break;
    }
    for (int k = 0; k < n && r > 0; ++k) {
      if (pfds[k].revents == 0) {
        continue;
      }
      if (idx[k] == 2) {
        ssize_t w = ::write(in_fd, stdin_rest.data() + stdin_off, stdin_rest.size() - stdin_off);
        if (w > 0) {
          stdin_off += static_cast<size_t>(w);
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
          stdin_off = stdin_rest.size();
        }
        if (stdin_off >= stdin_rest.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      int i = idx[k];
      char buf[65536];
      ssize_t got = ::read(fds[i], buf, sizeof buf);
      if (got > 0) {
        bufs[i]->append(buf, static_cast<size_t>(got));
        if (bufs[i]->size() > opts.max_capture) {
          bufs[i]->erase(0, bufs[i]->size() - opts.max_capture);
        }
        if (opts.on_line) {
          partial[i].append(buf, static_cast<size_t>(got));
          emit_lines(i, false);
        }
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        emit_lines(i, true);
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
    int64_t now = steady_ms();
    bool cancel = opts.cancel && opts.cancel->load();
    if (!term_sent && ((deadline > 0 && now >= deadline) || cancel)) {
      result.timed_out = !cancel;
      result.cancelled = cancel;
      ::kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + 3000;
    }
    if (term_sent && kill_at > 0 && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_at = 0;
    }
  }
  if (in_fd >= 0) {
    ::close(in_fd);
  }
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, term_sent ? WNOHANG : 0);
    if (w == pid) {
      break;
    }
    if (w < 0 && errno != EINTR) {
      break;
    }
    if (w == 0) {
      // Output closed but the child lingers after TERM: escalate.
      if (steady_ms() >= kill_at && kill_at > 0) {
        ::kill(-pid, SIGKILL);
        kill_at = 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  // Leave nothing of the group behind (a tool that backgrounded a child).
  if (term_sent) {
    ::kill(-pid, SIGKILL);
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
  int exec_pipe[2];
  int pid_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0 || ::pipe2(pid_pipe, O_CLOEXEC) != 0) {
    return make_error(ErrorCode::io_error, std::string("pipe: ") + std::strerror(errno));
  }
  pid_t self = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    return make_error(ErrorCode::io_error, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (!opts.detach) {
      child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group,
                 opts.parent_death_signal, opts.cgroup_proc_files, exec_pipe[1], self, opts.uid, opts.gid);
    }
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      child_exec(p, cmd, opts.stdin_fd, opts.stdout_fd, opts.stderr_fd, opts.new_session, opts.join_group, 0,
                 opts.cgroup_proc_files, exec_pipe[1], 0, opts.uid, opts.gid);
    }
    ssize_t w = ::write(pid_pipe[1], &grandchild, sizeof grandchild);
    (void)w;
    ::_exit(grandchild > 0 ? 0 : 1);
  }
  ::close(exec_pipe[1]);
  ::close(pid_pipe[1]);
  pid_t target = pid;
  if (opts.detach) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    pid_t gc = -1;
    ssize_t n;
    do {
      n = ::read(pid_pipe[0], &gc, sizeof gc);
    } while (n < 0 && errno == EINTR);
    if (n != sizeof gc || gc <= 0) {
      ::close(pid_pipe[0]);
      ::close(exec_pipe[0]);
      return make_error(ErrorCode::io_error, "cannot start " + quote(cmd.argv[0]) + ": fork failed");
    }
    target = gc;
  }
  ::close(pid_pipe[0]);
  int e = read_exec_errno(exec_pipe[0]);
  ::close(exec_pipe[0]);
  if (e != 0) {
    if (!opts.detach) {
      ::waitpid(pid, nullptr, 0);
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

namespace {
// Fields of /proc/PID/stat after the ")" that closes comm.
std::optional<std::vector<std::string>> stat_fields(pid_t pid) {
  auto s = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!s) {
    return std::nullopt;
  }
  auto close = s->rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (auto& f : split(trim(s->substr(close + 1)), ' ')) {
    out.push_back(f);
  }
  return out; // out[0] = state (field 3), out[k] = field k+3
}
} // namespace

bool process_alive(pid_t pid) {
  if (pid <= 0) {
    return false;
  }
  auto f = stat_fields(pid);
  return f && !f->empty() && (*f)[0] != "Z" && (*f)[0] != "X";
}

std::optional<uint64_t> process_start_time(pid_t pid) {
  auto f = stat_fields(pid);
  if (!f || f->size() < 20 || (*f)[0] == "Z") {
    return std::nullopt;
  }
  return std::stoull((*f)[19]);
}

std::optional<pid_t> process_group_of(pid_t pid) {
  auto f = stat_fields(pid);
  if (!f || f->size() < 3) {
    return std::nullopt;
  }
  return static_cast<pid_t>(std::stol((*f)[2]));
}

std::optional<std::string> process_env_value(pid_t pid, std::string_view key) {
  auto s = read_file("/proc/" + std::to_string(pid) + "/environ");
  if (!s) {
    return std::nullopt;
  }
  std::string prefix = std::string(key) + "=";
  size_t start = 0;
  while (start < s->size()) {
    size_t end = s->find('\0', start);
    if (end == std::string::npos) {
      end = s->size();
    }
    std::string_view kv(s->data() + start, end - start);
    if (starts_with(kv, prefix)) {
      return std::string(kv.substr(prefix.size()));
    }
    start = end + 1;
  }
  return std::nullopt;
}

namespace {
template <typename Pred> std::vector<pid_t> scan_proc(Pred pred) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) {
    return out;
  }
  pid_t self = ::getpid();
  while (auto* ent = ::readdir(d)) {
    char* end = nullptr;
    long v = std::strtol(ent->d_name, &end, 10);
    if (!end || *end != '\0' || v <= 0 || v == self) {
      continue;
    }
    pid_t pid = static_cast<pid_t>(v);
    if (pred(pid) && process_alive(pid)) {
      out.push_back(pid);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}
} // namespace

std::vector<pid_t> find_processes_with_env(std::string_view key, std::string_view value) {
  return scan_proc([&](pid_t pid) {
    auto v = process_env_value(pid, key);
    return v && *v == value;
  });
}

std::vector<pid_t> find_processes_with_env_prefix(std::string_view key, std::string_view prefix) {
  return scan_proc([&](pid_t pid) {
    auto v = process_env_value(pid, key);
    return v && starts_with(*v, prefix);
  });
}

std::vector<pid_t> processes_in_group(pid_t pgid) {
  return scan_proc([&](pid_t pid) {
    auto g = process_group_of(pid);
    return g && *g == pgid;
  });
}

bool terminate_group(pid_t pgid, int64_t grace_ms) {
  if (pgid <= 1) {
    return true;
  }
  if (::kill(-pgid, SIGTERM) != 0 && errno == ESRCH) {
    return processes_in_group(pgid).empty();
  }
  int64_t deadline = steady_ms() + grace_ms;
  while (steady_ms() < deadline) {
    if (processes_in_group(pgid).empty()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pgid, SIGKILL);
  int64_t kill_deadline = steady_ms() + 5000;
  while (steady_ms() < kill_deadline) {
    if (processes_in_group(pgid).empty()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return processes_in_group(pgid).empty();
}

bool terminate_processes(const std::vector<pid_t>& pids, int64_t grace_ms) {
  for (pid_t p : pids) {
    ::kill(p, SIGTERM);
  }
  auto all_gone = [&] {
    return std::none_of(pids.begin(), pids.end(), [](pid_t p) { return process_alive(p); });
  };
  int64_t deadline = steady_ms() + grace_ms;
  while (steady_ms() < deadline) {
    if (all_gone()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (pid_t p : pids) {
    if (process_alive(p)) {
      ::kill(p, SIGKILL);
    }
  }
  int64_t kill_deadline = steady_ms() + 5000;
  while (steady_ms() < kill_deadline && !all_gone()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return all_gone();
}

Expected<int> find_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return make_error(ErrorCode::io_error, std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return make_error(ErrorCode::io_error, std::string("bind: ") + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

} // namespace idp::util
