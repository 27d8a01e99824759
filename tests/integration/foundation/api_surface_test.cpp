// The rest of the server's HTTP surface: dashboard page, Prometheus metrics, the live
// event stream (SSE), capabilities and templates.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

class ApiSurfaceTest : public ::testing::Test {
protected:
  ApiSurfaceTest() : tmp("idp-api") {
    (void)util::ensure_dir(tmp.sub("home"));
    d = std::make_unique<DaemonProcess>(tmp.sub("home"));
    d->start();
  }
  util::HttpResponse get(const std::string& path) {
    util::HttpRequest r;
    r.url = d->api_url() + path;
    r.headers = {d->admin_auth_header()};
    auto resp = util::http_request(r);
    EXPECT_TRUE(resp) << path;
    return resp ? *resp : util::HttpResponse{};
  }
  TempDir tmp;
  std::unique_ptr<DaemonProcess> d;
};

TEST_F(ApiSurfaceTest, DashboardMetricsCapabilitiesTemplates) {
  auto page = get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-type"].find("text/html"), std::string::npos);
  // The dashboard (docs/dashboard.md): a page and its script, compiled in; the script
  // follows the event stream.
  EXPECT_NE(page.body.find("<script src=\"/assets/dashboard.js\"></script>"), std::string::npos) << page.body;
  auto script = get("/assets/dashboard.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_NE(script.body.find("/api/v1/events/stream"), std::string::npos);

  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/m");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/m"}).exit_code, 0);
  auto metrics = get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("idp_environments{phase=\"ready\"} 1\n"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("idp_environments{phase=\"failed\"} 0\n"), std::string::npos) << metrics.body;

  auto caps = json::parse(get("/api/v1/capabilities").body);
  EXPECT_NE(std::find(caps["drivers"].begin(), caps["drivers"].end(), "local"), caps["drivers"].end());
  EXPECT_EQ(caps["reaper_interval"], "30s");
  EXPECT_EQ(caps["ttl_max"], "30d");
  auto dash = d->cli({"dashboard", "--markdown"});
  EXPECT_EQ(dash.exit_code, 0) << dash.err;
  EXPECT_NE(dash.out.find("| `preview-m` |"), std::string::npos) << dash.out;
  EXPECT_NE(dash.out.find("runs every 30 seconds"), std::string::npos)
      << "the dashboard states the real reaper period: " << dash.out;
  auto tmpls = d->cli({"templates", "list", "--json"});
  ASSERT_EQ(tmpls.exit_code, 0) << tmpls.err;
  std::set<std::string> names;
  for (const auto& t : json::parse(tmpls.out)) {
    names.insert(t["name"]);
  }
  for (const char* n : {"api-service", "api-database", "scheduled-worker", "static-site"}) {
    EXPECT_TRUE(names.count(n)) << n;
  }
  EXPECT_FALSE(names.count("tf-test")) << "a test fixture is listed only on request";
  auto all = d->cli({"templates", "list", "--all", "--json"});
  EXPECT_NE(all.out.find("\"name\": \"tf-test\""), std::string::npos) << all.out;
  auto show = d->cli({"templates", "show", "scheduled-worker"});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_NE(show.out.find("schedule_expression"), std::string::npos);
  auto health = json::parse(get("/healthz").body);
  EXPECT_EQ(health["status"], "ok");
}

TEST_F(ApiSurfaceTest, EventStreamDeliversNewEventsAsTheyHappen) {
  std::string received;
  std::atomic<bool> got{false};
  std::thread reader([&] {
    util::HttpRequest r;
    r.url = d->api_url() + "/api/v1/events/stream";
    r.headers = {d->admin_auth_header()};
    r.timeout_ms = 60000;
    r.on_data = [&](std::string_view chunk) {
      received.append(chunk);
      if (received.find("\"action\":\"create\"") != std::string::npos) {
        got = true;
        return false;
      }
      return true;
    };
    (void)util::http_request(r);
  });
  // The stream only carries events recorded after it opened.
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/sse");
  bool created = false;
  EXPECT_TRUE(wait_until(
      [&] {
        if (!created) {
          created = d->cli({"create", "--repo", repo.path(), "--branch", "feature/sse", "--no-wait"}).exit_code == 0;
        }
        return got.load();
      },
      30000));
  reader.join();
  EXPECT_NE(received.find("id: "), std::string::npos);
  EXPECT_NE(received.find("data: {"), std::string::npos);
  EXPECT_NE(received.find("\"environment\":\"preview-sse\""), std::string::npos) << received;
}
