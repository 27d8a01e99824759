#include "drivers/local/shim.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string_view>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "drivers/common/log_files.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

// Longer output without a newline is logged in pieces of this size.
constexpr size_t k_max_line = 64 * 1024;
// After the app exits, how long output of lingering children is still collected.
constexpr int64_t k_drain_ms = 2000;
constexpr int64_t k_retention_check_ms = 3600 * 1000;

bool parse_args(int argc, char** argv, ShimArgs& a) {
  int i = 1;
  if (i < argc && std::string_view(argv[i]) == "__shim") {
    ++i;
  }
  for (; i < argc; ++i) {
    std::string_view opt(argv[i]);
    if (opt == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "idp __shim: option %s needs a value\n", argv[i]);
      return false;
    }
    const char* val = argv[++i];
    // A whole number >= 0 that fits the field (util::parse_int: no wrap, no suffix).
    auto whole = [val](auto& field) {
      auto v = util::parse_int<std::remove_reference_t<decltype(field)>>(val, 0);
      if (v) {
        field = *v;
      }
      return v.has_value();
    };
    bool ok = true;
    if (opt == "--dir") {
      a.dir = val;
    } else if (opt == "--log-dir") {
      a.log_dir = val;
    } else if (opt == "--max-bytes") {
      ok = whole(a.max_bytes);
    } else if (opt == "--keep") {
      ok = whole(a.keep);
    } else if (opt == "--retention-days") {
      ok = whole(a.retention_days);
    } else if (opt == "--uid") {
      ok = whole(a.uid);
    } else if (opt == "--gid") {
      ok = whole(a.gid);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "idp __shim: bad option %s %s\n", argv[i - 1], val);
      return false;
    }
  }
  for (; i < argc; ++i) {
    a.argv.emplace_back(argv[i]);
  }
  if (a.dir.empty() || a.log_dir.empty() || a.argv.empty()) {
    std::fprintf(stderr, "usage: idp __shim --dir DIR --log-dir DIR [--max-bytes N] [--keep K] "
                         "[--retention-days R] -- COMMAND...\n");
    return false;
  }
  return true;
}

// Splits a stream's output into log records.
struct LineBuffer {
  std::string pending;

  template <typename Emit>
  void feed(std::string_view data, Emit&& emit) {
    pending.append(data);
    size_t start = 0;
    while (true) {
      size_t nl = pending.find('\n', start);
      if (nl == std::string::npos) {
        break;
      }
      emit(std::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    while (pending.size() >= k_max_line) {
      emit(std::string_view(pending).substr(0, k_max_line));
      pending.erase(0, k_max_line);
    }
  }
  template <typename Emit>
  void flush(Emit&& emit) {
    if (!pending.empty()) {
      emit(std::string_view(pending));
      pending.clear();
    }
  }
};

void write_exit_json(const std::string& dir, int code, int sig) {
  nlohmann::json j = {{"code", code}, {"signal", sig}, {"at", util::SystemClock().now_ms()}};
  (void)util::write_file_atomic(util::path_join(dir, "exit.json"), util::json_dump(j) + "\n");
}

} // namespace

std::vector<std::string> shim_command_arguments(const ShimArgs& a) {
  std::vector<std::string> out = {"__shim",
                                  "--dir",
                                  a.dir,
                                  "--log-dir",
                                  a.log_dir,
                                  "--max-bytes",
                                  std::to_string(a.max_bytes),
                                  "--keep",
                                  std::to_string(a.keep),
                                  "--retention-days",
                                  std::to_string(a.retention_days)};
  if (a.uid >= 0) {
    out.insert(out.end(), {"--uid", std::to_string(a.uid)});
  }
  if (a.gid >= 0) {
    out.insert(out.end(), {"--gid", std::to_string(a.gid)});
  }
  out.emplace_back("--");
  out.insert(out.end(), a.argv.begin(), a.argv.end());
  return out;
}

int run_shim(int argc, char** argv) {
  ShimArgs args;
  if (!parse_args(argc, argv, args)) {
    return 2;
  }
  common::LogFileOptions lopts;
  lopts.max_bytes = args.max_bytes;
  lopts.keep = args.keep;
  lopts.retention_days = args.retention_days;
  common::LogWriter log(args.log_dir, "app.log", lopts);
  log.apply_retention();

  // SIGTERM and SIGCHLD arrive through a signalfd; SIGINT/SIGHUP (a terminal going away,
  // a ^C meant for the daemon) are ignored; SIGPIPE must not kill us.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  int out_pipe[2];
  int err_pipe[2];
  int exec_pipe[2];
  if (sfd < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    (void)log.append("system", std::string("cannot start the app: ") + std::strerror(errno));
    write_exit_json(args.dir, 127, 0);
    return 127;
  }
  std::vector<char*> cargv;
  for (auto& s : args.argv) {
    cargv.push_back(s.data());
  }
  cargv.push_back(nullptr);

  pid_t app = ::fork();
  if (app == 0) {
    // Only async-signal-safe calls from here on. Same process group as the shim.
    sigset_t empty;
    sigemptyset(&empty);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGHUP, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    int e = args.uid >= 0 || args.gid >= 0 ? util::drop_privileges(args.uid, args.gid) : 0;
    if (e == 0) {
      ::execvp(cargv[0], cargv.data());
      e = errno;
    }
    ssize_t w = ::write(exec_pipe[1], &e, sizeof e);
    (void)w;
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(exec_pipe[1]);
  if (app < 0) {
    (void)log.append("system", std::string("cannot start the app: fork: ") + std::strerror(errno));
    write_exit_json(args.dir, 127, 0);
    return 127;
  }
  int exec_errno = 0;
  while (::read(exec_pipe[0], &exec_errno, sizeof exec_errno) < 0 && errno == EINTR) {
  }
  ::close(exec_pipe[0]);
  if (exec_errno != 0) {
    ::waitpid(app, nullptr, 0);
    (void)log.append("system", "cannot start " + util::quote(args.argv[0]) + ": " + std::strerror(exec_errno));
    write_exit_json(args.dir, 127, 0);
    return 127;
  }
  (void)util::write_file_atomic(util::path_join(args.dir, "app.pid"), std::to_string(app) + "\n");

  int fds[2] = {out_pipe[0], err_pipe[0]};
  const char* names[2] = {"stdout", "stderr"};
  LineBuffer bufs[2];
  bool exited = false;
  int status = 0;
  int64_t drain_deadline = 0;
  int64_t next_retention = util::steady_ms() + k_retention_check_ms;
  auto emit_to = [&](int i) {
    return [&log, &names, i](std::string_view line) {
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      (void)log.append(names[i], line);
    };
  };

  while (fds[0] >= 0 || fds[1] >= 0 || !exited) {
    if (exited && util::steady_ms() >= drain_deadline) {
      break; // children of the app still hold the pipes; stop collecting
    }
    struct pollfd pfds[3] = {{sfd, POLLIN, 0}, {fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    int timeout = exited ? 50 : 1000;
    int r = ::poll(pfds, 3, timeout);
    if (r < 0 && errno != EINTR) {
      break;
    }
    if (pfds[0].revents & POLLIN) {
      struct signalfd_siginfo si {};
      while (::read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGTERM && !exited) {
          ::kill(app, SIGTERM);
        }
      }
      // Reap the app, and anything else that ended up as our child.
      int st = 0;
      pid_t w;
      while ((w = ::waitpid(-1, &st, WNOHANG)) > 0) {
        if (w == app) {
          status = st;
          exited = true;
          drain_deadline = util::steady_ms() + k_drain_ms;
        }
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || !(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
        continue;
      }
      char buf[65536];
      ssize_t n = ::read(fds[i], buf, sizeof buf);
      if (n > 0) {
        bufs[i].feed(std::string_view(buf, static_cast<size_t>(n)), emit_to(i));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        bufs[i].flush(emit_to(i));
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
    if (util::steady_ms() >= next_retention) {
      log.apply_retention();
      next_retention = util::steady_ms() + k_retention_check_ms;
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (fds[i] >= 0) {
      bufs[i].flush(emit_to(i));
      ::close(fds[i]);
    }
  }
  int code = -1;
  int sig = 0;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
    (void)log.append("system", "process exited with code " + std::to_string(code));
  } else if (WIFSIGNALED(status)) {
    sig = WTERMSIG(status);
    (void)log.append("system", "process was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")");
  }
  write_exit_json(args.dir, code, sig);
  return sig ? 128 + sig : code;
}

} // namespace idp::drivers::local
