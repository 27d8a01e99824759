// idp exec: run a command in an environment (in its checkout, with its environment), like
// `kubectl exec` / `docker exec`: output is printed as it comes, stdin is forwarded, -t gives
// the command a terminal, --timeout bounds it. The exit code is the command's.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <iostream>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <thread>
#include <unistd.h>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "core/ttl.hpp"
#include "util/base64.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

using nlohmann::json;

constexpr util::Millis k_max_timeout_ms = 24LL * 3600 * 1000; // as the server's limit
constexpr int k_exit_timed_out = 124;                         // as timeout(1)

// The terminal's settings before raw mode, for the signal handler that must restore them
// (a handler can reach nothing else); set only while a RawTerminal lives.
struct termios g_saved_termios;
volatile sig_atomic_t g_raw_active = 0;
// SIGWINCH's write end: the handler wakes the input thread, which sends the new size.
volatile sig_atomic_t g_winch_fd = -1;

extern "C" void on_fatal_signal(int sig) {
  if (g_raw_active) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

extern "C" void on_winch(int) {
  int saved = errno;
  if (g_winch_fd >= 0) {
    char c = 'w';
    ssize_t w = ::write(g_winch_fd, &c, 1);
    (void)w; // a full pipe already holds a wake-up
  }
  errno = saved;
}

// The CLI's terminal in raw mode (keys go to the command as typed, ^C included) for as
// long as this lives; restored on every way out: return, exception, fatal signal.
class RawTerminal {
public:
  RawTerminal() {
    if (::tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) {
      return;
    }
    struct termios raw = g_saved_termios;
    ::cfmakeraw(&raw);
    g_raw_active = 1;
    for (int sig : {SIGTERM, SIGHUP, SIGQUIT, SIGINT}) {
      ::signal(sig, on_fatal_signal);
    }
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  ~RawTerminal() {
    if (g_raw_active) {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_termios);
      g_raw_active = 0;
    }
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
};

std::pair<int, int> terminal_size() {
  struct winsize ws {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    return {ws.ws_row, ws.ws_col};
  }
  if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    return {ws.ws_row, ws.ws_col};
  }
  return {24, 80};
}

// Forwards the CLI's stdin to the session (and terminal resizes with -t) on its own
// thread until end of input, the session's end, or stop().
class InputForwarder {
public:
  InputForwarder(std::string base_url, std::string session_path, bool tty)
      : m_client(std::move(base_url)), m_path(std::move(session_path)) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) == 0) {
      m_stop_r = p[0];
      m_stop_w = p[1];
    }
    if (tty && ::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
      m_winch_r = p[0];
      m_winch_w = p[1];
      g_winch_fd = m_winch_w;
      ::signal(SIGWINCH, on_winch);
    }
    m_thread = std::thread([this] { run(); });
  }
  ~InputForwarder() { stop(); }
  InputForwarder(const InputForwarder&) = delete;
  InputForwarder& operator=(const InputForwarder&) = delete;

  void stop() {
    if (m_thread.joinable()) {
      char c = 's';
      ssize_t w = ::write(m_stop_w, &c, 1);
      (void)w; // the pipe is empty: this cannot fail
      m_thread.join();
    }
    if (m_winch_w >= 0) {
      ::signal(SIGWINCH, SIG_DFL);
      g_winch_fd = -1;
    }
    for (int* fd : {&m_stop_r, &m_stop_w, &m_winch_r, &m_winch_w}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }

private:
  void run() {
    // A background job (`idp exec … &`) leaves the terminal to the foreground: reading it
    // would stop the whole CLI (SIGTTIN).
    bool input_open = !::isatty(STDIN_FILENO) || ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
    std::vector<char> buf(64 * 1024);
    while (true) {
      struct pollfd pfds[3];
      nfds_t n = 0;
      pfds[n++] = {m_stop_r, POLLIN, 0};
      if (m_winch_r >= 0) {
        pfds[n++] = {m_winch_r, POLLIN, 0};
      }
      if (input_open) {
        pfds[n++] = {STDIN_FILENO, POLLIN, 0};
      }
      if (::poll(pfds, n, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      if (pfds[0].revents != 0) {
        return;
      }
      if (m_winch_r >= 0 && pfds[1].revents != 0) {
        char drain[64];
        while (::read(m_winch_r, drain, sizeof drain) > 0) {
        }
        auto [rows, cols] = terminal_size();
        (void)m_client.post(m_path + "/resize",
                            {{"rows", rows}, {"cols", cols}}); // a lost resize is redrawn by the next one
      }
      if (input_open && pfds[n - 1].revents != 0) {
        ssize_t got = ::read(STDIN_FILENO, buf.data(), buf.size());
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) {
          continue;
        }
        json body = got > 0
                        ? json{{"data", util::base64_encode(std::string_view(buf.data(), static_cast<size_t>(got)))}}
                        : json{{"eof", true}};
        if (got <= 0) {
          input_open = false;
        }
        // Refused once the command has ended (or closed its input): nothing more to send.
        if (!m_client.post(m_path + "/stdin", body)) {
          input_open = false;
        }
      }
    }
  }

  ApiClient m_client;
  std::string m_path;
  int m_stop_r = -1, m_stop_w = -1;
  int m_winch_r = -1, m_winch_w = -1;
  std::thread m_thread;
};

void write_all(FILE* f, const std::string& data) {
  std::fwrite(data.data(), 1, data.size(), f);
  std::fflush(f);
}

} // namespace

CommandSpec exec_command() {
  struct Options {
    std::string name;
    std::vector<std::string> argv;
    bool tty = false;
    std::string timeout = "60s";
    bool json = false;
  };
  return {
      "exec", "run a command in an environment: idp exec NAME -- CMD [ARGS...]", false,
      [](CLI::App& sub, const GlobalOptions& g) -> Runner {
        auto o = std::make_shared<Options>();
        sub.footer("Output is printed as the command writes it; stdin is forwarded to the command.\n"
                   "The exit code is the command's (128+N when killed by signal N, 124 when stopped at --timeout).");
        sub.add_option("name", o->name, "environment name")->required();
        sub.add_option("command", o->argv, "the command and its arguments (after --), run without a shell")->required();
        sub.add_flag("-t,--tty", o->tty,
                     "give the command a terminal (interactive programs; the local runtime); "
                     "needs a terminal on stdin");
        sub.add_option("--timeout", o->timeout,
                       "stop the command (its whole process group) after this long: 30s, 10m, 2h (1s to 24h)")
            ->type_name("DURATION")
            ->capture_default_str();
        sub.add_flag("--json", o->json,
                     "print the result as JSON at the end: exit_code, signal, timed_out, stdout, stderr");
        return [o, &g]() -> Expected<int> {
          auto timeout = core::parse_duration(o->timeout);
          if (!timeout || *timeout <= 0 || *timeout > k_max_timeout_ms) {
            return Unexpected(usage_error("--timeout: expected a duration from 1s to 24h like 30s, 10m or 2h, got " +
                                          util::quote(o->timeout)));
          }
          if (o->tty && o->json) {
            return Unexpected(usage_error("-t and --json do not go together: a terminal merges stdout and stderr"));
          }
          if (o->tty && !::isatty(STDIN_FILENO)) {
            return Unexpected(usage_error("-t needs a terminal, but stdin is not one; drop -t to pipe input to "
                                          "the command"));
          }
          ApiClient client(discover_server(g.server));
          std::string env_path = "/api/v1/environments/" + util::url_encode(o->name);
          json req = {{"argv", o->argv}, {"tty", o->tty}, {"timeout", o->timeout}};
          if (o->tty) {
            auto [rows, cols] = terminal_size();
            req["rows"] = rows;
            req["cols"] = cols;
          }
          IDP_TRY_ASSIGN(json session, client.post(env_path + "/exec/sessions", req));
          std::string session_path = env_path + "/exec/sessions/" + session.value("id", "");

          std::optional<RawTerminal> raw;
          if (o->tty) {
            raw.emplace();
          }
          std::optional<json> exit;
          std::string out_text, err_text;
          Expected<void> streamed;
          {
            InputForwarder input(client.base_url(), session_path, o->tty);
            streamed = client.stream_lines(session_path + "/stream", [&](const json& f) {
              if (f.value("event", "") == "exit") {
                exit = f;
                return false;
              }
              if (!f.contains("stream") || !f["stream"].is_string() || !f.contains("data") || !f["data"].is_string()) {
                return true; // pings, and frames of a newer server
              }
              auto data = util::base64_decode(f["data"].get<std::string>()).value_or("");
              bool is_err = f["stream"] == "stderr";
              if (o->json) {
                (is_err ? err_text : out_text) += data;
              } else {
                write_all(is_err ? stderr : stdout, data);
              }
              return true;
            });
          }
          raw.reset(); // the terminal is the user's again before any message
          if (!streamed) {
            return Unexpected(streamed.error());
          }
          if (!exit) {
            return make_error(ErrorCode::transient, "the connection to the server ended before the command did; "
                                                    "the server stopped it");
          }
          int code = exit->value("exit_code", -1);
          int sig = exit->value("signal", 0);
          bool timed_out = exit->value("timed_out", false);
          if (o->json) {
            std::cout << util::json_dump(json{{"exit_code", code},
                                              {"signal", sig},
                                              {"timed_out", timed_out},
                                              {"stdout", out_text},
                                              {"stderr", err_text}},
                                         2)
                      << "\n";
          }
          if (timed_out) {
            std::fprintf(stderr, "idp: error: the command ran longer than --timeout %s and was stopped\n",
                         core::format_ttl(*timeout).c_str());
            return k_exit_timed_out;
          }
          return code >= 0 ? code : 128 + sig;
        };
      }};
}

} // namespace idp::cli::commands
