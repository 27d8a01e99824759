// bench/api_auth: what authentication costs. In one run against one `idp serve`, with the
// same clients:
//   1. unauthenticated GET /healthz per second (the baseline: no token check);
//   2. GET /api/v1/environments with a bearer token per second (token hash, store lookup,
//      role check, then the handler);
//   3. signed webhook ingest per second (HMAC over every watched repository's secret first,
//      then dedup by delivery id and body hash, then the queue).
// Ratios to /healthz are printed beside the rates, and beside each the daemon's CPU time
// per request (from /proc), which, unlike a rate, does not move with the machine's other
// load. Goals (issue 9): auth costs under 10% of throughput; webhook ingest at or above
// 3,000/s on 2 cores.
//
//   build/bench/bench_api_auth [--seconds 3] [--clients 8] [--rounds 6]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include <unistd.h>

#include "bench_support.hpp"
#include "integration/gitops/gitops_test_support.hpp"
#include "unit/sources/webhook_examples.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using idp::bench::raw_http_request;
using idp::bench::raw_http_status;
using nlohmann::json;

namespace {

// Webhooks only (no polling): changes arrive by the deliveries the test sends.
GitopsOptions no_poll() {
  GitopsOptions o;
  o.poll = false;
  o.log_level = "info"; // what `idp serve` logs by default: no line per delivery
  return o;
}

struct Run {
  uint64_t ok = 0;
  uint64_t bad = 0;
  double seconds = 0;
  double daemon_cpu_ms = 0;   // user + system time the daemon spent in the phase
  double daemon_switches = 0; // context switches of the daemon's threads in the phase
  double rate() const { return seconds > 0 ? ok / seconds : 0; }
  double switches_per_request() const { return ok + bad > 0 ? daemon_switches / (ok + bad) : 0; }
  // The daemon's CPU time per request: unlike the rate, it does not depend on what else
  // the machine runs (the bench's own clients share its cores).
  double cpu_us_per_request() const { return ok + bad > 0 ? daemon_cpu_ms * 1000.0 / (ok + bad) : 0; }
};

// user + system CPU time of process `pid` so far, in ms (/proc/PID/stat fields 14 and 15).
double cpu_ms_of(pid_t pid) {
  std::string stat = util::read_file("/proc/" + std::to_string(pid) + "/stat").value_or("");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  auto fields = util::split(stat.substr(close + 2), ' '); // fields from the 3rd (state) on
  if (fields.size() < 13) {
    return 0;
  }
  double ticks = std::atof(fields[11].c_str()) + std::atof(fields[12].c_str());
  return ticks * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Context switches (voluntary + involuntary) of every thread of process `pid` so far: each
// is a wake-up on this machine's virtual CPUs, where the profile says the time goes.
double switches_of(pid_t pid) {
  double total = 0;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    for (const auto& line : util::split(util::read_file(task.path().string() + "/status").value_or(""), '\n')) {
      if (util::starts_with(line, "voluntary_ctxt_switches:") ||
          util::starts_with(line, "nonvoluntary_ctxt_switches:")) {
        total += std::atof(line.substr(line.find(':') + 1).c_str());
      }
    }
  }
  return total;
}

Run hammer(pid_t daemon, int clients, double seconds, const std::function<bool(int, uint64_t)>& one) {
  double cpu0 = cpu_ms_of(daemon);
  double switches0 = switches_of(daemon);
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> bad{0};
  int64_t t0 = util::steady_ms();
  int64_t until = t0 + static_cast<int64_t>(seconds * 1000);
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; util::steady_ms() < until; ++i) {
        (one(t, i) ? ok : bad) += 1;
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  return {ok.load(), bad.load(), (util::steady_ms() - t0) / 1000.0, cpu_ms_of(daemon) - cpu0,
          switches_of(daemon) - switches0};
}

} // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int clients = 8;
  int rounds = 6;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) {
      seconds = std::atof(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--clients")) {
      clients = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--rounds")) {
      rounds = std::max(1, std::atoi(argv[i + 1]));
    }
  }
  if (webhook_examples_dir().empty()) {
    util::Command setup;
    setup.argv = {source_dir() + "/tests/integration/gitops/setup_webhook_examples.sh", IDP_NPM_DIR, "7.6.1"};
    auto r = util::run(setup);
    if (!r || !r->ok() || webhook_examples_dir().empty()) {
      std::fprintf(stderr, "bench/api_auth: needs npm to install @octokit/webhooks-examples\n");
      return 1;
    }
  }
  GitopsRig rig("idp-bench-auth", no_poll());
  rig.start();
  std::printf("bench/api_auth: idp serve is pid %d (for a profiler)\n", static_cast<int>(rig.daemon->pid()));
  std::fflush(stdout);
  const std::string base = rig.daemon->api_url();
  const std::string token = rig.daemon->admin_token();
  // The push serialised once, with a placeholder where each request puts its own branch:
  // building and dumping a 7 KB JSON document per request cost the clients about as much
  // CPU as the daemon spent ingesting it, on the same 2 cores.
  const std::string k_branch_placeholder = "bench/BRANCH-PLACEHOLDER";
  const std::string deleted_example =
      push_deleted_payload(rig.payload_repo(), k_branch_placeholder, std::string(40, '1')).dump();
  const size_t placeholder_at = deleted_example.find("refs/heads/" + k_branch_placeholder);
  if (placeholder_at == std::string::npos) {
    std::fprintf(stderr, "bench/api_auth: the push example does not carry its ref\n");
    return 1;
  }

  // Every phase uses the same light client (bench_support's raw_http_status), so the
  // ratios compare the daemon's work, not the clients'.
  const std::string host_port = base.substr(base.find("//") + 2);
  const std::string healthz_req = raw_http_request("GET", host_port, "/healthz", {});
  const std::string list_req =
      raw_http_request("GET", host_port, "/api/v1/environments", {{"Authorization", "Bearer " + token}});
  const std::string refused_req = raw_http_request("GET", host_port, "/api/v1/environments",
                                                   {{"Authorization", "Bearer idp_" + std::string(64, '0')}});
  // The phases take turns, `rounds` times, each for seconds / rounds: a machine that slows
  // down or speeds up during the run (other work on the same cores) moves every phase
  // alike, and each round's ratio compares neighbours in time. The ratio printed is the
  // median over the rounds; rates and CPU are over the whole run.
  Run healthz;
  Run list;
  Run refused;
  Run hooks;
  std::vector<double> list_ratios;
  std::vector<double> refused_ratios;
  std::vector<double> hooks_ratios;
  const double slice = seconds / rounds;
  auto add = [](Run& total, const Run& r) {
    total.ok += r.ok;
    total.bad += r.bad;
    total.seconds += r.seconds;
    total.daemon_cpu_ms += r.daemon_cpu_ms;
    total.daemon_switches += r.daemon_switches;
  };
  for (int round = 0; round < rounds; ++round) {
    Run h = hammer(rig.daemon->pid(), clients, slice,
                   [&](int, uint64_t) { return raw_http_status(host_port, healthz_req) == 200; });
    Run l = hammer(rig.daemon->pid(), clients, slice,
                   [&](int, uint64_t) { return raw_http_status(host_port, list_req) == 200; });
    Run r = hammer(rig.daemon->pid(), clients, slice,
                   [&](int, uint64_t) { return raw_http_status(host_port, refused_req) == 401; });
    Run w = hammer(rig.daemon->pid(), clients, slice, [&](int t, uint64_t i) {
      // Each delivery its own branch and id, across rounds too (a repeat is a duplicate).
      const std::string n = std::to_string(round) + "-" + std::to_string(t) + "-" + std::to_string(i);
      std::string body = deleted_example;
      body.replace(placeholder_at, 11 + k_branch_placeholder.size(), "refs/heads/bench/" + n);
      std::string req =
          raw_http_request("POST", host_port, "/hooks/github",
                           {{"X-GitHub-Event", "push"},
                            {"X-GitHub-Delivery", "bench-" + n},
                            {"Content-Type", "application/json"},
                            {"X-Hub-Signature-256", "sha256=" + util::to_hex(util::hmac_sha256_raw(rig.secret, body))}},
                           body);
      return raw_http_status(host_port, req) == 202;
    });
    if (h.rate() > 0) {
      list_ratios.push_back(l.rate() / h.rate());
      refused_ratios.push_back(r.rate() / h.rate());
      hooks_ratios.push_back(w.rate() / h.rate());
    }
    add(healthz, h);
    add(list, l);
    add(refused, r);
    add(hooks, w);
  }
  auto median = [](std::vector<double> v) {
    if (v.empty()) {
      return 0.0;
    }
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };

  auto ratio = [&](const Run& r) {
    return &r == &list ? median(list_ratios) : &r == &refused ? median(refused_ratios) : median(hooks_ratios);
  };
  std::printf("bench/api_auth: %d clients, %.0fs per phase in %d rounds, one idp serve\n", clients, seconds, rounds);
  auto range = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f-%.2f", v.empty() ? 0.0 : v.front(), v.empty() ? 0.0 : v.back());
    return std::string(buf);
  };
  auto cpu_ratio = [&](const Run& r) {
    return r.cpu_us_per_request() > 0 ? healthz.cpu_us_per_request() / r.cpu_us_per_request() : 0;
  };
  auto row = [&](const char* what, const Run& r, bool baseline) {
    std::printf("  %-46s %8.0f /s", what, r.rate());
    std::printf(baseline ? "             " : "  ratio %.2f", ratio(r));
    std::printf("  %7.1f us daemon CPU/request", r.cpu_us_per_request());
    if (!baseline) {
      std::printf(" (ratio %.2f)", cpu_ratio(r));
    }
    std::printf("  %5.1f switches/request  %llu failed\n", r.switches_per_request(),
                static_cast<unsigned long long>(r.bad));
  };
  row("GET /healthz, no token (baseline)", healthz, true);
  row("GET /api/v1/environments, bearer token", list, false);
  row("GET /api/v1/environments, unknown token (401)", refused, false);
  row("signed push webhooks accepted (202)", hooks, false);
  std::printf("  (a CPU ratio is the baseline's CPU per request over the row's: 1.00 = costs the same)\n");
  std::printf("  (a ratio is the median over the rounds of the row's rate over /healthz's in the same round;\n"
              "   authenticated list per round: %s)\n",
              range(list_ratios).c_str());
  std::printf("  goals: authenticated list >= 0.90 of /healthz; webhooks >= 3000/s on 2 cores\n");
  std::printf("  reproduce: build/bench/bench_api_auth --seconds %.0f --clients %d --rounds %d\n", seconds, clients,
              rounds);
  return 0;
}
