#include "drivers/local/netns_sandbox.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <map>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sched.h>
#include <set>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

extern char** environ;

namespace idp::drivers::local {

namespace {

constexpr int k_exit_usage = 2;
constexpr int k_exit_sandbox = 126;
constexpr int k_exit_start = 127;
// Relayed connections at once, all relays together: each is one thread.
constexpr int k_max_connections = 256;
constexpr size_t k_relay_buffer = 64 * 1024; // per direction
constexpr size_t k_max_head = 16 * 1024;     // a proxy request's head
constexpr int64_t k_head_timeout_ms = 30000;
constexpr int64_t k_connect_timeout_ms = 10000;

void say(const std::string& msg) { std::fprintf(stderr, "idp __netns: %s\n", msg.c_str()); }

// Ends the wrapper at once: relay threads may be blocked anywhere, and nothing of ours
// needs a destructor (the namespace goes with its last process and fd). No stdio flush:
// stderr is unbuffered and stdout unused, and a relay thread may hold stderr's lock.
[[noreturn]] void finish(int code) { ::_exit(code); }

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  Fd(Fd&& o) noexcept : m_fd(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset(o.release());
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return m_fd; }
  explicit operator bool() const { return m_fd >= 0; }
  int release() {
    int fd = m_fd;
    m_fd = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
    m_fd = fd;
  }

private:
  int m_fd = -1;
};

// --- Host names, rules and requests ---

// Lowercase, without one trailing dot ("Registry.NPMJS.org." is "registry.npmjs.org").
std::string normalize_host(std::string_view host) {
  std::string h = util::to_lower(host);
  if (h.size() > 1 && h.back() == '.') {
    h.pop_back();
  }
  return h;
}

bool is_ip_literal(const std::string& host) {
  in_addr a4{};
  in6_addr a6{};
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// An IP literal, or one of the other numeric forms getaddrinfo takes for IPv4 without DNS
// (inet_aton: "127.1", "0x7f.1", "2130706433"), which no wildcard may match.
bool is_numeric_host(const std::string& host) {
  in_addr a4{};
  return is_ip_literal(host) || ::inet_aton(host.c_str(), &a4) != 0;
}

// A DNS name (letters, digits, '-', '_', '.') or an IPv6 literal: nothing that could end a
// header line or a log line.
bool valid_host(const std::string& host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  if (host.find(':') != std::string::npos) {
    in6_addr a6{};
    return ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
  }
  for (char c : host) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return host.front() != '.' && host.find("..") == std::string::npos;
}

struct HostPort {
  std::string host;
  int port = 0; // 0 = none given
};

// "host", "host:port", "[v6]", "[v6]:port", or a bare IPv6 address (no port).
std::optional<HostPort> split_host_port(std::string_view text) {
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    hp.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return std::nullopt;
      }
      port = rest.substr(1);
      if (port.empty()) {
        return std::nullopt;
      }
    }
    if (hp.host.find(':') == std::string::npos) {
      return std::nullopt; // brackets are for IPv6 only
    }
  } else {
    size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      hp.host = std::string(text.substr(0, colon));
      port = text.substr(colon + 1);
      if (port.empty()) {
        return std::nullopt;
      }
    } else {
      hp.host = std::string(text);
    }
  }
  if (!port.empty()) {
    auto p = util::parse_int<int>(port, 1, 65535);
    if (!p) {
      return std::nullopt;
    }
    hp.port = *p;
  }
  return hp;
}

// The host as it goes into a Host header or a message: IPv6 in brackets.
std::string host_for_display(const std::string& host, int port) {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port > 0 ? h + ":" + std::to_string(port) : h;
}

bool is_token_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-'; }

// --- Sockets ---

// A listening TCP socket on 127.0.0.1:port in the calling thread's network namespace;
// -errno on failure.
int listen_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  int one = 1;
  // Best effort: it only lets a restarted wrapper rebind a port in TIME_WAIT at once.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

// poll() on one fd until `deadline` (steady ms); the poll result (0 = timed out).
int poll_until(pollfd& p, int64_t deadline) {
  while (true) {
    int64_t left = deadline - util::steady_ms();
    if (left <= 0) {
      return 0;
    }
    int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (r != 0 && !(r < 0 && errno == EINTR)) {
      return r;
    }
  }
}

// A connected non-blocking socket, or -errno (ETIMEDOUT after `deadline`).
int connect_until(const sockaddr* sa, socklen_t len, int64_t deadline) {
  int fd = ::socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return -errno;
  }
  if (::connect(fd, sa, len) == 0) {
    return fd;
  }
  if (errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  pollfd p{fd, POLLOUT, 0};
  int r = poll_until(p, deadline);
  int err = 0;
  socklen_t elen = sizeof err;
  if (r <= 0) {
    err = r == 0 ? ETIMEDOUT : errno;
  } else if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
    err = errno;
  }
  if (err != 0) {
    ::close(fd);
    return -err;
  }
  return fd;
}

// 127.0.0.1:port, then [::1]:port (an app may listen on either), in the calling thread's
// namespace; -errno of the last attempt.
int connect_loopback(int port) {
  int64_t deadline = util::steady_ms() + k_connect_timeout_ms;
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(static_cast<uint16_t>(port));
  v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = connect_until(reinterpret_cast<sockaddr*>(&v4), sizeof v4, deadline);
  if (fd >= 0) {
    return fd;
  }
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(static_cast<uint16_t>(port));
  v6.sin6_addr = in6addr_loopback;
  int fd6 = connect_until(reinterpret_cast<sockaddr*>(&v6), sizeof v6, deadline);
  return fd6 >= 0 ? fd6 : fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        if (poll_until(p, util::steady_ms() + k_connect_timeout_ms) > 0) {
          continue;
        }
      }
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Copies bytes both ways until both directions ended, then closes both. An EOF is passed
// on as a half-close (shutdown SHUT_WR); an error ends both directions. Each direction
// holds at most one read (k_relay_buffer) that the other side has not taken yet, so a
// slow reader slows its writer down rather than growing memory. `a_to_b` is sent to b
// first (what the proxy already read of the client's stream).
void relay(Fd a, Fd b, std::string a_to_b = {}) {
  for (int fd : {a.get(), b.get()}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  struct Direction {
    int from;
    int to;
    std::string data; // read from `from`, not yet written to `to` (from `off` on)
    size_t off = 0;
    bool eof = false;
    bool shut = false;
  };
  Direction dirs[2] = {{a.get(), b.get(), std::move(a_to_b)}, {b.get(), a.get(), {}}};
  std::vector<char> buf(k_relay_buffer);
  bool failed = false;
  while (!failed && !(dirs[0].shut && dirs[1].shut)) {
    // pfd[i] is dirs[i].from, which is dirs[1 - i].to.
    pollfd pfd[2] = {{a.get(), 0, 0}, {b.get(), 0, 0}};
    for (int i = 0; i < 2; ++i) {
      if (!dirs[i].eof && dirs[i].data.empty()) {
        pfd[i].events |= POLLIN;
      }
      if (!dirs[i].data.empty()) {
        pfd[1 - i].events |= POLLOUT;
      }
    }
    for (auto& p : pfd) {
      if (p.events == 0) {
        p.fd = -1; // nothing wanted: a hung-up fd would wake poll() forever
      }
    }
    if (::poll(pfd, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (int i = 0; i < 2 && !failed; ++i) {
      Direction& d = dirs[i];
      if (!d.data.empty() && (pfd[1 - i].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = ::send(d.to, d.data.data() + d.off, d.data.size() - d.off, MSG_NOSIGNAL);
        if (n > 0) {
          d.off += static_cast<size_t>(n);
          if (d.off == d.data.size()) {
            d.data.clear();
            d.off = 0;
          }
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          failed = true;
        }
      }
      if (!d.eof && d.data.empty() && (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))) {
        ssize_t n = ::recv(d.from, buf.data(), buf.size(), 0);
        if (n > 0) {
          d.data.assign(buf.data(), static_cast<size_t>(n));
        } else if (n == 0) {
          d.eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          failed = true;
        }
      }
      if (d.eof && d.data.empty() && !d.shut) {
        ::shutdown(d.to, SHUT_WR); // a peer already gone shows in the next poll or send
        d.shut = true;
      }
    }
  }
}

// --- The wrapper's shared state ---

struct Sandbox {
  int nsfd = -1; // the child's network namespace
  std::vector<EgressRule> rules;
  std::atomic<int> connections{0};
};

// Runs `handle(fd)` on a thread of its own when fewer than k_max_connections are being
// relayed; otherwise (or when no thread can be had) the connection is closed at once.
void start_connection(Sandbox& sb, Fd fd, std::function<void(Fd)> handle) {
  if (sb.connections.fetch_add(1) >= k_max_connections) {
    sb.connections.fetch_sub(1);
    return;
  }
  try {
    int raw = fd.release();
    std::thread([&sb, raw, handle = std::move(handle)] {
      try {
        handle(Fd(raw));
      } catch (const std::exception& e) {
        say(std::string("relay: caught an exception, carrying on: ") + e.what());
      } catch (...) {
        say("relay: caught an exception, carrying on");
      }
      sb.connections.fetch_sub(1);
    }).detach();
  } catch (const std::exception& e) {
    say(std::string("cannot start a relay thread: ") + e.what());
    sb.connections.fetch_sub(1);
  }
}

// Accepts forever on `listener` (a thread of its own), handing each connection over.
void accept_loop(Sandbox& sb, int listener, const std::function<void(Fd)>& handle) {
  while (true) {
    try {
      int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        start_connection(sb, Fd(c), handle);
      } else if (errno != EINTR && errno != ECONNABORTED) {
        // Out of fds or memory: wait a little for relays to end rather than spin.
        ::poll(nullptr, 0, 100);
      }
    } catch (const std::exception& e) {
      say(std::string("listener: caught an exception, carrying on: ") + e.what());
    }
  }
}

void answer(int fd, int status, std::string_view reason, const std::string& body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                  "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n" + body;
  (void)send_all(fd, r); // the client may be gone already: nothing else to tell it
}

// Loopback, unspecified and link-local addresses (169.254.169.254 is the cloud metadata
// service): reached through the proxy only when the rule names the IP itself.
bool is_local_address(const sockaddr* sa) {
  auto v4_local = [](uint32_t host_order) {
    uint32_t first = host_order >> 24;
    return first == 127 || first == 0 || (host_order & 0xffff0000u) == 0xa9fe0000u;
  };
  if (sa->sa_family == AF_INET) {
    return v4_local(ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      uint32_t v4 = 0;
      std::memcpy(&v4, &a.s6_addr[12], 4);
      return v4_local(ntohl(v4));
    }
    return IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_LINKLOCAL(&a);
  }
  return true;
}

struct Upstream {
  Fd fd;
  int status = 0; // the HTTP status to answer when fd is not set
  std::string why;
};

// Resolves and connects from the host namespace (the calling thread's).
Upstream connect_upstream(const std::string& host, int port) {
  Upstream up;
  bool literal = is_ip_literal(host);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = literal ? AI_NUMERICHOST : 0;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    up.status = 502;
    up.why = "cannot resolve " + util::quote(host) + ": " + ::gai_strerror(rc);
    return up;
  }
  int64_t deadline = util::steady_ms() + k_connect_timeout_ms;
  int err = 0;
  bool refused_local = false;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (!literal && is_local_address(ai->ai_addr)) {
      refused_local = true;
      continue;
    }
    int fd = connect_until(ai->ai_addr, ai->ai_addrlen, deadline);
    if (fd >= 0) {
      up.fd.reset(fd);
      break;
    }
    err = -fd;
  }
  ::freeaddrinfo(res);
  if (!up.fd) {
    if (err == 0 && refused_local) {
      up.status = 403;
      up.why = util::quote(host_for_display(host, port)) +
               " resolves to a loopback or link-local address, which only an IP literal in the egress "
               "allowlist (server config forks.egress_allow) may name";
    } else {
      up.status = 502;
      up.why = "cannot connect to " + util::quote(host_for_display(host, port)) + ": " + std::strerror(err);
    }
  }
  return up;
}

// One connection to the egress proxy: read the request's head, check, connect, relay.
void serve_proxy_client(const Sandbox& sb, Fd client) {
  std::string got;
  size_t head_end = std::string::npos;
  int64_t deadline = util::steady_ms() + k_head_timeout_ms;
  char buf[4096];
  while (head_end == std::string::npos) {
    if (got.size() > k_max_head) {
      answer(client.get(), 431, "Request Header Fields Too Large", "the request head is over 16 KiB\n");
      return;
    }
    pollfd p{client.get(), POLLIN, 0};
    if (poll_until(p, deadline) <= 0) {
      return;
    }
    ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return;
    }
    got.append(buf, static_cast<size_t>(n));
    head_end = got.find("\r\n\r\n");
  }
  std::string leftover = got.substr(head_end + 4);
  auto req = parse_proxy_request(std::string_view(got).substr(0, head_end + 4));
  if (!req) {
    answer(client.get(), 400, "Bad Request", req.error().message + "\n");
    return;
  }
  std::string target = host_for_display(req->host, req->port);
  if (!egress_allowed(sb.rules, req->host, req->port)) {
    say("egress to " + util::quote(target) + " denied: not in forks.egress_allow");
    answer(client.get(), 403, "Forbidden",
           util::quote(target) +
               " is not in the untrusted profile's egress allowlist (server config forks.egress_allow)\n");
    return;
  }
  Upstream up = connect_upstream(normalize_host(req->host), req->port);
  if (!up.fd) {
    say("egress to " + util::quote(target) + ": " + up.why);
    answer(client.get(), up.status, up.status == 403 ? "Forbidden" : "Bad Gateway", up.why + "\n");
    return;
  }
  if (req->connect) {
    if (!send_all(client.get(), "HTTP/1.1 200 Connection established\r\n\r\n")) {
      return;
    }
    relay(std::move(client), std::move(up.fd), std::move(leftover));
  } else {
    relay(std::move(client), std::move(up.fd), req->origin_head + leftover);
  }
}

// --- The child ---

enum ChildStage : int { stage_unshare = 1, stage_loopback, stage_ready, stage_privileges, stage_parent, stage_exec };

struct ChildReport {
  int stage = 0;
  int err = 0;
};

// Brings `lo` of the calling process's network namespace up; 0 or errno.
int loopback_up() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    return errno;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  int e = 0;
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    e = errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
      e = errno;
    }
  }
  ::close(s);
  return e;
}

// Reads one report; false at EOF (the child exec'd or died without a word).
bool read_report(int fd, ChildReport& r) {
  ssize_t n;
  while ((n = ::read(fd, &r, sizeof r)) < 0 && errno == EINTR) {
  }
  return n == static_cast<ssize_t>(sizeof r);
}

// --- Arguments ---

void usage() {
  std::fprintf(stderr, "usage: idp __netns [--uid U --gid G] [--publish PORT]... [--forward PORT]... "
                       "[--allow HOST[:PORT]]... [--proxy-port P] -- COMMAND ARGS...\n");
}

bool parse_args(int argc, char** argv, NetnsArgs& a, std::vector<EgressRule>& rules) {
  int i = 1;
  if (i < argc && std::string_view(argv[i]) == "__netns") {
    ++i;
  }
  bool dashdash = false;
  for (; i < argc; ++i) {
    std::string_view opt(argv[i]);
    if (opt == "--") {
      ++i;
      dashdash = true;
      break;
    }
    if (opt != "--uid" && opt != "--gid" && opt != "--publish" && opt != "--forward" && opt != "--allow" &&
        opt != "--proxy-port") {
      say("unknown option " + util::quote(opt));
      usage();
      return false;
    }
    if (i + 1 >= argc) {
      say("option " + std::string(opt) + " needs a value");
      usage();
      return false;
    }
    std::string_view val(argv[++i]);
    bool ok = true;
    auto port = [&ok, val] {
      auto p = util::parse_int<int>(val, 1, 65535);
      ok = p.has_value();
      return p.value_or(0);
    };
    if (opt == "--uid" || opt == "--gid") {
      auto id = util::parse_int<int>(val, 0);
      ok = id.has_value();
      (opt == "--uid" ? a.uid : a.gid) = id.value_or(-1);
    } else if (opt == "--publish") {
      a.publish.push_back(port());
    } else if (opt == "--forward") {
      a.forward.push_back(port());
    } else if (opt == "--proxy-port") {
      a.proxy_port = port();
    } else {
      auto rule = parse_egress_rule(val);
      if (!rule) {
        say(rule.error().message);
        return false;
      }
      a.allow.emplace_back(val);
      rules.push_back(*rule);
    }
    if (!ok) {
      say("bad value for " + std::string(opt) + ": " + util::quote(val) +
          (opt == "--uid" || opt == "--gid" ? " (expected a whole number >= 0)" : " (expected a port, 1-65535)"));
      return false;
    }
  }
  for (; i < argc; ++i) {
    a.argv.emplace_back(argv[i]);
  }
  if (!dashdash || a.argv.empty()) {
    say("no command given after \"--\"");
    usage();
    return false;
  }
  if ((a.uid >= 0) != (a.gid >= 0)) {
    say("--uid and --gid go together (the command must not keep the caller's group)");
    return false;
  }
  // The publish and forward ports and the proxy's share the namespace's 127.0.0.1.
  std::set<int> seen;
  std::vector<int> all = a.publish;
  all.insert(all.end(), a.forward.begin(), a.forward.end());
  all.push_back(a.proxy_port);
  for (int p : all) {
    if (!seen.insert(p).second) {
      say("port " + std::to_string(p) +
          " is given twice (--publish, --forward and --proxy-port share the namespace's 127.0.0.1)");
      return false;
    }
  }
  return true;
}

// The caller's environment with the proxy variables set (and any inherited ones replaced).
std::vector<std::string> child_environment(int proxy_port) {
  std::string proxy = "http://127.0.0.1:" + std::to_string(proxy_port);
  const std::map<std::string, std::string> set = {{"HTTP_PROXY", proxy},
                                                  {"HTTPS_PROXY", proxy},
                                                  {"http_proxy", proxy},
                                                  {"https_proxy", proxy},
                                                  {"npm_config_proxy", proxy},
                                                  {"npm_config_https_proxy", proxy},
                                                  {"NO_PROXY", "localhost,127.0.0.1"},
                                                  {"no_proxy", "localhost,127.0.0.1"}};
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (set.count(std::string(kv.substr(0, kv.find('=')))) == 0) {
      out.emplace_back(kv);
    }
  }
  for (const auto& [k, v] : set) {
    out.push_back(k + "=" + v);
  }
  return out;
}

} // namespace

Expected<EgressRule> parse_egress_rule(std::string_view text) {
  auto bad = [text](const std::string& why) {
    return tl::unexpected(
        Error(ErrorCode::invalid_argument, "egress rule " + util::quote(text) + ": " + why +
                                               " (expected HOST, HOST:PORT, *.SUFFIX or *.SUFFIX:PORT)"));
  };
  auto hp = split_host_port(text);
  if (!hp) {
    return bad("malformed host or port (ports are 1-65535)");
  }
  EgressRule r;
  r.port = hp->port;
  std::string host = normalize_host(hp->host);
  if (util::starts_with(host, "*.")) {
    r.wildcard = true;
    host = host.substr(2);
    if (!valid_host(host) || host.find(':') != std::string::npos || is_numeric_host(host)) {
      return bad("a wildcard needs a domain suffix");
    }
  } else if (!valid_host(host)) {
    return bad(host == "*" ? "\"*\" would allow every host" : "not a host name or IP address");
  }
  r.host = host;
  return r;
}

bool egress_allowed(const std::vector<EgressRule>& rules, std::string_view host_text, int port) {
  std::string host = normalize_host(host_text);
  if (!valid_host(host)) {
    return false;
  }
  bool numeric = is_numeric_host(host);
  for (const auto& r : rules) {
    bool port_ok = r.port == 0 ? (port == 443 || port == 80) : port == r.port;
    if (!port_ok) {
      continue;
    }
    if (!r.wildcard && host == r.host) {
      return true;
    }
    if (r.wildcard && !numeric && host.size() > r.host.size() + 1 && util::ends_with(host, "." + r.host)) {
      return true;
    }
  }
  return false;
}

Expected<ProxyRequest> parse_proxy_request(std::string_view head) {
  auto bad = [](const std::string& why) { return tl::unexpected(Error(ErrorCode::invalid_argument, why)); };
  std::vector<std::string> lines;
  for (auto& line : util::split(head, '\n')) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    lines.push_back(std::move(line));
  }
  while (!lines.empty() && lines.back().empty()) {
    lines.pop_back();
  }
  if (lines.empty()) {
    return bad("empty request");
  }
  auto parts = util::split(lines[0], ' ');
  if (parts.size() != 3 || parts[0].empty() ||
      !std::all_of(parts[0].begin(), parts[0].end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return bad("expected a request line like \"CONNECT host:443 HTTP/1.1\" or \"GET http://host/path HTTP/1.1\"");
  }
  const std::string& method = parts[0];
  const std::string& target = parts[1];
  const std::string& version = parts[2];
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return bad("unsupported protocol " + util::quote(version) + " (HTTP/1.0 or HTTP/1.1)");
  }
  ProxyRequest req;
  std::string authority;
  std::string path;
  if (method == "CONNECT") {
    req.connect = true;
    authority = target;
  } else {
    if (!util::starts_with(util::to_lower(target.substr(0, 7)), "http://")) {
      return bad("the proxy takes absolute http:// targets and CONNECT (for https), got " + util::quote(target));
    }
    std::string rest = target.substr(7);
    size_t slash = rest.find_first_of("/?#");
    authority = rest.substr(0, slash);
    path = slash == std::string::npos ? "/" : rest.substr(slash);
    if (path[0] == '#') {
      path = "/";
    } else if (path[0] == '?') {
      path = "/" + path;
    }
    path = path.substr(0, path.find('#'));
  }
  if (authority.find('@') != std::string::npos) {
    return bad("user information in the target is not supported");
  }
  auto hp = split_host_port(authority);
  if (!hp || !valid_host(hp->host)) {
    return bad("malformed target " + util::quote(authority));
  }
  if (req.connect && hp->port == 0) {
    return bad("CONNECT needs host:port, got " + util::quote(authority));
  }
  req.host = hp->host;
  req.port = hp->port == 0 ? 80 : hp->port;
  if (req.connect) {
    return req;
  }
  std::string out = method + " " + path + " " + version +
                    "\r\nHost: " + host_for_display(req.host, req.port == 80 ? 0 : req.port) + "\r\n";
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    size_t colon = line.find(':');
    if (line.empty() || line[0] == ' ' || line[0] == '\t' || colon == std::string::npos || colon == 0 ||
        !std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(colon),
                     [](char c) { return is_token_char(c) || (c >= '0' && c <= '9') || c == '_'; })) {
      return bad("malformed header line " + std::to_string(i + 1));
    }
    std::string name = util::to_lower(line.substr(0, colon));
    if (name == "host" || name == "connection" || name == "proxy-connection" || name == "keep-alive" ||
        name == "proxy-authorization") {
      continue;
    }
    out += line + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  req.origin_head = std::move(out);
  return req;
}

std::vector<std::string> netns_command_arguments(const NetnsArgs& a) {
  std::vector<std::string> out = {"__netns"};
  if (a.uid >= 0) {
    out.insert(out.end(), {"--uid", std::to_string(a.uid)});
  }
  if (a.gid >= 0) {
    out.insert(out.end(), {"--gid", std::to_string(a.gid)});
  }
  for (int p : a.publish) {
    out.insert(out.end(), {"--publish", std::to_string(p)});
  }
  for (int p : a.forward) {
    out.insert(out.end(), {"--forward", std::to_string(p)});
  }
  for (const auto& rule : a.allow) {
    out.insert(out.end(), {"--allow", rule});
  }
  out.insert(out.end(), {"--proxy-port", std::to_string(a.proxy_port), "--"});
  out.insert(out.end(), a.argv.begin(), a.argv.end());
  return out;
}

// The wrapper's one Sandbox. Never freed: detached relay threads use it until _exit. Held
// here, so that the leak checker of a sanitizer build sees it reachable when the wrapper
// returns early (bad arguments, no CAP_SYS_ADMIN).
static Sandbox* g_sandbox = nullptr;

int run_netns(int argc, char** argv) {
  NetnsArgs args;
  g_sandbox = new Sandbox;
  Sandbox* sb = g_sandbox;
  if (!parse_args(argc, argv, args, sb->rules)) {
    return k_exit_usage;
  }
  const std::string what = util::quote(args.argv[0]);

  // Everything is built before the fork: the child only makes system calls.
  std::vector<char*> cargv;
  for (auto& s : args.argv) {
    cargv.push_back(s.data());
  }
  cargv.push_back(nullptr);
  std::vector<std::string> env = child_environment(args.proxy_port);
  std::vector<char*> cenv;
  for (auto& s : env) {
    cenv.push_back(s.data());
  }
  cenv.push_back(nullptr);

  // The signals to forward and SIGCHLD arrive through a signalfd, blocked in every thread
  // (threads inherit the mask). The child gets back the caller's mask, SIGPIPE and SIGCHLD.
  sigset_t mask;
  sigset_t old_mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) {
    sigaddset(&mask, s);
  }
  ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
  struct sigaction old_pipe {};
  struct sigaction old_chld {};
  struct sigaction ignore {};
  struct sigaction dfl {};
  ignore.sa_handler = SIG_IGN;
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);
  // An inherited SIG_IGN for SIGCHLD would reap the child unseen and never wake the loop.
  ::sigaction(SIGCHLD, &dfl, &old_chld);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
  int report_pipe[2];
  int go_pipe[2];
  if (sfd < 0 || ::pipe2(report_pipe, O_CLOEXEC) != 0 || ::pipe2(go_pipe, O_CLOEXEC) != 0) {
    say(std::string("cannot set up: ") + std::strerror(errno));
    return k_exit_sandbox;
  }
  pid_t parent = ::getpid();
  pid_t child = ::fork();
  if (child == 0) {
    ::close(report_pipe[0]);
    ::close(go_pipe[1]); // so that a dead parent reads as EOF below
    auto report = [&](int stage, int err) {
      ChildReport r{stage, err};
      ssize_t w = ::write(report_pipe[1], &r, sizeof r);
      (void)w; // the parent reads EOF and the exit status otherwise
    };
    if (::unshare(CLONE_NEWNET) != 0) {
      report(stage_unshare, errno);
      ::_exit(k_exit_sandbox);
    }
    if (int e = loopback_up(); e != 0) {
      report(stage_loopback, e);
      ::_exit(k_exit_sandbox);
    }
    report(stage_ready, 0);
    char go = 0;
    ssize_t n;
    while ((n = ::read(go_pipe[0], &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1) {
      ::_exit(k_exit_sandbox); // the parent gave up (or died) while setting up
    }
    if (args.uid >= 0) {
      if (int e = util::drop_privileges(args.uid, args.gid); e != 0) {
        report(stage_privileges, e);
        ::_exit(k_exit_start);
      }
    }
    // After the switch of user: a change of credentials clears the parent-death signal.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
      report(stage_parent, errno);
      ::_exit(k_exit_sandbox);
    }
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    ::sigaction(SIGCHLD, &old_chld, nullptr);
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    report(stage_exec, errno);
    ::_exit(k_exit_start);
  }
  ::close(report_pipe[1]);
  ::close(go_pipe[0]);
  if (child < 0) {
    say(std::string("cannot start ") + what + ": fork: " + std::strerror(errno));
    return k_exit_start;
  }
  // Before any thread exists: stops the child and returns `code`.
  auto abandon = [&](int code) {
    ::kill(child, SIGKILL);
    while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    return code;
  };

  ChildReport r;
  if (!read_report(report_pipe[0], r) || r.stage != stage_ready) {
    abandon(0);
    if (r.stage == stage_unshare) {
      say(std::string("cannot create a network namespace: unshare(CLONE_NEWNET): ") + std::strerror(r.err) +
          (r.err == EPERM ? " (needs CAP_SYS_ADMIN: run as root)" : "") + "; " + what +
          " was not run without its sandbox");
    } else if (r.stage == stage_loopback) {
      say(std::string("cannot bring up the namespace's loopback: ") + std::strerror(r.err) + "; " + what +
          " was not run");
    } else {
      say("the sandbox's child ended while setting up; " + what + " was not run");
    }
    return k_exit_sandbox;
  }

  // The namespace, held by an fd of ours from now on (opened while the child is still
  // root, and checked to be another namespace than ours).
  std::string ns_path = "/proc/" + std::to_string(child) + "/ns/net";
  sb->nsfd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat ns_st {};
  struct stat own_st {};
  if (sb->nsfd < 0 || ::fstat(sb->nsfd, &ns_st) != 0 || ::stat("/proc/self/ns/net", &own_st) != 0 ||
      (ns_st.st_ino == own_st.st_ino && ns_st.st_dev == own_st.st_dev)) {
    say("cannot open the child's network namespace " + util::quote(ns_path) + ": " +
        (sb->nsfd < 0 ? std::strerror(errno) : "it is the host's") + "; " + what + " was not run");
    return abandon(k_exit_sandbox);
  }

  // The namespace's listeners, made by a thread that entered it (setns applies to the
  // calling thread only): --forward ports and the proxy.
  std::vector<int> ns_ports = args.forward;
  ns_ports.push_back(args.proxy_port);
  std::vector<int> ns_listeners;
  std::string ns_error;
  try {
    std::thread([&] {
      if (::setns(sb->nsfd, CLONE_NEWNET) != 0) {
        ns_error = std::string("setns: ") + std::strerror(errno);
        return;
      }
      for (int port : ns_ports) {
        int fd = listen_loopback(port);
        if (fd < 0) {
          ns_error = "listen on the namespace's 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(-fd);
          return;
        }
        ns_listeners.push_back(fd);
      }
    }).join();
  } catch (const std::exception& e) {
    ns_error = e.what();
  }
  std::vector<int> host_listeners;
  for (size_t i = 0; ns_error.empty() && i < args.publish.size(); ++i) {
    int fd = listen_loopback(args.publish[i]);
    if (fd < 0) {
      ns_error = "listen on 127.0.0.1:" + std::to_string(args.publish[i]) + ": " + std::strerror(-fd);
    }
    host_listeners.push_back(fd);
  }
  if (!ns_error.empty()) {
    say("cannot set up the relays: " + ns_error + "; " + what + " was not run");
    return abandon(k_exit_sandbox);
  }

  // The relays. Publish: host -> namespace, the connection's own thread enters the
  // namespace to reach the app. Forward: namespace -> host. Proxy: namespace -> anywhere
  // allowed, resolved and connected from the host.
  try {
    for (size_t i = 0; i < args.publish.size(); ++i) {
      int port = args.publish[i];
      std::thread([sb, fd = host_listeners[i], port] {
        accept_loop(*sb, fd, [sb, port](Fd client) {
          if (::setns(sb->nsfd, CLONE_NEWNET) != 0) {
            return; // this thread would reach the host's port, not the app's
          }
          int app = connect_loopback(port);
          if (app >= 0) {
            relay(std::move(client), Fd(app));
          } // else the app does not listen yet: the client sees the connection closed
        });
      }).detach();
    }
    for (size_t i = 0; i < args.forward.size(); ++i) {
      int port = args.forward[i];
      std::thread([sb, fd = ns_listeners[i], port] {
        accept_loop(*sb, fd, [port](Fd client) {
          int host = connect_loopback(port);
          if (host >= 0) {
            relay(std::move(client), Fd(host));
          }
        });
      }).detach();
    }
    std::thread([sb, fd = ns_listeners.back()] {
      accept_loop(*sb, fd, [sb](Fd client) { serve_proxy_client(*sb, std::move(client)); });
    }).detach();
  } catch (const std::exception& e) {
    say(std::string("cannot start the relays: ") + e.what() + "; " + what + " was not run");
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    finish(k_exit_sandbox);
  }

  char go = 'g';
  if (::write(go_pipe[1], &go, 1) != 1) {
    say(std::string("cannot start ") + what + ": " + std::strerror(errno));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    finish(k_exit_sandbox);
  }
  ::close(go_pipe[1]);
  if (read_report(report_pipe[0], r)) {
    ::waitpid(child, nullptr, 0);
    if (r.stage == stage_privileges) {
      say("cannot switch to uid " + std::to_string(args.uid) + " gid " + std::to_string(args.gid) + ": " +
          std::strerror(r.err) + "; " + what + " was not run");
    } else if (r.stage == stage_parent) {
      say("cannot tie " + what + " to this process (PR_SET_PDEATHSIG): " + std::strerror(r.err));
    } else {
      say("cannot start " + what + ": " + std::strerror(r.err));
    }
    finish(r.stage == stage_parent ? k_exit_sandbox : k_exit_start);
  }
  ::close(report_pipe[0]);

  // Forward signals until the child exits, then exit with its status at once.
  while (true) {
    signalfd_siginfo si{};
    ssize_t n = ::read(sfd, &si, sizeof si);
    if (n == static_cast<ssize_t>(sizeof si) && si.ssi_signo != SIGCHLD) {
      ::kill(child, static_cast<int>(si.ssi_signo));
      continue;
    }
    if (n < 0 && errno != EINTR) {
      ::poll(nullptr, 0, 100); // cannot happen; do not spin if it does
    }
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) {
      finish(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
    }
  }
}

} // namespace idp::drivers::local
