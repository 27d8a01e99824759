#include "util/ports.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fs.hpp"

namespace idp::util {

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

std::pair<int, int> ephemeral_port_range() {
  if (auto text = read_file("/proc/sys/net/ipv4/ip_local_port_range")) {
    int lo = 0;
    int hi = 0;
    if (std::sscanf(text->c_str(), "%d %d", &lo, &hi) == 2 && lo > 0 && hi >= lo) {
      return {lo, hi};
    }
  }
  return {32768, 60999};
}

namespace {

// What a TCP socket on `ip`:`port` does: bind (true: it could) or connect (true: something
// accepted).
bool try_socket(uint32_t ip, int port, bool connect) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(ip);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  auto* a = reinterpret_cast<sockaddr*>(&addr);
  bool ok = (connect ? ::connect(fd, a, sizeof addr) : ::bind(fd, a, sizeof addr)) == 0;
  ::close(fd);
  return ok;
}

// Taken on any address: taken for the app too.
bool bindable(int port) { return try_socket(INADDR_ANY, port, false); }

} // namespace

Expected<int> find_free_app_port() {
  auto [lo, hi] = ephemeral_port_range();
  int from = 10000;
  int to = lo - 1;
  if (to - from < 1000) {
    from = hi + 1;
    to = 65535;
  }
  if (to - from < 1000) {
    return find_free_port();
  }
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(from, to);
  for (int i = 0; i < 200; ++i) {
    int port = pick(rng);
    if (bindable(port)) {
      return port;
    }
  }
  return make_error(ErrorCode::transient,
                    "no free port found in " + std::to_string(from) + "-" + std::to_string(to) + " after 200 tries");
}

bool accepts_connections(int port) { return try_socket(INADDR_LOOPBACK, port, true); }

} // namespace idp::util
