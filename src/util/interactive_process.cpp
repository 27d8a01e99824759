#include "util/interactive_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "util/proc.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::util {

namespace {

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

Error os_error(const std::string& what) { return Error(ErrorCode::io_error, what + ": " + std::strerror(errno)); }

} // namespace

Expected<std::unique_ptr<InteractiveProcess>> InteractiveProcess::start(const Command& cmd,
                                                                        const InteractiveOptions& opts) {
  std::unique_ptr<InteractiveProcess> p(new InteractiveProcess());
  p->m_tty = opts.tty;
  SpawnOptions so;
  so.new_session = true;
  so.detach = false; // ours to reap: its exit status is the answer
  so.uid = opts.uid;
  so.gid = opts.gid;
  so.placement = opts.placement;
  int child_fds[3] = {-1, -1, -1};
  auto close_child_fds = [&child_fds] {
    for (int& fd : child_fds) {
      close_fd(fd);
    }
  };
  if (opts.tty) {
    // posix_openpt/open with O_CLOEXEC, not openpty(): a program another thread starts at
    // the same moment must not inherit either side (it would keep the terminal open).
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) {
      return Unexpected(os_error("cannot open a pseudo-terminal"));
    }
    p->m_master = master; // closed by the destructor from here on
    char name[128];
    if (::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname_r(master, name, sizeof name) != 0) {
      return Unexpected(os_error("cannot set up the pseudo-terminal"));
    }
    int slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
      return Unexpected(os_error(std::string("cannot open ") + name));
    }
    struct winsize ws {};
    ws.ws_row = opts.rows;
    ws.ws_col = opts.cols;
    ::ioctl(slave, TIOCSWINSZ, &ws);
    if (opts.uid >= 0 && ::fchown(slave, static_cast<uid_t>(opts.uid), static_cast<gid_t>(-1)) != 0) {
      ::close(slave);
      return Unexpected(os_error("cannot hand the pseudo-terminal to the command's user"));
    }
    child_fds[0] = slave;
    p->m_out = master;
    p->m_out_open = true;
    so.stdin_fd = so.stdout_fd = so.stderr_fd = slave;
    so.controlling_tty = true;
  } else {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0) {
      return Unexpected(os_error("pipe"));
    }
    p->m_in = in[1];
    child_fds[0] = in[0];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      close_child_fds();
      return Unexpected(os_error("pipe"));
    }
    p->m_out = out[0];
    p->m_out_open = true;
    child_fds[1] = out[1];
    if (::pipe2(err, O_CLOEXEC) != 0) {
      close_child_fds();
      return Unexpected(os_error("pipe"));
    }
    p->m_err = err[0];
    p->m_err_open = true;
    child_fds[2] = err[1];
    so.stdin_fd = in[0];
    so.stdout_fd = out[1];
    so.stderr_fd = err[1];
    ::fcntl(p->m_in, F_SETFL, O_NONBLOCK);
  }
  auto pid = spawn(cmd, so);
  // Our copies of the child's ends: without closing them no end of file would ever come.
  close_child_fds();
  if (!pid) {
    return Unexpected(pid.error());
  }
  p->m_pid = *pid;
  if (opts.tty) {
    ::fcntl(p->m_master, F_SETFL, O_NONBLOCK);
  }
#ifdef SYS_pidfd_open
  p->m_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, p->m_pid, 0));
#endif
  return p;
}

InteractiveProcess::~InteractiveProcess() {
  if (m_pid > 0) {
    bool reaped = false;
    {
      std::lock_guard lock(m_exit_mutex);
      reaped = m_exit.has_value();
    }
    if (!reaped) {
      // The leader is unreaped (a zombie at worst), so its pid, the group's id, is not reused.
      ::kill(-m_pid, SIGKILL);
      int status = 0;
      while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  if (!m_tty) {
    close_fd(m_out);
  }
  close_fd(m_master);
  close_fd(m_err);
  close_fd(m_in);
  close_fd(m_pidfd);
}

std::vector<OutputChunk> InteractiveProcess::read(int64_t timeout_ms, size_t max_bytes) {
  std::vector<OutputChunk> out;
  struct pollfd pfds[3];
  int which[3];
  nfds_t n = 0;
  if (m_out_open) {
    pfds[n] = {m_out, POLLIN, 0};
    which[n++] = 1;
  }
  if (m_err_open) {
    pfds[n] = {m_err, POLLIN, 0};
    which[n++] = 2;
  }
  bool exited = false;
  {
    std::lock_guard lock(m_exit_mutex);
    exited = m_exit.has_value();
  }
  if (m_pidfd >= 0 && !exited) {
    pfds[n] = {m_pidfd, POLLIN, 0};
    which[n++] = 0;
  }
  int r = ::poll(pfds, n, static_cast<int>(std::max<int64_t>(timeout_ms, 0)));
  if (r <= 0) {
    return out;
  }
  size_t budget = max_bytes;
  for (nfds_t k = 0; k < n && budget > 0; ++k) {
    if (pfds[k].revents == 0 || which[k] == 0) {
      continue; // the pidfd only wakes the caller, who asks poll_exit
    }
    bool is_err = which[k] == 2;
    std::string buf(std::min<size_t>(budget, 64 * 1024), '\0');
    ssize_t got = ::read(is_err ? m_err : m_out, buf.data(), buf.size());
    if (got > 0) {
      buf.resize(static_cast<size_t>(got));
      budget -= static_cast<size_t>(got);
      out.push_back({is_err, std::move(buf)});
    } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
      // EIO on a terminal's master: every holder of the terminal has closed it. The master
      // also carries input and the size, so it stays open until the destructor.
      if (is_err) {
        m_err_open = false;
        close_fd(m_err);
      } else {
        m_out_open = false;
        if (!m_tty) {
          close_fd(m_out);
        }
      }
    }
  }
  return out;
}

bool InteractiveProcess::output_done() const { return !m_out_open && !m_err_open; }

Expected<void> InteractiveProcess::write_input(std::string_view data, int64_t timeout_ms) {
  std::lock_guard lock(m_input_mutex);
  int fd = m_tty ? m_master : m_in;
  if (m_input_closed || fd < 0) {
    return make_error(ErrorCode::io_error, "the command's input is closed");
  }
  int64_t deadline = steady_ms() + timeout_ms;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = write_without_sigpipe(fd, std::string_view(data).substr(off));
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0 && errno != EAGAIN) {
      return make_error(ErrorCode::io_error, "the command's input is closed");
    }
    int64_t left = deadline - steady_ms();
    if (left <= 0) {
      return make_error(ErrorCode::timeout, "the command is not reading its input");
    }
    struct pollfd pfd = {fd, POLLOUT, 0};
    ::poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
  }
  return {};
}

void InteractiveProcess::close_input() {
  std::lock_guard lock(m_input_mutex);
  if (m_input_closed) {
    return;
  }
  m_input_closed = true;
  if (!m_tty) {
    close_fd(m_in);
    return;
  }
  if (m_master >= 0) {
    // A terminal has no end of file to close: type the EOF character, as a user would.
    struct termios t {};
    char eof = ::tcgetattr(m_master, &t) == 0 && t.c_cc[VEOF] != 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
    ssize_t w = write_without_sigpipe(m_master, std::string_view(&eof, 1));
    (void)w; // a terminal nobody reads any more needs no EOF
  }
}

Expected<void> InteractiveProcess::resize(unsigned short rows, unsigned short cols) {
  if (!m_tty) {
    return make_error(ErrorCode::invalid_argument, "resize needs a terminal; the command runs without one");
  }
  std::lock_guard lock(m_input_mutex);
  struct winsize ws {};
  ws.ws_row = rows;
  ws.ws_col = cols;
  if (m_master < 0 || ::ioctl(m_master, TIOCSWINSZ, &ws) != 0) {
    return make_error(ErrorCode::io_error, "cannot resize the terminal: it is closed");
  }
  return {};
}

void InteractiveProcess::signal_group(int sig) {
  std::lock_guard lock(m_exit_mutex);
  if (!m_exit && m_pid > 0) {
    ::kill(-m_pid, sig);
  }
}

std::optional<ExitStatus> InteractiveProcess::poll_exit() {
  std::lock_guard lock(m_exit_mutex);
  if (m_exit) {
    return m_exit;
  }
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(m_pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != m_pid) {
    return std::nullopt;
  }
  // The leader is a zombie: its group id is still ours. What it left behind goes with it.
  ::kill(-m_pid, SIGKILL);
  int status = 0;
  while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
  }
  ExitStatus s;
  if (WIFEXITED(status)) {
    s.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    s.signal = WTERMSIG(status);
  }
  m_exit = s;
  return m_exit; // the pidfd stays open: the reader may be polling it; read() skips it now
}

} // namespace idp::util
