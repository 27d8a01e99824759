// bench/provision: time from `idp create` to a healthy URL for the example app, beside the
// time the app itself needs to start and answer its health check (started by hand in the
// same run: the floor), with where the time went by deploy phase (the environments'
// last_deploy). Also the memory of `idp serve` per live environment.
//
//   build/bench/bench_provision [--envs 20] [--memory-envs 100] [--startup-cpu-boost off]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;

int main(int argc, char** argv) {
  int envs = 20;
  int memory_envs = 100;
  bool boost = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--envs")) {
      envs = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--memory-envs")) {
      memory_envs = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--startup-cpu-boost")) {
      boost = std::strcmp(argv[i + 1], "off") != 0;
    }
  }
  auto tmp = util::make_temp_dir("idp-bench-provision");
  std::string root = *tmp;
  (void)util::ensure_dir(root + "/home");
  GitRepo repo(root + "/app");
  repo.copy_from(source_dir() + "/examples/api-service");
  repo.commit("example");
  for (int i = 0; i < std::max(envs, memory_envs); ++i) {
    repo.git({"branch", "-f", "bench/b" + std::to_string(i)});
  }

  // The floor: the app alone, started by hand.
  std::vector<double> floor_ms;
  for (int i = 0; i < envs; ++i) {
    floor_ms.push_back(bench::app_start_ms(repo.path()));
  }

  // The local driver's options as a user would set them (docs/configuration.md).
  (void)util::write_file_atomic(root + "/server.yml", std::string("drivers:\n  local:\n    startup_cpu_boost: ") +
                                                          (boost ? "true" : "false") + "\n");
  DaemonProcess d(root + "/home", {"--workers", "8", "--config", root + "/server.yml"});
  d.log_level = "info";
  d.start();
  std::vector<double> create_ms;
  std::vector<std::string> phase_order;
  std::map<std::string, std::vector<double>> phase_ms;
  for (int i = 0; i < envs; ++i) {
    std::string branch = "bench/b" + std::to_string(i);
    int64_t t0 = util::steady_ms();
    auto r = d.cli({"create", "--repo", repo.path(), "--branch", branch});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "create failed: %s\n", r.err.c_str());
      return 1;
    }
    std::string url = r.out.substr(0, r.out.find('\n')) + "health";
    while (!bench::healthy(url)) {
      usleep(2000);
    }
    create_ms.push_back(static_cast<double>(util::steady_ms() - t0));
    auto env = d.env("preview-bench-b" + std::to_string(i));
    for (const auto& ph : env["last_deploy"].value("phases", nlohmann::json::array())) {
      std::string name = ph.value("phase", "");
      if (!phase_ms.count(name)) {
        phase_order.push_back(name);
      }
      phase_ms[name].push_back(ph.value("ms", 0.0));
    }
  }

  long rss_before = bench::rss_kib(d.pid());
  for (int i = envs; i < memory_envs; ++i) {
    auto r = d.cli({"create", "--repo", repo.path(), "--branch", "bench/b" + std::to_string(i), "--no-wait"});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "create failed: %s\n", r.err.c_str());
      return 1;
    }
  }
  for (int i = 0; i < memory_envs; ++i) {
    d.wait_phase("preview-bench-b" + std::to_string(i), "ready", 300000);
  }
  long rss_after = bench::rss_kib(d.pid());

  double f50 = bench::percentile(floor_ms, 0.5), f95 = bench::percentile(floor_ms, 0.95);
  double c50 = bench::percentile(create_ms, 0.5), c95 = bench::percentile(create_ms, 0.95);
  std::printf("bench/provision: example app (examples/api-service), %d environments\n", envs);
  std::printf("  %-44s %8s %8s\n", "", "p50 ms", "p95 ms");
  std::printf("  %-44s %8.0f %8.0f\n", "floor: app started by hand until /health 200", f50, f95);
  std::printf("  %-44s %8.0f %8.0f\n", "idp create until the URL answers /health 200", c50, c95);
  std::printf("  %-44s %8.2f %8.2f\n", "ratio (idp / floor)", c50 / f50, c95 / f95);
  std::printf("  %-44s %8.0f %8.0f   (goal: p95 within 60 ms)\n", "overhead (idp - floor)", c50 - f50, c95 - f95);
  std::printf("  where the time went, by deploy phase (startup_cpu_boost %s):\n", boost ? "on" : "off");
  for (const auto& name : phase_order) {
    std::printf("    %-42s %8.0f %8.0f\n", name.c_str(), bench::percentile(phase_ms[name], 0.5),
                bench::percentile(phase_ms[name], 0.95));
  }
  std::printf("memory of idp serve: %ld KiB with %d live environments, %ld KiB with %d: %.1f KiB per environment\n",
              rss_before, envs, rss_after, memory_envs,
              memory_envs > envs ? static_cast<double>(rss_after - rss_before) / (memory_envs - envs) : 0.0);
  std::printf("reproduce: cmake --build build --target bench_provision && build/bench/bench_provision --envs %d "
              "--memory-envs %d%s\n",
              envs, memory_envs, boost ? "" : " --startup-cpu-boost off");
  d.stop();
  (void)util::remove_all(root);
  return 0;
}
