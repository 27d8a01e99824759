// bench/webhook_ingest: how fast `idp serve` takes GitHub webhooks, and how long a push
// takes to be served.
//   1. signed push webhooks per second, each accepted (202), recorded (a redelivery of every
//      one is answered "duplicate") and acted on (its queued work ran) — none lost — beside
//      unsigned GET /healthz per second with the same clients in the same run;
//   2. time from a push webhook to the new commit answering through the router, beside the
//      time the app itself needs to start and answer (started by hand: the floor).
// The pushes of part 1 are branch deletions (real payloads from @octokit/webhooks-examples)
// so the engine has nothing to build: the measure is the ingest path, not the deploys.
//
//   build/bench/bench_webhook_ingest [--seconds 3] [--clients 8] [--pushes 5]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <unistd.h>

#include "bench_support.hpp"
#include "integration/gitops/gitops_test_support.hpp"
#include "unit/sources/webhook_examples.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

struct Run {
  uint64_t ok = 0;
  uint64_t bad = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? ok / seconds : 0; }
};

// `clients` threads each calling `one(thread, i)` until `seconds` pass; one returns success.
Run hammer(int clients, double seconds, const std::function<bool(int, uint64_t)>& one) {
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
  return {ok.load(), bad.load(), (util::steady_ms() - t0) / 1000.0};
}

} // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int clients = 8;
  int pushes = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) {
      seconds = std::atof(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--clients")) {
      clients = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--pushes")) {
      pushes = std::atoi(argv[i + 1]);
    }
  }
  if (webhook_examples_dir().empty()) {
    util::Command setup;
    setup.argv = {source_dir() + "/tests/integration/gitops/setup_webhook_examples.sh", IDP_NPM_DIR, "7.6.1"};
    auto r = util::run(setup);
    if (!r || !r->ok() || webhook_examples_dir().empty()) {
      std::fprintf(stderr, "bench/webhook_ingest: needs npm to install @octokit/webhooks-examples\n");
      return 1;
    }
  }

  GitopsRig rig("idp-bench-webhook", {.poll = false, .log_level = "info"});
  rig.start();
  const std::string hooks = rig.daemon->api_url() + "/hooks/github";
  const std::string secret = rig.secret;
  const json deleted_example = push_deleted_payload(rig.payload_repo(), "bench/x", std::string(40, '1'));

  // --- 1. ingest ---
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> sent; // delivery id, body
  auto deliver = [&](const std::string& id, const std::string& body) -> long {
    util::HttpRequest req;
    req.method = "POST";
    req.url = hooks;
    req.body = body;
    req.headers = {{"X-GitHub-Event", "push"},
                   {"X-GitHub-Delivery", id},
                   {"Content-Type", "application/json"},
                   {"X-Hub-Signature-256", "sha256=" + util::to_hex(util::hmac_sha256_raw(secret, body))}};
    auto r = util::http_request(req);
    return r ? r->status : 0;
  };
  // Each body is the example with its own ref, spliced into the serialized example: copying
  // and serializing the payload's JSON per request cost the client about as much CPU as the
  // request itself (0.19 ms against 0.10 for a /healthz), on the cores the server shares.
  json templ = deleted_example;
  const std::string k_mark = "@@bench-ref@@";
  templ["ref"] = "refs/heads/bench/" + k_mark;
  const std::string templ_body = templ.dump();
  const size_t mark_at = templ_body.find(k_mark);
  const std::string body_head = templ_body.substr(0, mark_at);
  const std::string body_tail = templ_body.substr(mark_at + k_mark.size());
  const double cpu0 = bench::cpu_seconds(rig.daemon->pid());
  Run webhooks = hammer(clients, seconds, [&](int t, uint64_t i) {
    std::string body = body_head + std::to_string(t) + "-" + std::to_string(i) + body_tail;
    std::string id = "bench-" + std::to_string(t) + "-" + std::to_string(i);
    bool ok = deliver(id, body) == 202;
    if (ok) {
      std::lock_guard<std::mutex> g(mu);
      sent.emplace_back(id, body);
    }
    return ok;
  });
  const double cpu1 = bench::cpu_seconds(rig.daemon->pid());
  const std::string healthz_url = rig.daemon->api_url() + "/healthz";
  Run healthz = hammer(clients, seconds, [&](int, uint64_t) { return bench::healthy(healthz_url); });
  const double cpu2 = bench::cpu_seconds(rig.daemon->pid());

  // None lost: every accepted delivery is recorded (a redelivery is a duplicate) and its work ran.
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> duplicates{0};
  std::vector<std::thread> redeliver;
  for (int t = 0; t < clients; ++t) {
    redeliver.emplace_back([&] {
      for (size_t i = next++; i < sent.size(); i = next++) {
        duplicates += deliver(sent[i].first, sent[i].second) == 200 ? 1 : 0;
      }
    });
  }
  for (auto& th : redeliver) {
    th.join();
  }
  size_t ran = 0;
  wait_until(
      [&] {
        // What the server says it did (/metrics), at the default log level.
        util::HttpRequest scrape;
        scrape.url = rig.daemon->api_url() + "/metrics";
        scrape.headers = {rig.daemon->admin_auth_header()};
        auto resp = util::http_request(scrape);
        auto samples = resp && resp->status == 200 ? prometheus_samples(resp->body) : std::map<std::string, double>{};
        ran = static_cast<size_t>(samples["idp_branch_work_total{outcome=\"done\"}"]);
        return ran >= sent.size();
      },
      30000, 100);

  // --- 2. push → served, beside the app's own start ---
  const std::string zero(40, '0');
  std::string c = rig.commit_version("feature/bench", "v0");
  deliver(util::random_hex(8), push_payload(rig.payload_repo(), "feature/bench", zero, c).dump());
  std::string name = rig.wait_env("feature/bench", 30000);
  if (name.empty() || !rig.wait_ready_at(name, c, 90000)) {
    std::fprintf(stderr, "bench/webhook_ingest: the environment did not come up:\n%s\n", rig.daemon->log().c_str());
    return 1;
  }
  std::vector<double> served;
  for (int i = 1; i <= pushes; ++i) {
    std::string version = "v" + std::to_string(i);
    std::string prev = c;
    c = rig.commit_version("feature/bench", version);
    std::string body = push_payload(rig.payload_repo(), "feature/bench", prev, c).dump();
    int64_t t0 = util::steady_ms();
    deliver(util::random_hex(8), body);
    bool up = wait_until(
        [&] {
          json root = rig.app_root(name);
          return root.is_object() && root.value("version", "") == version;
        },
        60000, 5);
    if (!up) {
      std::fprintf(stderr, "bench/webhook_ingest: %s was not served\n", version.c_str());
      return 1;
    }
    served.push_back(static_cast<double>(util::steady_ms() - t0));
  }
  std::vector<double> start;
  for (int i = 0; i < pushes; ++i) {
    start.push_back(bench::app_start_ms(source_dir() + "/examples/api-service"));
  }

  std::printf("bench/webhook_ingest: %d clients, %.0fs per phase, one idp serve\n", clients, seconds);
  std::printf("  %-52s %10.0f /s  (%llu accepted, %llu refused)\n", "signed push webhooks accepted and recorded",
              webhooks.rate(), static_cast<unsigned long long>(webhooks.ok),
              static_cast<unsigned long long>(webhooks.bad));
  std::printf("  %-52s %10.0f /s\n", "unsigned GET /healthz (same clients, same run)", healthz.rate());
  std::printf("  %-52s %10.2f\n", "ratio (webhooks / healthz)",
              healthz.rate() > 0 ? webhooks.rate() / healthz.rate() : 0);
  std::printf("  %-52s %10.3f ms  (webhook) %.3f ms (/healthz)\n", "idp serve's CPU time per request",
              webhooks.ok ? (cpu1 - cpu0) * 1000 / static_cast<double>(webhooks.ok) : 0,
              healthz.ok ? (cpu2 - cpu1) * 1000 / static_cast<double>(healthz.ok) : 0);
  std::printf("  %-52s %llu of %zu redelivered as duplicates, %zu of %zu acted on%s\n",
              "none lost:", static_cast<unsigned long long>(duplicates.load()), sent.size(), std::min(ran, sent.size()),
              sent.size(), duplicates.load() == sent.size() && ran >= sent.size() ? "" : "   <-- LOST");
  std::printf("  %-52s %8s %8s\n", "", "p50 ms", "max ms");
  std::printf("  %-52s %8.0f %8.0f\n", "app start by hand until /health 200 (floor)", bench::percentile(start, 0.5),
              bench::percentile(start, 1.0));
  std::printf("  %-52s %8.0f %8.0f\n", "push webhook until the new commit answers (router)",
              bench::percentile(served, 0.5), bench::percentile(served, 1.0));
  std::printf("  %-52s %8.2f %8.2f\n", "ratio (push-to-served / app start)",
              bench::percentile(served, 0.5) / std::max(1.0, bench::percentile(start, 0.5)),
              bench::percentile(served, 1.0) / std::max(1.0, bench::percentile(start, 1.0)));
  std::printf(
      "reproduce: cmake --build <build> --target bench_webhook_ingest idp && <build>/bench/bench_webhook_ingest "
      "--seconds %.0f --clients %d --pushes %d\n",
      seconds, clients, pushes);
  bool lost = duplicates.load() != sent.size() || ran < sent.size();
  return lost ? 2 : 0;
}
