// util::http_request with max_body: a peer that sends an endless body costs no memory and
// no time (the health checks of apps use it).
#include "util/http_client.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace idp;

namespace {

// Answers one connection with 200 and a body that never ends, until the client leaves.
class EndlessBodyServer {
public:
  EndlessBodyServer() {
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(m_listen, 4) != 0) {
      ADD_FAILURE() << "cannot listen";
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
    m_thread = std::thread([this] { serve(); });
  }
  ~EndlessBodyServer() {
    ::shutdown(m_listen, SHUT_RDWR);
    m_thread.join();
    ::close(m_listen);
  }
  int port() const { return m_port; }

private:
  void serve() {
    int c = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      return;
    }
    char req[4096];
    (void)::recv(c, req, sizeof req, 0); // the request itself does not matter
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    ::send(c, head.data(), head.size(), MSG_NOSIGNAL);
    std::string chunk(16384, 'x');
    std::string framed = "4000\r\n" + chunk + "\r\n";
    while (true) {
      if (::send(c, framed.data(), framed.size(), MSG_NOSIGNAL) <= 0) {
        break; // the client closed the connection
      }
    }
    ::close(c);
  }

  int m_listen = -1;
  int m_port = 0;
  std::thread m_thread;
};

} // namespace

TEST(HttpClientTest, MaxBodyCutsAnEndlessBody) {
  EndlessBodyServer server;
  util::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/health";
  req.timeout_ms = 60000; // the cut, not the timeout, must end the request
  req.max_body = 64 * 1024;
  auto resp = util::http_request(req);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->status, 200);
  EXPECT_TRUE(resp->truncated);
  EXPECT_EQ(resp->body.size(), req.max_body);
}

TEST(HttpClientTest, BodyUnderTheCapIsWhole) {
  // A plain server: one short answer.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread t([fd] {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    char buf[4096];
    (void)::recv(c, buf, sizeof buf, 0);
    std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    ::send(c, r.data(), r.size(), MSG_NOSIGNAL);
    ::close(c);
  });
  util::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/";
  req.max_body = 64 * 1024;
  auto resp = util::http_request(req);
  t.join();
  ::close(fd);
  ASSERT_TRUE(resp) << resp.error().message;
  EXPECT_EQ(resp->body, "ok");
  EXPECT_FALSE(resp->truncated);
}
