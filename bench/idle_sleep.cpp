// bench/idle_sleep (issue 12): --envs environments of the example app (examples/api-service,
// one node process each) on one `idp serve`, --asleep of them put to sleep. Measures the
// memory of every process the server runs (the daemon, Caddy, the environments' shims and
// apps: the RSS of each, summed) with all of them awake and with most asleep (the ratio),
// what a sleeping environment still holds, and the wake of a sleeping environment (a
// request through the router until the app's own answer) beside the app's own start by
// hand in the same run, just before each wake (bench::app_start_ms: the floor). Goals: wake p95 within 100 ms of
// the app's own start; a sleeping environment under 1 MB.
//
//   build/bench/bench_idle_sleep [--envs 300] [--asleep 270] [--wakes 20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

std::string env_name(int i) { return "preview-nap-n" + std::to_string(i); }

json environments(const DaemonProcess& d) {
  auto [code, body] = d.api("GET", "/api/v1/environments");
  return code == 200 ? body["environments"] : json::array();
}

// The reason of the environment's latest `wake` event (its phases), empty while it has none.
std::string wake_event(const DaemonProcess& d, const std::string& env) {
  auto [code, body] = d.api("GET", "/api/v1/environments/" + env + "/events");
  const json list = body.is_array() ? body : body.value("events", json::array());
  std::string reason;
  for (const auto& ev : list) {
    if (ev.value("action", "") == "wake") {
      reason = ev.value("reason", "");
    }
  }
  return reason;
}

// The RSS of the daemon and every process it runs for this home (Caddy, shims, apps), KiB.
long server_memory_kib(const DaemonProcess& d) {
  long total = bench::rss_kib(d.pid());
  for (pid_t p : d.home_processes()) {
    total += std::max(0L, bench::rss_kib(p));
  }
  return total;
}

[[noreturn]] void fail(const DaemonProcess& d, const std::string& what) {
  std::fprintf(stderr, "bench/idle_sleep: %s\n%s\n", what.c_str(), d.log().c_str());
  std::exit(1);
}

} // namespace

int main(int argc, char** argv) {
  int envs = 300;
  int asleep = 270;
  int wakes = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--envs")) {
      envs = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--asleep")) {
      asleep = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--wakes")) {
      wakes = std::atoi(argv[i + 1]);
    }
  }
  if (envs < 1 || asleep < 1 || asleep > envs || wakes < 1 || wakes > asleep) {
    std::fprintf(stderr, "bench/idle_sleep: needs 1 <= --wakes <= --asleep <= --envs\n");
    return 2;
  }
  auto tmp = util::make_temp_dir("idp-bench-idle-sleep");
  std::string root = *tmp;
  (void)util::ensure_dir(root + "/home");
  GitRepo repo(root + "/app");
  repo.copy_from(source_dir() + "/examples/api-service");
  repo.commit("example");
  for (int i = 0; i < envs; ++i) {
    repo.git({"branch", "-f", "nap/n" + std::to_string(i)});
  }

  // Nothing sleeps by itself during the run: the bench puts them to sleep (idp sleep's API).
  (void)util::write_file_atomic(root + "/server.yml", "sleep:\n  check_interval: 1h\n");
  DaemonProcess d(root + "/home", {"--workers", "8", "--config", root + "/server.yml"});
  d.log_level = "info";
  d.start();
  int64_t t0 = util::steady_ms();
  for (int i = 0; i < envs; ++i) {
    json body = {{"repo", repo.path()}, {"branch", "nap/n" + std::to_string(i)}};
    auto [code, answer] = d.api("POST", "/api/v1/environments", body.dump());
    if (code != 202) {
      fail(d, "create " + std::to_string(i) + " answered " + std::to_string(code) + ": " + answer.dump());
    }
  }
  auto count = [&](const std::function<bool(const json&)>& pred) {
    int n = 0;
    for (const auto& e : environments(d)) {
      n += pred(e) ? 1 : 0;
    }
    return n;
  };
  if (!wait_until([&] { return count([](const json& e) { return e["phase"] == "ready"; }) == envs; }, 60 * 60'000,
                  500)) {
    fail(d, "not every environment became ready");
  }
  double create_s = static_cast<double>(util::steady_ms() - t0) / 1000.0;
  long awake_kib = server_memory_kib(d);
  size_t awake_procs = d.home_processes().size();

  for (int i = 0; i < asleep; ++i) {
    auto [code, answer] = d.api("POST", "/api/v1/environments/" + env_name(i) + "/sleep", "{}");
    if (code != 202) {
      fail(d, "sleep " + std::to_string(i) + " answered " + std::to_string(code) + ": " + answer.dump());
    }
  }
  auto is_asleep = [](const json& e) { return e["sleep"].is_object() && e["sleep"]["state"] == "asleep"; };
  if (!wait_until([&] { return count(is_asleep) == asleep; }, 30 * 60'000, 500)) {
    fail(d, "not every environment went to sleep");
  }
  // Their processes are gone once the sleep is recorded; the count settles at once.
  long asleep_kib = server_memory_kib(d);
  size_t asleep_procs = d.home_processes().size();
  double awake_each = static_cast<double>(awake_kib) / envs;
  double sleeping_each = (static_cast<double>(asleep_kib) - awake_each * (envs - asleep)) / asleep;

  // Wakes: one request through the router to a sleeping environment, until the app answers.
  // Each beside the floor, the app alone started by hand just before it, on the same machine
  // in the same state (the server, Caddy and the awake environments running).
  std::vector<double> wake_ms;
  std::vector<double> floor_ms;
  std::vector<std::string> wake_events;
  for (int i = 0; i < wakes; ++i) {
    floor_ms.push_back(bench::app_start_ms(repo.path()));
    util::HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(d.router_port()) + "/health";
    req.headers = {{"Host", env_name(i) + ".preview.localhost:" + std::to_string(d.router_port())}};
    req.timeout_ms = 60'000;
    auto w0 = std::chrono::steady_clock::now();
    auto r = util::http_request(req);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
    if (!r || r->status != 200) {
      fail(d, "the wake of " + env_name(i) + " got " +
                  (r ? std::to_string(r->status) + " " + r->body : r.error().message));
    }
    wake_ms.push_back(ms);
    // The wake is over when its event is written (after Caddy routes to the app): the next
    // floor must not share the machine with this wake's route change.
    std::string reason;
    if (!wait_until([&] { return !(reason = wake_event(d, env_name(i))).empty(); }, 60'000, 20)) {
      fail(d, "no wake event for " + env_name(i));
    }
    wake_events.push_back(reason);
  }

  // Where the median wake's time went: its `wake` event says it phase by phase.
  std::vector<std::pair<double, int>> order;
  for (int i = 0; i < wakes; ++i) {
    order.emplace_back(wake_ms[i], i);
  }
  std::sort(order.begin(), order.end());
  const std::string median_env = env_name(order[order.size() / 2].second);
  const std::string& breakdown = wake_events[static_cast<size_t>(order[order.size() / 2].second)];

  auto p50 = [](const std::vector<double>& v) { return bench::percentile(v, 0.5); };
  auto p95 = [](const std::vector<double>& v) { return bench::percentile(v, 0.95); };
  std::printf("bench/idle_sleep: api-service example, one idp serve, %d environments (created in %.1f s), %d put "
              "to sleep\n",
              envs, create_s, asleep);
  std::printf("  %-52s %12s %12s %8s\n", "", "all awake", "asleep", "ratio");
  std::printf("  %-52s %12ld %12ld %8.3f\n", "memory of the server's processes, KiB (RSS summed)", awake_kib,
              asleep_kib, static_cast<double>(asleep_kib) / static_cast<double>(awake_kib));
  std::printf("  %-52s %12zu %12zu\n", "processes of the home", awake_procs, asleep_procs);
  std::printf("  %-52s %12.0f %12.0f   (goal: a sleeping one under 1024 KiB)\n", "memory per environment, KiB",
              awake_each, sleeping_each);
  std::printf("  %-52s %12s %12s %8s\n", "", "app's start", "wake", "over");
  std::printf("  %-52s %12.1f %12.1f %8.1f\n", "wake through the router vs the app's own start, p50 ms", p50(floor_ms),
              p50(wake_ms), p50(wake_ms) - p50(floor_ms));
  std::printf("  %-52s %12.1f %12.1f %8.1f   (goal: within 100 ms)\n",
              "wake through the router vs the app's own start, p95 ms", p95(floor_ms), p95(wake_ms),
              p95(wake_ms) - p95(floor_ms));
  std::printf("  the median wake (%s), as its event says: %s\n", median_env.c_str(), breakdown.c_str());
  std::printf("reproduce: cmake --build build --target bench_idle_sleep && build/bench/bench_idle_sleep --envs %d "
              "--asleep %d --wakes %d\n",
              envs, asleep, wakes);
  d.stop();
  (void)util::remove_all(root);
  return 0;
}
