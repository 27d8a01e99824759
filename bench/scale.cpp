// bench/scale: one `idp serve` with many live environments (issue 14). Measures, at a few
// environments (the baseline, same run) and at --envs: the route switch of a redeploy (the
// deploy's "route" phase), `GET /api/v1/environments`, and the daemon's memory; then the
// time to create them all, and to destroy them all (one DELETE each, in a loop) until
// none is left. Those two poll the list every 500 ms (each poll is a list of every
// environment: more often, the bench would load the daemon it measures), so they are
// late by up to half a second.
//
// The environments are the static-site example (examples/static-site, its `node build.js`
// included): Caddy serves each from its directory, so no process per environment. A
// thousand of the node example would need about 40 GB of memory (node takes ~40 MB each);
// this machine has 24.
//
// As root, each environment runs as a uid of its own (the local driver's isolation "auto").
// Each such uid has a search-only ACL entry on the home and its directory of environments,
// and ext4 keeps a directory's ACL in one 4 KiB block: about 500 entries. Beyond that,
// creates fail ("cannot set an ACL … No space left on device"). --isolation off measures
// the rest at 1,000 meanwhile.
//
// --router lookup runs the local driver's router_mode "lookup": Caddy asks the daemon for
// each request, so a route switch changes no Caddy config (docs/configuration.md).
//
//   build/bench/bench_scale [--envs 1000] [--small 10] [--switches 20] [--isolation auto|off]
//                           [--router routes|lookup]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

std::string env_name(int i) { return "preview-scale-s" + std::to_string(i); }

// Environments by phase, from one GET of the list.
std::map<std::string, int> phases(const DaemonProcess& d) {
  std::map<std::string, int> out;
  auto [code, body] = d.api("GET", "/api/v1/environments");
  if (code == 200) {
    for (const auto& e : body["environments"]) {
      out[e.value("phase", "")] += 1;
    }
  }
  return out;
}

// Creates environments [from, to) through the API without waiting, then waits until every
// live one is ready. Returns the milliseconds from the first request to the last ready.
double create_range(const DaemonProcess& d, const std::string& repo, int from, int to) {
  int64_t t0 = util::steady_ms();
  for (int i = from; i < to; ++i) {
    json body = {{"repo", repo}, {"branch", "scale/s" + std::to_string(i)}};
    auto [code, answer] = d.api("POST", "/api/v1/environments", body.dump());
    if (code != 202) {
      std::fprintf(stderr, "bench/scale: create %d answered %ld: %s\n", i, code, answer.dump().c_str());
      std::exit(1);
    }
  }
  bool ready = wait_until(
      [&] {
        auto p = phases(d);
        if (p["failed"] > 0) {
          std::fprintf(stderr, "bench/scale: an environment failed\n%s\n", d.log().c_str());
          std::exit(1);
        }
        return p["ready"] == to;
      },
      30 * 60 * 1000, 500);
  if (!ready) {
    std::fprintf(stderr, "bench/scale: not all %d environments became ready\n", to);
    std::exit(1);
  }
  return static_cast<double>(util::steady_ms() - t0);
}

// Redeploys `count` environments among the first `among`, one after the other, and returns
// the "route" phase of each deploy (ms): the router's switch to the new revision.
// Each redeploy is of a new commit on the environment's branch (the same files: a commit
// made with `git commit-tree`), so that the router switches to a new revision.
std::vector<double> route_switches(const DaemonProcess& d, const GitRepo& repo, int among, int count) {
  std::vector<double> out;
  for (int k = 0; k < count; ++k) {
    std::string name = env_name(k % among);
    std::string branch = "scale/s" + std::to_string(k % among);
    std::string head = util::trim(repo.git({"rev-parse", branch}));
    std::string next =
        util::trim(repo.git({"commit-tree", head + "^{tree}", "-p", head, "-m", "switch " + std::to_string(k)}));
    repo.git({"update-ref", "refs/heads/" + branch, next});
    int64_t before = d.env(name)["last_deploy"].value("revision", int64_t{0});
    json body = {{"commit", next}};
    auto [code, answer] = d.api("POST", "/api/v1/environments/" + name + "/redeploy", body.dump());
    if (code != 202) {
      std::fprintf(stderr, "bench/scale: redeploy of %s answered %ld: %s\n", name.c_str(), code, answer.dump().c_str());
      std::exit(1);
    }
    json deploy;
    bool done = wait_until(
        [&] {
          json e = d.env(name);
          deploy = e["last_deploy"];
          return e.value("phase", "") == "ready" && deploy.is_object() && deploy.value("revision", int64_t{0}) > before;
        },
        120000, 5);
    if (!done) {
      std::fprintf(stderr, "bench/scale: redeploy of %s did not finish\n", name.c_str());
      std::exit(1);
    }
    for (const auto& p : deploy["phases"]) {
      if (p.value("phase", "") == "route") {
        out.push_back(p.value("ms", 0.0));
      }
    }
  }
  return out;
}

std::vector<double> list_times(const DaemonProcess& d, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto [code, body] = d.api("GET", "/api/v1/environments");
    out.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (code != 200) {
      std::fprintf(stderr, "bench/scale: list answered %ld\n", code);
      std::exit(1);
    }
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  int envs = 1000;
  int small = 10;
  int switches = 20;
  std::string isolation = "auto";
  std::string router = "routes";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--envs")) {
      envs = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--small")) {
      small = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--switches")) {
      switches = std::atoi(argv[i + 1]);
    } else if (!std::strcmp(argv[i], "--isolation")) {
      isolation = argv[i + 1];
    } else if (!std::strcmp(argv[i], "--router")) {
      router = argv[i + 1];
    }
  }
  if (small < 1 || envs <= small) {
    std::fprintf(stderr, "bench/scale: needs 1 <= --small < --envs\n");
    return 2;
  }
  auto tmp = util::make_temp_dir("idp-bench-scale");
  std::string root = *tmp;
  (void)util::ensure_dir(root + "/home");
  GitRepo repo(root + "/app");
  repo.copy_from(source_dir() + "/examples/static-site");
  repo.commit("example");
  for (int i = 0; i < envs; ++i) {
    repo.git({"branch", "-f", "scale/s" + std::to_string(i)});
  }

  (void)util::write_file_atomic(root + "/server.yml", "drivers:\n  local:\n    isolation: " + isolation +
                                                          "\n    router_mode: " + router + "\n");
  DaemonProcess d(root + "/home", {"--workers", "8", "--config", root + "/server.yml"});
  d.log_level = "info";
  d.start();

  double create_small_ms = create_range(d, repo.path(), 0, small);
  long rss_small = bench::rss_kib(d.pid());
  auto list_small = list_times(d, 20);
  auto switch_small = route_switches(d, repo, small, switches);

  double create_rest_ms = create_range(d, repo.path(), small, envs);
  long rss_large = bench::rss_kib(d.pid());
  auto list_large = list_times(d, 20);
  auto switch_large = route_switches(d, repo, envs, switches);

  int64_t t0 = util::steady_ms();
  for (int i = 0; i < envs; ++i) {
    auto [code, answer] = d.api("DELETE", "/api/v1/environments/" + env_name(i));
    if (code != 202 && code != 200) {
      std::fprintf(stderr, "bench/scale: delete %d answered %ld: %s\n", i, code, answer.dump().c_str());
      return 1;
    }
  }
  bool gone = wait_until([&] { return phases(d).empty(); }, 30 * 60 * 1000, 500);
  double destroy_ms = static_cast<double>(util::steady_ms() - t0);
  if (!gone) {
    std::fprintf(stderr, "bench/scale: not every environment was destroyed\n");
    return 1;
  }
  // Nothing left behind: no environment directory, no process of the home but the router.
  std::vector<std::string> left;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root + "/home/envs", ec)) {
    left.push_back(e.path().filename().string());
  }
  if (!left.empty() || d.home_processes().size() > d.router_processes().size()) {
    std::fprintf(stderr, "bench/scale: left behind: %zu environment directories, %zu processes\n", left.size(),
                 d.home_processes().size());
    return 1;
  }

  auto p95 = [](const std::vector<double>& v) { return bench::percentile(v, 0.95); };
  auto p50 = [](const std::vector<double>& v) { return bench::percentile(v, 0.5); };
  std::printf("bench/scale: static-site example, one idp serve, %d live environments beside %d (isolation %s, "
              "router %s)\n",
              envs, small, isolation.c_str(), router.c_str());
  std::string at_small = "at " + std::to_string(small);
  std::string at_large = "at " + std::to_string(envs);
  std::printf("  %-46s %10s %10s %8s\n", "", at_small.c_str(), at_large.c_str(), "ratio");
  // The deploy's phases are timed in whole milliseconds: 0 is under 1 ms, so a ratio is
  // taken against at least 1 ms (0 and 0 is 1.00, not 0/0).
  auto ms_ratio = [](double large, double small) { return std::max(large, 1.0) / std::max(small, 1.0); };
  std::printf("  %-46s %10.1f %10.1f %8.2f   (goal: under 1.5; whole ms, 0 = under 1 ms)\n",
              "route switch of a redeploy, p95 ms", p95(switch_small), p95(switch_large),
              ms_ratio(p95(switch_large), p95(switch_small)));
  std::printf("  %-46s %10.1f %10.1f %8.2f\n", "route switch of a redeploy, p50 ms", p50(switch_small),
              p50(switch_large), ms_ratio(p50(switch_large), p50(switch_small)));
  std::printf("  %-46s %10.1f %10.1f %8.2f\n", "GET /api/v1/environments, p95 ms", p95(list_small), p95(list_large),
              p95(list_large) / p95(list_small));
  std::printf("  %-46s %10ld %10ld\n", "idp serve RSS, KiB", rss_small, rss_large);
  std::printf("  %-46s %21.1f   (goal: under 100 KiB)\n", "RSS per environment beyond the first ones, KiB",
              static_cast<double>(rss_large - rss_small) / (envs - small));
  std::printf("  %-46s %21.1f   (%.1f ms each; the first %d: %.1f ms each)\n", "create the rest, s",
              create_rest_ms / 1000.0, create_rest_ms / (envs - small), small, create_small_ms / small);
  std::printf("  %-46s %21.1f   (goal: under 20 s)\n", "destroy all, one DELETE each, until none is left, s",
              destroy_ms / 1000.0);
  std::printf("reproduce: cmake --build build --target bench_scale && build/bench/bench_scale --envs %d --small %d "
              "--switches %d --isolation %s --router %s\n",
              envs, small, switches, isolation.c_str(), router.c_str());
  d.stop();
  (void)util::remove_all(root);
  return 0;
}
