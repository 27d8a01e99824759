// The rest of the server's HTTP surface: dashboard page, Prometheus metrics, the live
// event stream (SSE), capabilities and templates.
#include <gtest/gtest.h>
#include <map>
#include <sstream>

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

// Telemetry (issue 14): a deploy says where its time went, in `idp status` (JSON and
// table), in its event, and in /metrics as histograms a scraper can read.
TEST_F(ApiSurfaceTest, EveryDeploySaysWhereItsTimeWentInStatusEventsAndMetrics) {
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/timed");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/timed"}).exit_code, 0);
  auto status = d->cli({"status", "preview-timed", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json env = json::parse(status.out);
  ASSERT_TRUE(env["last_deploy"].is_object()) << env.dump(2);
  std::vector<std::string> phases;
  int64_t sum = 0;
  for (const auto& p : env["last_deploy"]["phases"]) {
    phases.push_back(p["phase"]);
    EXPECT_GE(p["ms"].get<int64_t>(), 0);
    sum += p["ms"].get<int64_t>();
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"queued", "fetch", "resolve", "prepare", "checkout", "build", "start",
                                              "healthy", "route"}))
      << env["last_deploy"].dump();
  EXPECT_EQ(env["last_deploy"]["total_ms"], sum);
  EXPECT_EQ(env["last_deploy"]["outcome"], "ready");
  EXPECT_EQ(env["last_deploy"]["revision"], 1);
  EXPECT_FALSE(env["outputs"].contains("deploy")) << "shown once, as last_deploy";

  auto table = d->cli({"status", "preview-timed"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("last deploy:"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("after the change: queued "), std::string::npos) << table.out;

  auto [code, events] = d->api("GET", "/api/v1/environments/preview-timed/events");
  ASSERT_EQ(code, 200);
  bool timed = false;
  for (const auto& ev : events["events"]) {
    timed =
        timed || (ev["to_phase"] == "ready" && ev["reason"].get<std::string>().find("ready ") != std::string::npos &&
                  ev["reason"].get<std::string>().find(" healthy ") != std::string::npos);
  }
  EXPECT_TRUE(timed) << events.dump(2);

  // /metrics, parsed: one observation per phase of the deploy, buckets cumulative.
  auto metrics = get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  auto samples = prometheus_samples(metrics.body);
  EXPECT_NE(metrics.body.find("# TYPE idp_deploy_phase_seconds histogram"), std::string::npos) << metrics.body;
  for (const auto& phase : phases) {
    std::string labels = "phase=\"" + phase + "\",template=\"api-service\",runtime=\"local\"";
    EXPECT_EQ(samples["idp_deploy_phase_seconds_count{" + labels + "}"], 1) << phase << "\n" << metrics.body;
    EXPECT_EQ(samples["idp_deploy_phase_seconds_bucket{" + labels + ",le=\"+Inf\"}"], 1) << phase;
  }
  EXPECT_EQ(samples["idp_deploys_total{outcome=\"ready\",template=\"api-service\",runtime=\"local\"}"], 1)
      << metrics.body;
  EXPECT_TRUE(samples.count("idp_reconciler_queue_depth")) << metrics.body;
}

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

// The Templates page's schedule preview (docs/dashboard.md): the scheduler's own parser,
// next runs after a given time, and the parse error with its column.
TEST_F(ApiSurfaceTest, SchedulePreviewGivesNextRunsOrTheErrorWithItsColumn) {
  const std::string after = "&after=1767225600000"; // 2026-01-01T00:00:00Z, a Thursday
  auto rate = get("/api/v1/schedule-preview?expression=" + util::url_encode("rate(5 minutes)") + "&count=3" + after);
  ASSERT_EQ(rate.status, 200) << rate.body;
  auto r = json::parse(rate.body);
  EXPECT_EQ(r["kind"], "rate");
  EXPECT_EQ(r["after"], "2026-01-01T00:00:00Z");
  ASSERT_EQ(r["runs"].size(), 3u) << rate.body;
  EXPECT_EQ(r["runs"][0]["at"], "2026-01-01T00:05:00Z");
  EXPECT_EQ(r["runs"][2]["at"], "2026-01-01T00:15:00Z");
  EXPECT_EQ(r["runs"][2]["at_ms"], 1767225600000 + 15 * 60 * 1000);

  auto cron = json::parse(
      get("/api/v1/schedule-preview?expression=" + util::url_encode("cron(0 9 ? * MON-FRI *)") + after).body);
  std::vector<std::string> at;
  for (const auto& x : cron["runs"]) {
    at.push_back(x["at"]);
  }
  EXPECT_EQ(at, (std::vector<std::string>{"2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z",
                                          "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z"}))
      << "five runs by default, weekends skipped";
  auto ended =
      json::parse(get("/api/v1/schedule-preview?expression=" + util::url_encode("cron(0 9 * * ? 2025)") + after).body);
  EXPECT_EQ(ended["runs"].size(), 0u) << "a schedule with no run left answers an empty list";

  auto bad = get("/api/v1/schedule-preview?expression=" + util::url_encode("cron(61 * * * ? *)"));
  EXPECT_EQ(bad.status, 400);
  auto b = json::parse(bad.body);
  EXPECT_EQ(b["error"], "invalid_schedule");
  EXPECT_EQ(b["column"], 6) << bad.body;
  EXPECT_NE(b["message"].get<std::string>().find("at column 6: expected a minute 0-59"), std::string::npos) << bad.body;

  struct Bad {
    std::string query, names;
  };
  for (const Bad& c :
       {Bad{"", "\"expression\" is missing or empty"}, Bad{"?expression=", "\"expression\" is missing or empty"},
        Bad{"?expression=rate(1%20hour)&count=0", "\"count\""},
        Bad{"?expression=rate(1%20hour)&count=many", "\"count\""},
        Bad{"?expression=rate(1%20hour)&after=yesterday", "\"after\""}}) {
    auto resp = get("/api/v1/schedule-preview" + c.query);
    EXPECT_EQ(resp.status, 400) << c.query;
    auto message = json::parse(resp.body).value("message", "");
    EXPECT_NE(message.find("query parameter " + c.names + ": expected"), std::string::npos)
        << c.query << ": " << message;
  }
  auto many = json::parse(get("/api/v1/schedule-preview?expression=rate(1%20hour)&count=1000").body);
  EXPECT_EQ(many["runs"].size(), 50u) << "count is capped";

  util::HttpRequest anonymous;
  anonymous.url = d->api_url() + "/api/v1/schedule-preview?expression=rate(1%20hour)";
  auto refused = util::http_request(anonymous);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401) << "read like the other API routes: signed in";
}

// cpp-httplib answers br at quality 11 whenever a client offers it (450 ms for the list of
// 200 environments, bench/dashboard): the server answers gzip instead, br never.
TEST_F(ApiSurfaceTest, ResponsesAreGzipNotBrotliWhenTheBrowserOffersBoth) {
  auto fetch_with = [&](const std::string& encodings) {
    util::HttpRequest r;
    r.url = d->api_url() + "/assets/dashboard.js";
    r.headers = {{"Accept-Encoding", encodings}};
    auto resp = util::http_request(r);
    EXPECT_TRUE(resp);
    return resp ? *resp : util::HttpResponse{};
  };
  auto chromium = fetch_with("gzip, deflate, br, zstd");
  EXPECT_EQ(chromium.status, 200);
  EXPECT_EQ(chromium.headers["content-encoding"], "gzip");
  EXPECT_EQ(chromium.body.substr(0, 2), "\x1f\x8b") << "a gzip body";
  auto only_br = fetch_with("br");
  EXPECT_EQ(only_br.status, 200);
  EXPECT_EQ(only_br.headers.count("content-encoding"), 0u) << only_br.headers["content-encoding"];
  EXPECT_NE(only_br.body.find("/api/v1/events/stream"), std::string::npos) << "sent as is";
}

// Telemetry (issue 14): every request the API and the webhook listener answer is timed on
// /metrics, by listener, method, route (its parameters as {}) and status code. A path of
// the caller's choosing never becomes a series of its own.
TEST(ApiLatencyTest, RequestsAndWebhooksAreHistogramsByRouteOnMetrics) {
  TempDir tmp("idp-latency");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "webhook_listen: 127.0.0.1:0\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  std::string hook_url = d.webhook_url();
  ASSERT_FALSE(hook_url.empty()) << util::read_file(d.home() + "/daemon.json").value_or("no daemon.json");
  for (int i = 0; i < 2; ++i) {
    util::HttpRequest r;
    r.method = "POST";
    r.url = hook_url;
    r.body = "{}";
    r.headers = {{"Content-Type", "application/json"}, {"X-GitHub-Event", "push"}};
    auto resp = util::http_request(r);
    ASSERT_TRUE(resp);
    EXPECT_EQ(resp->status, 401) << "unsigned: refused";
  }
  EXPECT_EQ(d.api("GET", "/api/v1/environments/nope-1").first, 404);
  EXPECT_EQ(d.api("GET", "/api/v1/environments/nope-2").first, 404);
  EXPECT_EQ(d.api("GET", "/api/v1/environments").first, 200);
  EXPECT_EQ(d.api_as("", "GET", "/api/v1/environments/anyone").first, 401);
  EXPECT_EQ(d.api_as("", "GET", "/a/path/of/the/callers/choosing").first, 401);

  util::HttpRequest scrape;
  scrape.url = d.api_url() + "/metrics";
  scrape.headers = {d.admin_auth_header()};
  Expected<util::HttpResponse> metrics = make_error(ErrorCode::internal, "not scraped");
  std::map<std::string, double> samples;
  auto count = [&](const std::string& labels) {
    return samples["idp_http_request_duration_seconds_count{" + labels + "}"];
  };
  // A request is counted once its answer is written: the last one's count may land just
  // after the client has read it, so scrape until it is there (or the deadline).
  wait_until(
      [&] {
        metrics = util::http_request(scrape);
        samples = metrics && metrics->status == 200 ? prometheus_samples(metrics->body) : decltype(samples){};
        return count("server=\"hooks\",method=\"POST\",route=\"/hooks/github\",code=\"401\"") >= 2 &&
               count("server=\"api\",method=\"GET\",route=\"/api/v1/environments/{}\",code=\"404\"") >= 2 &&
               count("server=\"api\",method=\"GET\",route=\"/api/v1/environments\",code=\"200\"") >= 1 &&
               count("server=\"api\",method=\"GET\",route=\"(none)\",code=\"401\"") >= 2;
      },
      10000, 20);
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("# TYPE idp_http_request_duration_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(count("server=\"hooks\",method=\"POST\",route=\"/hooks/github\",code=\"401\""), 2) << metrics->body;
  EXPECT_EQ(count("server=\"api\",method=\"GET\",route=\"/api/v1/environments/{}\",code=\"404\""), 2) << metrics->body;
  EXPECT_EQ(count("server=\"api\",method=\"GET\",route=\"/api/v1/environments\",code=\"200\""), 1) << metrics->body;
  EXPECT_EQ(count("server=\"api\",method=\"GET\",route=\"(none)\",code=\"401\""), 2)
      << "refused before routing: no route of the caller's\n"
      << metrics->body;
  for (const auto& [name, value] : samples) {
    EXPECT_EQ(name.find("nope"), std::string::npos) << name;
    EXPECT_EQ(name.find("callers"), std::string::npos) << name;
    if (name.rfind("idp_http_request_duration_seconds_count{", 0) == 0) {
      std::string labels = name.substr(name.find('{'));
      std::string inf =
          "idp_http_request_duration_seconds_bucket" + labels.substr(0, labels.size() - 1) + ",le=\"+Inf\"}";
      EXPECT_EQ(samples[inf], value) << inf;
      EXPECT_GE(samples["idp_http_request_duration_seconds_sum" + labels], 0) << labels;
    }
  }
}

// A long poll (issue 14: `idp create` returns as soon as the environment serves, not at the
// next poll): GET /api/v1/environments/NAME?since=<X-Idp-State>&wait_ms=N answers when the
// record changes. The test waits until the server counts the request as waiting, changes
// the environment, and gets that change with a new state; unchanged, it gets the same state.
TEST_F(ApiSurfaceTest, AnEnvironmentsGetWithSinceWaitsForItsNextChange) {
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/watched");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/watched"}).exit_code, 0);
  auto first = get("/api/v1/environments/preview-watched");
  ASSERT_EQ(first.status, 200);
  const std::string state = first.headers["x-idp-state"];
  ASSERT_FALSE(state.empty());
  const std::string expires = json::parse(first.body)["expires_at"];

  // Unchanged: the same state (after wait_ms; or at once with a state it no longer has).
  auto same = get("/api/v1/environments/preview-watched?since=" + state + "&wait_ms=50");
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(same.headers["x-idp-state"], state);
  auto stale = get("/api/v1/environments/preview-watched?since=0000&wait_ms=30000");
  EXPECT_EQ(stale.headers["x-idp-state"], state) << "a state it is not in is answered at once";

  util::HttpResponse waited;
  std::thread watcher([&] { waited = get("/api/v1/environments/preview-watched?since=" + state + "&wait_ms=30000"); });
  auto waiting = [&] {
    auto m = get("/metrics");
    return prometheus_samples(m.body)["idp_api_waiting"] == 1;
  };
  bool counted = wait_until(waiting, 20000, 5);
  EXPECT_TRUE(counted) << "the request never waited";
  ASSERT_EQ(d->cli({"extend", "preview-watched", "--ttl", "5d"}).exit_code, 0);
  watcher.join();
  EXPECT_EQ(waited.status, 200);
  EXPECT_NE(waited.headers["x-idp-state"], state);
  EXPECT_NE(json::parse(waited.body)["expires_at"], expires) << "the answer is the changed environment";
  EXPECT_TRUE(wait_until([&] { return prometheus_samples(get("/metrics").body)["idp_api_waiting"] == 0; }, 20000, 5));
}
