// Issue 10, "Bounds": long-lived streams (SSE /api/v1/events/stream, logs?follow) run on
// threads of their own, at most max_streams of them (503 beyond), so the API and the
// GitHub webhook keep answering however many dashboards are open; a stream whose client
// leaves frees its slot.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>

#include <gtest/gtest.h>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

// A stream opened over a raw socket, so that dozens can stay open without a thread each.
struct RawStream {
  int fd = -1;
  int status = 0;   // 0 = no answer in time
  std::string head; // status line and headers
};

int port_of(const std::string& url) { return util::parse_int<int>(url.substr(url.rfind(':') + 1)).value_or(0); }

// GET `path` and wait for the response head. The wait is generous: it only tells "answered"
// from "never answered" (the request pool exhausted).
RawStream open_stream(int port, const std::string& path, const std::string& token) {
  RawStream s;
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return s;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nAuthorization: Bearer " + token + "\r\nAccept: text/event-stream\r\n\r\n";
  if (::send(s.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return s;
  }
  int64_t deadline = util::steady_ms() + 30000;
  std::string buf;
  while (buf.find("\r\n\r\n") == std::string::npos) {
    int64_t left = deadline - util::steady_ms();
    pollfd p{s.fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      return s;
    }
    char chunk[4096];
    ssize_t n = ::recv(s.fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      return s;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
  s.head = buf.substr(0, buf.find("\r\n\r\n"));
  if (util::starts_with(s.head, "HTTP/1.1 ")) {
    s.status = util::parse_int<int>(s.head.substr(9, 3)).value_or(0);
  }
  return s;
}

void close_stream(RawStream& s) {
  if (s.fd >= 0) {
    ::close(s.fd);
    s.fd = -1;
  }
}

std::pair<long, std::string> signed_ping(const std::string& api_url, const std::string& secret) {
  std::string body = R"({"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"idp-tests/app"}})";
  util::HttpRequest req;
  req.method = "POST";
  req.url = api_url + "/hooks/github";
  req.body = body;
  req.timeout_ms = 60000;
  req.headers = {{"Content-Type", "application/json"},
                 {"X-GitHub-Event", "ping"},
                 {"X-GitHub-Delivery", util::random_hex(16)},
                 {"X-Hub-Signature-256", "sha256=" + util::to_hex(util::hmac_sha256_raw(secret, body))}};
  auto r = util::http_request(req);
  if (!r) {
    return {0, r.error().message};
  }
  return {r->status, r->body};
}

std::pair<long, std::string> list_environments(const DaemonProcess& d) {
  util::HttpRequest req;
  req.url = d.api_url() + "/api/v1/environments";
  req.headers = {d.admin_auth_header()};
  req.timeout_ms = 60000;
  auto r = util::http_request(req);
  if (!r) {
    return {0, r.error().message};
  }
  return {r->status, r->body};
}

} // namespace

TEST(StreamBoundsTest, StreamsNeitherStarveTheApiNorTheWebhookAndAreCapped) {
  TempDir tmp("idp-streams");
  (void)util::ensure_dir(tmp.sub("home"));
  GitRepo app = make_example_repo(tmp.sub("app"), "api-service", "main");
  app.checkout_new_branch("feature/streams");
  const std::string secret = "stream-bounds-secret";
  // 44 streams allowed: more than the 32 request threads, so the old shared pool starves.
  constexpr int k_max_streams = 44;
  std::string cfg = "max_streams: " + std::to_string(k_max_streams) + "\nrepositories:\n  - url: " + app.path() +
                    "\n    github_repo: idp-tests/app\n    webhook_secret: \"" + secret +
                    "\"\n    branches: {include: [\"no-such/*\"]}\n"; // the hook only answers; nothing deploys
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), cfg));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto created = d.cli({"create", "--repo", app.path(), "--branch", "feature/streams", "--no-wait"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  const int port = port_of(d.api_url());
  const std::string token = d.admin_token();

  // 40 dashboards' event streams and 4 followed logs: every slot taken.
  std::vector<RawStream> streams;
  for (int i = 0; i < k_max_streams; ++i) {
    std::string path = i < 40 ? "/api/v1/events/stream" : "/api/v1/environments/preview-streams/logs?follow=true";
    streams.push_back(open_stream(port, path, token));
    ASSERT_EQ(streams.back().status, 200) << "stream " << i << " (" << path << "): " << streams.back().head << "\n"
                                          << d.log();
  }

  // The API and the webhook still answer.
  auto [list_status, list_body] = list_environments(d);
  EXPECT_EQ(list_status, 200) << list_body;
  EXPECT_NE(list_body.find("preview-streams"), std::string::npos) << list_body;
  auto [hook_status, hook_body] = signed_ping(d.api_url(), secret);
  EXPECT_EQ(hook_status, 200) << hook_body;
  EXPECT_NE(hook_body.find("pong"), std::string::npos) << hook_body;

  // Beyond the cap: 503 with Retry-After, for both kinds of stream.
  for (const char* path : {"/api/v1/events/stream", "/api/v1/environments/preview-streams/logs?follow=true"}) {
    RawStream extra = open_stream(port, path, token);
    EXPECT_EQ(extra.status, 503) << path << ": " << extra.head;
    EXPECT_NE(util::to_lower(extra.head).find("retry-after:"), std::string::npos) << extra.head;
    close_stream(extra);
  }

  // Clients that leave free their slots: a new stream is accepted again.
  for (int i = 0; i < 4; ++i) {
    close_stream(streams[static_cast<size_t>(i)]);
  }
  RawStream again;
  bool accepted = wait_until(
      [&] {
        close_stream(again);
        again = open_stream(port, "/api/v1/events/stream", token);
        return again.status == 200;
      },
      60000, 200);
  EXPECT_TRUE(accepted) << again.head;
  close_stream(again);

  for (auto& s : streams) {
    close_stream(s);
  }
  EXPECT_EQ(d.stop(), 0) << d.log();
}

// max_streams is checked like every server setting: in the file, in IDP_MAX_STREAMS, and
// shown with its origin.
TEST(StreamBoundsTest, MaxStreamsIsValidatedAndShown) {
  TempDir tmp("idp-streams-config");
  auto serve = [&](const std::string& file_text, const std::map<std::string, std::string>& env,
                   const std::string& mode) {
    EXPECT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), file_text));
    util::Command c;
    c.argv = {idp_binary(), "serve", "--home", tmp.sub("home"), "--config", tmp.sub("server.yml"), mode};
    c.env = env;
    c.env["NO_COLOR"] = "1";
    util::RunOptions o;
    o.timeout_ms = 60000;
    auto r = util::run(c, o);
    return r ? *r : util::RunResult{};
  };
  auto bad = serve("max_streams: 5000\n", {}, "--check-config");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find("key \"max_streams\": expected a number of streams from 0 to 1024, got \"5000\""),
            std::string::npos)
      << bad.err;
  auto bad_env = serve("", {{"IDP_MAX_STREAMS", "-1"}}, "--check-config");
  EXPECT_EQ(bad_env.exit_code, 1) << bad_env.out << bad_env.err;
  EXPECT_NE(bad_env.err.find("environment variable IDP_MAX_STREAMS: expected a number of streams from 0 to 1024, "
                             "got \"-1\""),
            std::string::npos)
      << bad_env.err;
  auto shown = serve("max_streams: 10\n", {}, "--show-config");
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("(" + tmp.sub("server.yml") + ") max_streams = 10"), std::string::npos) << shown.out;
}
