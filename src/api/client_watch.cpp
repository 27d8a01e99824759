#include "api/client_watch.hpp"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <httplib.h>
#include <thread>

namespace idp::api {

namespace {

// Keep-alive probes after 30 s of silence, every 10 s, 3 unanswered = dead; unacknowledged
// data (a ping to a peer that vanished) fails the connection after 60 s.
constexpr int k_keepalive_idle_s = 30;
constexpr int k_keepalive_interval_s = 10;
constexpr int k_keepalive_count = 3;
constexpr unsigned k_user_timeout_ms = 60'000;

// The numeric address and port of a socket address, as httplib formats them.
bool numeric_address(const sockaddr_storage& addr, socklen_t len, std::string& ip, int& port) {
  if (addr.ss_family == AF_INET) {
    port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  } else if (addr.ss_family == AF_INET6) {
    port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  } else {
    return false;
  }
  char host[NI_MAXHOST];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) !=
      0) {
    return false;
  }
  ip = host;
  return true;
}

bool matches(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return false;
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  std::string ip;
  int port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !numeric_address(addr, len, ip, port) ||
      port != remote_port || ip != remote_addr) {
    return false;
  }
  len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || !numeric_address(addr, len, ip, port)) {
    return false;
  }
  return port == local_port && ip == local_addr;
}

} // namespace

int find_connected_socket(const std::string& local_addr, int local_port, const std::string& remote_addr,
                          int remote_port) {
  if (local_port <= 0 || remote_port <= 0) {
    return -1;
  }
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) {
    return -1;
  }
  int found = -1;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == ::dirfd(dir)) {
      continue;
    }
    // A connected socket is one end of one 4-tuple: only the request's own socket can match
    // both addresses, and it stays open while its handler runs.
    if (matches(static_cast<int>(fd), local_addr, local_port, remote_addr, remote_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

ClientWatch::ClientWatch(const httplib::Request& req)
    : m_fd(find_connected_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port)) {
  if (m_fd < 0) {
    return;
  }
  // Best effort: without them a vanished peer is still noticed by the stream's next write.
  int on = 1;
  ::setsockopt(m_fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(m_fd, IPPROTO_TCP, TCP_KEEPIDLE, &k_keepalive_idle_s, sizeof k_keepalive_idle_s);
  ::setsockopt(m_fd, IPPROTO_TCP, TCP_KEEPINTVL, &k_keepalive_interval_s, sizeof k_keepalive_interval_s);
  ::setsockopt(m_fd, IPPROTO_TCP, TCP_KEEPCNT, &k_keepalive_count, sizeof k_keepalive_count);
  ::setsockopt(m_fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &k_user_timeout_ms, sizeof k_user_timeout_ms);
}

bool ClientWatch::wait(util::Millis ms) const {
  if (m_fd < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return true;
  }
  // POLLRDHUP: the peer sent its FIN (a client that sends nothing after its request has
  // left); POLLHUP/POLLERR: the connection is gone. Data it might send is not our concern.
  pollfd p{m_fd, POLLRDHUP, 0};
  int n = ::poll(&p, 1, static_cast<int>(ms));
  return !(n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0);
}

} // namespace idp::api
