// bench/kubernetes_apply: what the Kubernetes driver costs per environment, against the
// API-server double (tests/fakes): API requests and bytes per create, redeploy and
// destroy, and the time the driver itself adds beyond waiting for the double's answers
// (rendering, JSON, the client). Issue 11's goals: at most 12 requests per create, and 0
// requests per idle environment per minute beyond one watch: the engine observes each
// ready environment every health_interval (10 s by default, 6 times a minute); the bench
// counts the requests of those 6 observes per environment with the driver's watch, and
// without it (option watch: false, every observe reads the cluster) as the baseline.
//
//   build/bench/bench_kubernetes_apply [--envs 50]
//
// The double answers from memory on 127.0.0.1, so "waiting" is mostly loopback HTTP; the
// rollout poll interval is 1 ms so that the time measured is the driver's, not a sleep.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "util/fs.hpp"
#include "util/numbers.hpp"
#include "util/time.hpp"

using namespace idp;

namespace {

class QuietProgress final : public drivers::Progress {
public:
  void step(std::string_view) override {}
  void revision_status(core::RevisionStatus, std::string_view) override {}
  bool cancelled() const override { return false; }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }

private:
  std::atomic<bool> m_cancel{false};
};

struct Totals {
  int64_t requests = 0, sent = 0, received = 0, wall_ms = 0, wait_ms = 0;
};

drivers::DeploySpec spec_for(int i, int revision) {
  drivers::DeploySpec s;
  s.env.name = "bench-" + std::to_string(i);
  s.env.repo = "https://github.com/acme/shop.git";
  s.env.branch = "feature/bench";
  s.env.owner = "bench@example.com";
  s.env.commit = std::string(39, '0') + std::to_string(revision);
  s.env.expires_at = util::SystemClock().now_ms() + 86400000;
  s.revision_id = revision;
  s.config.container_image = "registry.example.com/shop:{commit}";
  s.config.environment = {{"LOG_LEVEL", "info"}};
  return s;
}

} // namespace

int main(int argc, char** argv) {
  int envs = 50;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--envs") == 0 && i + 1 < argc) {
      envs = util::parse_int<int>(argv[++i]).value_or(0);
    }
  }
  if (envs <= 0) {
    std::fprintf(stderr, "usage: bench_kubernetes_apply [--envs N]\n");
    return 2;
  }
  testing::FakeKubeApiServer api;
  auto dir = util::make_temp_dir("idp-bench-k8s");
  if (!dir) {
    std::fprintf(stderr, "bench_kubernetes_apply: %s\n", dir.error().full_message().c_str());
    return 1;
  }
  std::string kc = *dir + "/kubeconfig";
  std::ofstream(kc)
      << "current-context: d\nclusters:\n- name: d\n  cluster: {server: \"" << api.url()
      << "\"}\nusers:\n- name: u\n  user: {token: bench}\ncontexts:\n- name: d\n  context: {cluster: d, user: u}\n";
  drivers::DriverContext ctx;
  ctx.home = *dir;
  ctx.options = {{"kubeconfig", kc}, {"poll_interval_ms", 1}, {"destroy_timeout_ms", 60000}};
  auto made = drivers::kubernetes::kubernetes_driver_factory().create(ctx);
  if (!made) {
    std::fprintf(stderr, "bench_kubernetes_apply: %s\n", made.error().full_message().c_str());
    return 1;
  }
  auto* driver = static_cast<drivers::kubernetes::KubernetesDriver*>(made->get());
  QuietProgress progress;
  const char* phases[] = {"create", "redeploy", "destroy"};
  Totals totals[3];
  // One minute of an idle server, measured between the redeploys and the destroys.
  auto measure_idle = [&](int64_t& with_watch, int64_t& watch_requests, int64_t& without_watch) -> bool {
    // One minute of an idle server: 6 observes of each environment (health_interval 10 s),
    // with the watch, then with a driver without it (the baseline), in the same run.
    std::vector<core::Environment> live;
    for (int i = 0; i < envs; ++i) {
      live.push_back(spec_for(i, 2).env);
    }
    auto idle_requests = [&](drivers::kubernetes::KubernetesDriver& d) -> int64_t {
      auto before = d.stats();
      for (int round = 0; round < 6; ++round) {
        for (const auto& e : live) {
          auto o = d.observe(e);
          if (!o || o->health != drivers::Health::healthy) {
            std::fprintf(stderr, "bench_kubernetes_apply: observe of %s: %s\n", e.name.c_str(),
                         o ? o->detail.c_str() : o.error().full_message().c_str());
            std::exit(1);
          }
        }
      }
      return d.stats().requests - before.requests;
    };
    if (auto started = driver->start(live); !started) {
      std::fprintf(stderr, "bench_kubernetes_apply: start: %s\n", started.error().full_message().c_str());
      return false;
    }
    // The watch's list already saw every Deployment available: wait until it is following.
    auto watches = [&] {
      int64_t n = 0; // the long requests the watch made (one, renewed every few minutes)
      for (const auto& q : api.requests()) {
        n += q.query.find("watch=true") != std::string::npos;
      }
      return n;
    };
    int64_t sync_deadline = util::steady_ms() + 30000;
    while ((!driver->watch_synced() || watches() == 0) && util::steady_ms() < sync_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    with_watch = idle_requests(*driver);
    watch_requests = watches();
    drivers::DriverContext plain_ctx = ctx;
    plain_ctx.options["watch"] = false;
    auto plain = drivers::kubernetes::kubernetes_driver_factory().create(plain_ctx);
    if (!plain) {
      std::fprintf(stderr, "bench_kubernetes_apply: %s\n", plain.error().full_message().c_str());
      return false;
    }
    without_watch = idle_requests(*static_cast<drivers::kubernetes::KubernetesDriver*>(plain->get()));
    driver->stop(true);
    return true;
  };
  int64_t with_watch = 0, watch_requests = 0, without_watch = 0;
  for (int phase = 0; phase < 3; ++phase) {
    if (phase == 2 && !measure_idle(with_watch, watch_requests, without_watch)) {
      return 1;
    }
    for (int i = 0; i < envs; ++i) {
      auto before = driver->stats();
      int64_t start = util::steady_ms();
      Expected<void> ok;
      if (phase < 2) {
        auto r = driver->apply(spec_for(i, phase + 1), progress);
        ok = r ? Expected<void>() : Expected<void>(tl::unexpected(r.error()));
      } else {
        ok = driver->destroy(spec_for(i, 1).env, progress);
      }
      int64_t wall = util::steady_ms() - start;
      if (!ok) {
        std::fprintf(stderr, "bench_kubernetes_apply: %s %d: %s\n", phases[phase], i,
                     ok.error().full_message().c_str());
        return 1;
      }
      auto after = driver->stats();
      totals[phase].requests += after.requests - before.requests;
      totals[phase].sent += after.bytes_sent - before.bytes_sent;
      totals[phase].received += after.bytes_received - before.bytes_received;
      totals[phase].wait_ms += after.wait_ms - before.wait_ms;
      totals[phase].wall_ms += wall;
    }
  }
  std::printf("kubernetes driver against the API-server double, %d environments\n", envs);
  std::printf("%-9s %10s %12s %12s %14s %16s\n", "operation", "requests", "bytes sent", "bytes recv", "wall ms/env",
              "driver ms/env");
  for (int p = 0; p < 3; ++p) {
    const Totals& t = totals[p];
    std::printf("%-9s %10.1f %12.0f %12.0f %14.2f %16.2f\n", phases[p], double(t.requests) / envs,
                double(t.sent) / envs, double(t.received) / envs, double(t.wall_ms) / envs,
                double(t.wall_ms - t.wait_ms) / envs);
  }
  std::printf("goal: at most 12 requests per create (%s)\n",
              double(totals[0].requests) / envs <= 12.0 ? "met" : "NOT met");
  std::printf("idle minute (6 observes per environment): %.2f requests/env with the watch (plus the "
              "server's watch: %lld long request); baseline without the watch %.2f requests/env\n",
              double(with_watch) / envs, static_cast<long long>(watch_requests), double(without_watch) / envs);
  std::printf("goal: 0 requests per idle environment per minute beyond one watch (%s)\n",
              with_watch == 0 ? "met" : "NOT met");
  std::printf("reproduce: build/bench/bench_kubernetes_apply --envs %d\n", envs);
  (void)util::remove_all(*dir); // best effort: a leftover directory only wastes a little space
  return 0;
}
