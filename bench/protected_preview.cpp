// bench/protected_preview: what the sign-in in front of a preview costs (issue 15). In one
// run against one `idp serve` and its Caddy, two environments of the same app and commit:
//   open       `public: true` (the server allows it): Caddy proxies straight to the app;
//   protected  behind sign-in: Caddy asks the daemon (forward_auth) first; the clients send
//              the preview session cookie the sign-in gave them.
// The same clients alternate between the two (open, protected, open, protected), so the
// machine's other load hits both alike; requests/s and p99 latency of each are printed,
// with the ratio. Goal: the check costs under 15% of throughput and under 1 ms at p99.
//
//   build/bench/bench_protected_preview [--seconds 3] [--clients 4]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "bench_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

const char* k_bench_app = R"js('use strict';
const http = require('http');
http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'application/json'});
  res.end('{"ok":true}');
}).listen(Number(process.env.PORT), '127.0.0.1');
)js";

struct Phase {
  uint64_t ok = 0;
  uint64_t bad = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
  double rate() const { return seconds > 0 ? ok / seconds : 0; }
};

Phase hammer(int router_port, const std::string& host, const std::vector<std::pair<std::string, std::string>>& extra,
             int clients, double seconds) {
  Phase out;
  std::mutex mu;
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> bad{0};
  int64_t t0 = util::steady_ms();
  int64_t until = t0 + static_cast<int64_t>(seconds * 1000);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      util::HttpRequest req;
      req.url = "http://127.0.0.1:" + std::to_string(router_port) + "/";
      req.headers = {{"Host", host}};
      req.headers.insert(req.headers.end(), extra.begin(), extra.end());
      std::vector<double> mine;
      while (util::steady_ms() < until) {
        auto s = std::chrono::steady_clock::now();
        auto r = util::http_request(req);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count();
        if (r && r->status == 200) {
          ok += 1;
          mine.push_back(ms);
        } else {
          bad += 1;
        }
      }
      std::lock_guard g(mu);
      out.latencies_ms.insert(out.latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  out.ok = ok;
  out.bad = bad;
  out.seconds = (util::steady_ms() - t0) / 1000.0;
  return out;
}

void add(Phase& total, const Phase& p) {
  total.ok += p.ok;
  total.bad += p.bad;
  total.seconds += p.seconds;
  total.latencies_ms.insert(total.latencies_ms.end(), p.latencies_ms.begin(), p.latencies_ms.end());
}

} // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int clients = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) {
      seconds = std::atof(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--clients") == 0) {
      clients = std::atoi(argv[i + 1]);
    }
  }
  TempDir tmp("idp-bench-protected");
  (void)util::ensure_dir(tmp.sub("home"));
  GitRepo repo(tmp.sub("repo"));
  repo.write_file("server.js", k_bench_app);
  repo.write_file(".idp/config.yml",
                  "template: api-service\nhealth_check_path: /health\nlocal:\n  start: \"node server.js\"\n");
  repo.commit("app");
  repo.checkout_new_branch("open");
  repo.write_file(
      ".idp/config.yml",
      "template: api-service\nhealth_check_path: /health\npublic: true\nlocal:\n  start: \"node server.js\"\n");
  repo.commit("public");
  repo.checkout("main");
  (void)util::write_file_atomic(tmp.sub("server.yml"), "previews:\n  protect: signin\n  allow_public: true\n");

  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.log_level = "info";
  d.start();
  for (auto [name, branch] : {std::pair{"open", "open"}, std::pair{"protected", "main"}}) {
    auto r = d.cli({"create", "--repo", repo.path(), "--branch", branch, "--name", name});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "cannot create %s: %s%s\n", name, r.out.c_str(), r.err.c_str());
      return 1;
    }
  }
  std::string port = std::to_string(d.router_port());
  std::string protected_host = "protected.preview.localhost:" + port;
  // Sign in as a browser does: the dashboard's hand-off, then the preview's callback.
  util::HttpRequest handoff;
  handoff.url = d.api_url() + "/preview/signin?return=" + util::url_encode("http://" + protected_host + "/");
  handoff.headers = {d.admin_auth_header()};
  auto h = util::http_request(handoff);
  if (!h || h->status != 303) {
    std::fprintf(stderr, "sign-in hand-off failed\n");
    return 1;
  }
  util::HttpRequest cb;
  cb.url = "http://127.0.0.1:" + port + h->headers["location"].substr(("http://" + protected_host).size());
  cb.headers = {{"Host", protected_host}};
  auto c = util::http_request(cb);
  if (!c || c->status != 303) {
    std::fprintf(stderr, "sign-in callback failed\n");
    return 1;
  }
  std::string cookie = c->headers["set-cookie"].substr(0, c->headers["set-cookie"].find(';'));

  std::vector<std::pair<std::string, std::string>> session = {{"Cookie", cookie}};
  // Warm both paths (connections, Caddy's and the daemon's caches), then alternate.
  hammer(d.router_port(), "open.preview.localhost:" + port, {}, clients, 0.5);
  hammer(d.router_port(), protected_host, session, clients, 0.5);
  Phase open;
  Phase prot;
  for (int round = 0; round < 2; ++round) {
    add(open, hammer(d.router_port(), "open.preview.localhost:" + port, {}, clients, seconds / 2));
    add(prot, hammer(d.router_port(), protected_host, session, clients, seconds / 2));
  }
  double p99_open = bench::percentile(open.latencies_ms, 0.99);
  double p99_prot = bench::percentile(prot.latencies_ms, 0.99);
  double p50_open = bench::percentile(open.latencies_ms, 0.50);
  double p50_prot = bench::percentile(prot.latencies_ms, 0.50);
  std::printf("protected preview through Caddy (%d clients, %.1fs per side, same app and commit)\n", clients, seconds);
  std::printf("  open        %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  (%llu failed)\n", open.rate(), p50_open, p99_open,
              static_cast<unsigned long long>(open.bad));
  std::printf("  protected   %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  (%llu failed)\n", prot.rate(), p50_prot, p99_prot,
              static_cast<unsigned long long>(prot.bad));
  double cost = open.rate() > 0 ? 100.0 * (1.0 - prot.rate() / open.rate()) : 0;
  std::printf("  auth check: %.1f%% of throughput (goal < 15%%), +%.3f ms at p99 (goal < 1 ms)\n", cost,
              p99_prot - p99_open);
  std::printf("reproduce: build/bench/bench_protected_preview --seconds %g --clients %d\n", seconds, clients);
  d.cli({"destroy", "open"});
  d.cli({"destroy", "protected"});
  d.stop();
  return open.bad + prot.bad == 0 ? 0 : 1;
}
