// Redeploys without downtime: clients requesting the URL all the time see no failed request
// while a new revision replaces the old one (they are answered by both in that window, so
// the switch happened under load), nor while a revision that never becomes healthy is
// rolled back. The request rate is printed, not asserted: it is the machine's.
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// Clients hammering GET / through the router (Caddy) with the environment's Host header.
class Load {
public:
  // `credentials`: thread i sends credentials[i % size] besides Host (a protected
  // preview's token or session cookie).
  Load(int router_port, const std::string& env, int threads,
       const std::vector<std::vector<std::pair<std::string, std::string>>>& credentials = {{}}) {
    m_by_thread.resize(static_cast<size_t>(threads)); // before any client writes to it
    for (int i = 0; i < threads; ++i) {
      m_threads.emplace_back([this, i, router_port, env, headers = credentials[i % credentials.size()]] {
        util::HttpRequest req;
        req.url = "http://127.0.0.1:" + std::to_string(router_port) + "/";
        req.headers = {{"Host", env + ".preview.localhost:" + std::to_string(router_port)}};
        req.headers.insert(req.headers.end(), headers.begin(), headers.end());
        req.timeout_ms = 10000;
        while (!m_stop) {
          auto r = util::http_request(req);
          std::string version;
          bool ok = r && r->status == 200;
          if (ok) {
            auto j = json::parse(r->body, nullptr, false);
            ok = j.is_object() && j.contains("version");
            version = ok ? j["version"].get<std::string>() : "";
          }
          m_total += 1;
          if (!ok) {
            m_failed += 1;
            std::lock_guard<std::mutex> g(m_mu);
            if (m_failures.size() < 10) {
              m_failures.push_back(r ? "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 200)
                                     : r.error().message);
            }
          } else {
            std::lock_guard<std::mutex> g(m_mu);
            m_last_version = version;
            m_by_thread[static_cast<size_t>(i)] = version;
            m_answers[version] += 1;
          }
        }
      });
    }
  }
  ~Load() { stop(); }
  void stop() {
    m_stop = true;
    for (auto& t : m_threads) {
      if (t.joinable()) {
        t.join();
      }
    }
  }
  uint64_t total() const { return m_total; }
  uint64_t failed() const { return m_failed; }
  // True when every client's latest answer came from `version` (no request to an older
  // revision is still in flight).
  bool all_at(const std::string& version) const {
    std::lock_guard<std::mutex> g(m_mu);
    return std::all_of(m_by_thread.begin(), m_by_thread.end(), [&](const std::string& v) { return v == version; });
  }
  std::string last_version() const {
    std::lock_guard<std::mutex> g(m_mu);
    return m_last_version;
  }
  // Successful answers per version, since the start.
  std::map<std::string, uint64_t> answers() const {
    std::lock_guard<std::mutex> g(m_mu);
    return m_answers;
  }
  std::string failures() const {
    std::lock_guard<std::mutex> g(m_mu);
    std::string out;
    for (const auto& f : m_failures) {
      out += f + "\n";
    }
    return out;
  }

private:
  std::atomic<bool> m_stop{false};
  std::atomic<uint64_t> m_total{0};
  std::atomic<uint64_t> m_failed{0};
  mutable std::mutex m_mu;
  std::vector<std::string> m_failures;
  std::string m_last_version;
  std::vector<std::string> m_by_thread; // each client's latest answer
  std::map<std::string, uint64_t> m_answers;
  std::vector<std::thread> m_threads;
};

struct Window {
  uint64_t requests = 0;
  uint64_t failed = 0;
  double seconds = 0;
  std::map<std::string, uint64_t> answers; // per version, within the window
  double rate() const { return seconds > 0 ? requests / seconds : 0; }
};

// The zero-downtime scenario; `protect`: the preview is behind sign-in (issue 15) and half
// the load sends a viewer token (every request passes the daemon's check), the other half
// the preview session cookie of a sign-in (checked by Caddy itself).
void redeploy_and_rollback_lose_no_request(bool protect) {
  GitopsOptions options{.poll = false};
  if (protect) {
    options.server_config_extra = "previews:\n  protect: signin\n";
  }
  GitopsRig rig(protect ? "idp-gitops-zdt-protected" : "idp-gitops-zdt", options);
  rig.start();
  std::vector<std::vector<std::pair<std::string, std::string>>> credentials = {{}};
  std::string token;
  if (protect) {
    auto t = rig.daemon->cli({"token", "create", "--name", "zdt-viewer", "--role", "viewer"});
    ASSERT_EQ(t.exit_code, 0) << t.err;
    token = util::trim(t.out);
  }
  std::string c1 = rig.commit_version("feature/zdt", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/zdt", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/zdt", 30000);
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->log();

  if (protect) {
    // Protected indeed: without credentials the same address is refused.
    ASSERT_EQ(rig.daemon->get_via_router(name, "/").first, 401);
    // The sign-in as a browser goes through it: the dashboard's hand-off, the callback.
    std::string host = name + ".preview.localhost:" + std::to_string(rig.daemon->router_port());
    util::HttpRequest handoff;
    handoff.url = rig.daemon->api_url() + "/preview/signin?return=" + util::url_encode("http://" + host + "/");
    handoff.headers = {{"Authorization", "Bearer " + token}};
    auto h = util::http_request(handoff);
    ASSERT_TRUE(h && h->status == 303);
    util::HttpRequest cb;
    cb.url = "http://127.0.0.1:" + std::to_string(rig.daemon->router_port()) +
             h->headers["location"].substr(("http://" + host).size());
    cb.headers = {{"Host", host}};
    auto c = util::http_request(cb);
    ASSERT_TRUE(c && c->status == 303);
    std::string cookie = c->headers["set-cookie"].substr(0, c->headers["set-cookie"].find(';'));
    credentials = {{{"Authorization", "Bearer " + token}}, {{"Cookie", cookie}}};
  }
  Load load(rig.daemon->router_port(), name, 6, credentials);
  ASSERT_TRUE(wait_until([&] { return load.last_version() == "v1"; }, 10000)) << load.failures();

  // 1. A healthy new revision replaces the old one.
  auto measure = [&](const std::function<void()>& during) {
    uint64_t r0 = load.total();
    uint64_t f0 = load.failed();
    auto a0 = load.answers();
    int64_t t0 = util::steady_ms();
    during();
    Window w;
    for (const auto& [version, n] : load.answers()) {
      if (n > a0[version]) {
        w.answers[version] = n - a0[version];
      }
    }
    w.requests = load.total() - r0;
    w.failed = load.failed() - f0;
    w.seconds = (util::steady_ms() - t0) / 1000.0;
    return w;
  };
  std::string c2;
  Window redeploy = measure([&] {
    c2 = rig.commit_version("feature/zdt", "v2");
    ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/zdt", c1, c2)).first, 202);
    ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->env(name).dump(2);
    ASSERT_TRUE(wait_until([&] { return load.all_at("v2"); }, 10000));
  });
  std::printf("redeploy: %llu requests in %.2fs = %.0f req/s, %llu failed\n",
              static_cast<unsigned long long>(redeploy.requests), redeploy.seconds, redeploy.rate(),
              static_cast<unsigned long long>(redeploy.failed));
  EXPECT_EQ(redeploy.failed, 0u) << load.failures();
  // The load must be real for zero failures to mean something: answered by the old revision
  // and by the new one within the window.
  EXPECT_GT(redeploy.answers["v1"], 0u) << "no request before the switch";
  EXPECT_GT(redeploy.answers["v2"], 0u) << "no request after the switch";

  // 2. A revision that never becomes healthy (the process exits at start) is rolled back.
  auto server = util::read_file(source_dir() + "/examples/api-service/server.js");
  std::string broken = "console.error('refusing to start: broken build');\nprocess.exit(1);\n" + *server;
  std::string c3;
  Window rollback = measure([&] {
    c3 = rig.commit_file("feature/zdt", "server.js", broken);
    ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/zdt", c2, c3)).first, 202);
    // Until the environment is ready again too: the engine records the failed revision, then
    // the phase and message asserted below.
    ASSERT_TRUE(rig.wait_failed_and_ready(name, c3, 90000).is_object()) << rig.daemon->env(name).dump(2);
  });
  std::printf("rollback: %llu requests in %.2fs = %.0f req/s, %llu failed\n",
              static_cast<unsigned long long>(rollback.requests), rollback.seconds, rollback.rate(),
              static_cast<unsigned long long>(rollback.failed));
  EXPECT_EQ(rollback.failed, 0u) << load.failures();
  EXPECT_GT(rollback.answers["v2"], 0u) << "no request while the broken revision was tried";
  EXPECT_EQ(rollback.answers.size(), 1u) << "only v2 answered while the broken revision was tried";
  EXPECT_EQ(load.last_version(), "v2") << "the old revision kept serving";
  load.stop();

  json env = rig.daemon->env(name);
  EXPECT_EQ(env["phase"], "ready") << env.dump(2);
  EXPECT_EQ(env["deployed_commit"], c2);
  std::string message = env["message"];
  EXPECT_NE(message.find("deploy of " + short_sha(c3) + " failed"), std::string::npos) << message;
  EXPECT_NE(message.find("still serving " + short_sha(c2)), std::string::npos) << message;
  json failed;
  for (const auto& r : env["revisions"]) {
    if (r["commit"] == c3) {
      failed = r;
    }
  }
  ASSERT_TRUE(failed.is_object());
  EXPECT_EQ(failed["status"], "failed");
  EXPECT_FALSE(failed["message"].get<std::string>().empty());
  EXPECT_NE(failed["log_tail"].get<std::string>().find("refusing to start: broken build"), std::string::npos)
      << failed.dump(2);
}

} // namespace

TEST(GitopsRedeployTest, RedeployAndRollbackLoseNoRequest) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  redeploy_and_rollback_lose_no_request(false);
}

// Must show 2 of issue 15: the same with the preview behind sign-in.
TEST(GitopsRedeployTest, ProtectedPreviewRedeployAndRollbackLoseNoRequest) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  redeploy_and_rollback_lose_no_request(true);
}
