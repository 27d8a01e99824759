// idp login: check a token against a server, store it (keyring, else a 0600 file) and make
// that server the default for later commands.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <termios.h>
#include <unistd.h>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/credentials.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

constexpr size_t k_max_token_bytes = 4096;

// The terminal's settings while the prompt has echo off, for the signal handler to restore.
struct termios g_echo_termios;
volatile sig_atomic_t g_echo_off = 0;

void restore_echo_and_reraise(int sig) {
  if (g_echo_off) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_echo_termios);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Everything on stdin (bounded): `idp token create … | idp login`, or --token-stdin.
Expected<std::string> read_stdin_token() {
  std::string text;
  char buf[1024];
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return make_error(ErrorCode::io_error, "cannot read the token from stdin");
    }
    if (n == 0) {
      return text;
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > k_max_token_bytes) {
      return Unexpected(usage_error("the token on stdin is longer than " + std::to_string(k_max_token_bytes) +
                                    " bytes: expected one token like idp_…"));
    }
  }
}

// One line typed at a prompt on stderr, with the terminal's echo off.
Expected<std::string> prompt_token(const std::string& server) {
  struct termios t;
  bool echo_off = ::tcgetattr(STDIN_FILENO, &t) == 0;
  if (echo_off) {
    g_echo_termios = t;
    g_echo_off = 1;
    std::signal(SIGINT, restore_echo_and_reraise);
    std::signal(SIGTERM, restore_echo_and_reraise);
    std::signal(SIGHUP, restore_echo_and_reraise);
    t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
  }
  // The prompt only once echo is off: TCSAFLUSH drops what was typed before it, and a
  // token typed (or pasted) after it must be kept.
  std::fprintf(stderr, "token for %s: ", server.c_str());
  std::fflush(stderr);
  std::string line;
  char c;
  bool ok = true;
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || c == '\n') {
      ok = n >= 0;
      break;
    }
    if (line.size() < k_max_token_bytes + 1) {
      line.push_back(c);
    }
  }
  if (echo_off) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_echo_termios);
    g_echo_off = 0;
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    std::signal(SIGHUP, SIG_DFL);
  }
  std::fprintf(stderr, "\n"); // the user's Enter was not echoed
  if (!ok) {
    return make_error(ErrorCode::io_error, "cannot read the token from the terminal");
  }
  return line;
}

// A token goes into an HTTP header and a keyring: one line of visible ASCII. The message
// never repeats what was read.
Expected<std::string> check_token(const std::string& raw, const std::string& from) {
  std::string token = util::trim(raw);
  if (token.empty()) {
    return Unexpected(usage_error("no token on " + from + ": expected a token like idp_… (from 'idp token create')"));
  }
  if (token.size() > k_max_token_bytes) {
    return Unexpected(usage_error("the token on " + from + " is longer than " + std::to_string(k_max_token_bytes) +
                                  " bytes: expected one token like idp_…"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return Unexpected(
          usage_error("the token on " + from + " is not one word of printable ASCII: expected one token like idp_…"));
    }
  }
  return token;
}

} // namespace

CommandSpec login_command() {
  struct Options {
    std::string server;
    bool token_stdin = false;
  };
  return {"login", "store a token for a server (OS keyring, else a 0600 file) and make it the default server", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("--server", o->server,
                           "idp server URL, e.g. https://idp.example.com (default: IDP_SERVER, "
                           "then the last login, then the local daemon)");
            sub.add_flag("--token-stdin", o->token_stdin,
                         "read the token from stdin (the default when stdin is not a terminal; else a prompt)");
            return [o, &g]() -> Expected<int> {
              std::string server = normalize_server(discover_server(o->server.empty() ? g.server : o->server));
              if (!util::starts_with(server, "http://") && !util::starts_with(server, "https://")) {
                return Unexpected(
                    usage_error("--server: expected a URL like https://idp.example.com, got " + util::quote(server)));
              }
              bool from_stdin = o->token_stdin || !::isatty(STDIN_FILENO);
              IDP_TRY_ASSIGN(std::string raw, from_stdin ? read_stdin_token() : prompt_token(server));
              IDP_TRY_ASSIGN(std::string token, check_token(raw, from_stdin ? "stdin" : "the prompt"));

              // Ask the server who the token is before keeping it: a typo is never stored.
              ApiClient client(server, token);
              auto who = client.get("/api/v1/session");
              if (!who) {
                return Unexpected(who.error().with_context("login to " + server));
              }
              std::string identity = who->value("identity", "");
              std::string role = who->value("role", "");

              auto creds = Credentials::for_user();
              auto saved = creds.save(server, token);
              if (!saved) {
                return Unexpected(saved.error().with_context("cannot store the token for " + server));
              }
              if (saved->kind == "file") {
                std::string why =
                    saved->keychain_problem.empty()
                        ? "no session bus for a Secret Service keyring (DBUS_SESSION_BUS_ADDRESS is not set)"
                        : "the Secret Service keyring is not available (" + saved->keychain_problem + ")";
                std::fprintf(stderr, "idp: warning: %s: the token is stored in %s (mode 0600)\n", why.c_str(),
                             saved->where.c_str());
              }
              std::printf("logged in to %s as %s (%s)\n", server.c_str(), util::quote(identity).c_str(), role.c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
