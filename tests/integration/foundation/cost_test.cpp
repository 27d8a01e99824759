// Issue 12, must show 1: what a local environment costs, from its cgroup's counters. Two
// environments of the same app with the same reservation on a real `idp serve`; one is
// made to burn CPU. Its used cost grows past the idle one's, the reserved cost of both is
// the rates x their running time, and the CPU seconds charged are the growth of the
// cgroup's own counter (read here from the revision's group). `idp cost` shows it, grouped
// by team too; the chargeback report of the month adds up to the same figures.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// GET /burn?ms=N spins the CPU for N ms; everything else answers at once.
const char* k_cost_app = R"js('use strict';
const http = require('http');
http.createServer((req, res) => {
  const m = /^\/burn\?ms=(\d+)/.exec(req.url);
  if (m) {
    const until = Date.now() + Number(m[1]);
    let x = 0;
    while (Date.now() < until) { x += Math.sqrt(x + 1); }
    res.end(String(x > 0));
    return;
  }
  res.end('ok');
}).listen(Number(process.env.PORT), '127.0.0.1');
)js";

constexpr double k_cpu_hour = 0.5;
constexpr double k_memory_gb_hour = 0.01;

// CPU seconds of every cgroup of the environment's active revision, as the kernel counts
// them (cgroup v2 cpu.stat usage_usec, v1 cpuacct.usage); nullopt when there is none.
std::optional<double> cgroup_cpu_seconds(const DaemonProcess& d, const std::string& env) {
  auto text = util::read_file(d.home() + "/envs/" + env + "/state.json");
  if (!text) {
    return std::nullopt;
  }
  json state = json::parse(*text, nullptr, false);
  if (!state.is_object() || !state["active"].is_object()) {
    return std::nullopt;
  }
  std::optional<double> total;
  for (const auto& dir : state["active"].value("cgroup_dirs", std::vector<std::string>{})) {
    if (auto stat = util::read_file(dir + "/cpu.stat")) {
      for (const auto& line : util::split(*stat, '\n')) {
        if (util::starts_with(line, "usage_usec ")) {
          total = total.value_or(0) + util::parse_int<int64_t>(line.substr(11), 0, INT64_MAX).value_or(0) / 1e6;
        }
      }
    }
    if (auto ns = util::read_file(dir + "/cpuacct.usage")) {
      total = total.value_or(0) + util::parse_int<int64_t>(util::trim(*ns), 0, INT64_MAX).value_or(0) / 1e9;
    }
  }
  return total;
}

// The app above at 0.25 vCPU and 0.5 GB.
void commit_cost_app(GitRepo& repo) {
  repo.write_file("server.js", k_cost_app);
  repo.write_file(".idp/config.yml", "template: api-service\nhealth_check_path: /health\ncpu: 256\nmemory: 512\n"
                                     "local:\n  start: \"node server.js\"\n");
  repo.commit("app");
}

json line_of(const json& cost, const std::string& env) {
  for (const auto& l : cost["lines"]) {
    if (l.value("name", "") == env) {
      return l;
    }
  }
  return json::object();
}

} // namespace

TEST(CostTest, ABusyEnvironmentAccruesMoreUsedCostThanAnIdleOneFromItsCgroupCounters) {
  TempDir tmp("idp-cost");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  GitRepo repo(tmp.sub("repo"));
  commit_cost_app(repo);
  ASSERT_TRUE(util::write_file_atomic(
      tmp.sub("server.yml"), "cost:\n  sample_interval: 1s\n  cpu_hour: 0.5\n  memory_gb_hour: 0.01\n  currency: EUR\n"
                             "teams:\n  payments:\n    members: [admin]\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  for (const char* name : {"busy", "idle"}) {
    auto r = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", name});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << d.log();
  }
  auto cost = [&] { return d.api("GET", "/api/v1/cost").second; };
  // Both sampled while running.
  ASSERT_TRUE(wait_until(
      [&] {
        json c = cost();
        return line_of(c, "busy").value("running_hours", 0.0) > 0 && line_of(c, "idle").value("running_hours", 0.0) > 0;
      },
      60'000))
      << cost().dump(2);
  auto before = cgroup_cpu_seconds(d, "busy");
  if (!before) {
    GTEST_SKIP() << "no cgroup CPU counter on this machine (cgroups unusable): nothing is measured";
  }
  int port = d.env("busy")["outputs"].value("port", 0);
  ASSERT_GT(port, 0) << d.env("busy").dump(2);
  util::HttpRequest burn;
  burn.url = "http://127.0.0.1:" + std::to_string(port) + "/burn?ms=1500";
  burn.timeout_ms = 30'000;
  ASSERT_TRUE(util::http_request(burn).has_value());
  double burned = *cgroup_cpu_seconds(d, "busy") - *before;
  ASSERT_GT(burned, 0.0) << "the burn ran in the environment's cgroup";
  // A pass after the burn charges all of it.
  ASSERT_TRUE(wait_until([&] { return line_of(cost(), "busy").value("cpu_seconds", 0.0) >= burned - 1e-6; }, 60'000))
      << cost().dump(2) << "\nburned " << burned;

  json c = cost();
  json busy = line_of(c, "busy");
  json idle = line_of(c, "idle");
  EXPECT_EQ(c["currency"], "EUR");
  EXPECT_LE(busy["cpu_seconds"].get<double>(), *cgroup_cpu_seconds(d, "busy") + 1e-6)
      << "never more than the counter holds";
  EXPECT_GT(busy["used"].get<double>(), idle["used"].get<double>()) << c.dump(2);
  EXPECT_GT(busy["cpu_seconds"].get<double>(), 2 * idle["cpu_seconds"].get<double>()) << c.dump(2);
  for (const json& l : {busy, idle}) {
    // Reserved: 0.25 vCPU and 0.5 GB for each running hour, at the configured rates.
    EXPECT_NEAR(l["reserved"].get<double>(),
                l["running_hours"].get<double>() * (0.25 * k_cpu_hour + 0.5 * k_memory_gb_hour), 2e-6)
        << l.dump(2);
    // Used: the counters' figures at the same rates.
    EXPECT_NEAR(l["used"].get<double>(),
                l["cpu_seconds"].get<double>() / 3600 * k_cpu_hour +
                    l["memory_gb_hours"].get<double>() * k_memory_gb_hour,
                2e-6)
        << l.dump(2);
    EXPECT_GT(l["memory_gb_hours"].get<double>(), 0) << "memory in use is measured: " << l.dump(2);
    EXPECT_NEAR(l["total"].get<double>(), l["reserved"].get<double>() + l["storage"].get<double>(), 2e-6);
    EXPECT_GT(l["per_day"].get<double>(), 0);
    EXPECT_EQ(l["team"], "payments") << "the admin token's owner is in team payments";
  }

  // /metrics: a gauge per environment.
  util::HttpRequest m;
  m.url = d.api_url() + "/metrics";
  m.headers = {d.admin_auth_header()};
  auto metrics = util::http_request(m);
  ASSERT_TRUE(metrics && metrics->status == 200);
  std::string gauge = "idp_environment_cost{environment=\"busy\",currency=\"EUR\"} ";
  auto at = metrics->body.find(gauge);
  ASSERT_NE(at, std::string::npos) << metrics->body;
  EXPECT_GT(std::stod(metrics->body.substr(at + gauge.size())), 0.0);
  EXPECT_NE(metrics->body.find("# TYPE idp_environment_cost_per_day gauge"), std::string::npos);

  // The CLI: one environment, and grouped by team.
  auto one = d.cli({"cost", "busy"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("EUR"), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("CPU seconds"), std::string::npos) << one.out;
  // Measured on this runtime: not an estimate (a runtime without counters says it is one).
  json busy_cost = d.api("GET", "/api/v1/environments/busy/cost").second;
  EXPECT_EQ(busy_cost.value("estimate", true), false) << busy_cost.dump(2);
  EXPECT_GT(busy_cost.value("measured_hours", 0.0), 0.0) << busy_cost.dump(2);
  auto by_team = d.cli({"cost", "--by", "team", "--json"});
  ASSERT_EQ(by_team.exit_code, 0) << by_team.err;
  json teams = json::parse(by_team.out, nullptr, false);
  ASSERT_EQ(teams["lines"].size(), 1u) << by_team.out;
  EXPECT_EQ(teams["lines"][0]["team"], "payments");
  EXPECT_EQ(teams["lines"][0]["environments"], json::array({"busy", "idle"}));
  auto bad = d.cli({"cost", "--by", "planet"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("by: expected owner, team, repo or template, got \"planet\""), std::string::npos) << bad.err;

  // The month's chargeback report holds the same usage (the samples so far are this month's).
  std::string month = util::format_iso8601(util::SystemClock().now_ms()).substr(0, 7);
  auto csv = d.cli({"cost", "report", "--month", month, "--by", "team", "--output", tmp.sub("report.csv")});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  auto text = util::read_file(tmp.sub("report.csv"));
  ASSERT_TRUE(text.has_value());
  auto rows = util::split(util::trim(*text), '\n');
  ASSERT_EQ(rows.size(), 2u) << *text;
  EXPECT_TRUE(util::starts_with(rows[0], "month,team,environments,")) << rows[0];
  EXPECT_TRUE(util::starts_with(rows[1], month + ",payments,2,")) << rows[1];
  EXPECT_TRUE(util::ends_with(rows[1], ",EUR")) << rows[1];
}

// Issue 12, must show 2 on a real `idp serve`: a budget's thresholds reach a local webhook
// once each (Slack-compatible JSON), are recorded as events, and `on_exhausted: block`
// refuses the next create with 409 budget_exhausted and the reason, via the API and the CLI.
TEST(CostTest, BudgetAlertsReachTheWebhookOnceEachAndBlockRefusesTheNextCreate) {
  std::mutex mu;
  std::vector<json> received;
  httplib::Server hook;
  hook.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> g(mu);
    received.push_back(json::parse(req.body, nullptr, false));
    res.status = 200;
  });
  int hook_port = hook.bind_to_any_port("127.0.0.1");
  std::thread hook_thread([&] { hook.listen_after_bind(); });
  struct Stop {
    httplib::Server& s;
    std::thread& t;
    ~Stop() {
      s.stop();
      t.join();
    }
  } stop{hook, hook_thread};
  auto alerts = [&] {
    std::lock_guard<std::mutex> g(mu);
    return received;
  };

  TempDir tmp("idp-budget");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  GitRepo repo(tmp.sub("repo"));
  commit_cost_app(repo);
  // 250 an hour reserved at these rates: the 0.01 budget is spent within a second.
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"),
                                      "cost:\n  sample_interval: 1s\n  cpu_hour: 1000\n"
                                      "budgets:\n  - name: tiny\n    monthly: 0.01\n    alert_at: [50, 100]\n"
                                      "    notify: [{webhook: \"http://127.0.0.1:" +
                                          std::to_string(hook_port) + "/hook\"}]\n    on_exhausted: block\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto first = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", "first"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err << d.log();
  ASSERT_TRUE(wait_until([&] { return alerts().size() >= 2; }, 60'000)) << d.log();
  // Two more passes (running time grows twice): no alert comes again.
  auto running = [&] { return line_of(d.api("GET", "/api/v1/cost").second, "first").value("running_hours", 0.0); };
  double r0 = running();
  ASSERT_TRUE(wait_until([&] { return running() > r0; }, 30'000));
  double r1 = running();
  ASSERT_TRUE(wait_until([&] { return running() > r1; }, 30'000));
  auto got = alerts();
  ASSERT_EQ(got.size(), 2u) << json(got).dump(2);
  EXPECT_EQ(got[0]["threshold"], 50);
  EXPECT_EQ(got[1]["threshold"], 100);
  EXPECT_EQ(got[0]["budget"], "tiny");
  EXPECT_TRUE(util::starts_with(got[1]["text"].get<std::string>(), "Budget \"tiny\" reached 100% in ")) << got[1];

  auto [status, body] =
      d.api("POST", "/api/v1/environments", json{{"repo", repo.path()}, {"branch", "main"}, {"name", "second"}}.dump());
  EXPECT_EQ(status, 409) << body.dump();
  EXPECT_EQ(body["error"], "budget_exhausted");
  EXPECT_TRUE(util::starts_with(body.value("message", ""), "budget \"tiny\" is exhausted: ")) << body.dump();
  auto cli = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", "third"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_NE(cli.err.find("budget \"tiny\" is exhausted"), std::string::npos) << cli.err;
  EXPECT_EQ(d.api("GET", "/api/v1/environments/second").first, 404) << "nothing recorded";
  auto events = d.cli({"events", "--json"});
  EXPECT_NE(events.out.find("budget-alert"), std::string::npos) << events.out;
}
