// The soak (label `soak`, docs/hacking.md): one real `idp serve` keeps IDP_SOAK_ENVS (100)
// environments of the api-service example alive, from branches of a polled repository,
// while for IDP_SOAK_SECONDS (120) branches are pushed (redeploy), extended, deleted
// (destroy) and pushed again (create) at random, with requests through the router to every
// ready environment and API reads, and the daemon killed with SIGKILL half way and started
// again. At the end every environment matches its branch (ready at its head, or gone),
// nothing is orphaned, no request to a ready environment failed outside the documented
// window (from the deletion of its branch on; docs/gitops.md; a handshake reset by a route
// change is retried once, as that page says a client should), no API call failed outside
// the daemon's own down time, and the daemon's RSS and fd count are back to their baseline.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>

#include <gtest/gtest.h>

#include "integration/templates/templates_test_support.hpp"
#include "support/home_inspection.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

using Millis = int64_t;

Millis now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int soak_setting(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return fallback;
  }
  auto n = util::parse_int<int>(v);
  if (!n || *n <= 0) {
    ADD_FAILURE() << name << "=" << v << ": expected a positive integer";
    return fallback;
  }
  return *n;
}

std::string seconds_since(Millis start) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(now_ms() - start) / 1000.0);
  return buf;
}

// What the daemon said of its router (adopted, restarted, a reload refused): the first
// thing to read when a request to a ready environment failed.
std::string router_lines(const std::string& log) {
  std::string out;
  for (const auto& line : util::split(log, '\n')) {
    if (line.find("router") != std::string::npos || line.find("caddy") != std::string::npos) {
      out += line + "\n";
    }
  }
  return util::tail_lines(out, 60);
}

} // namespace

// Outside the anonymous namespace: SoakTest's members use them (-Wsubobject-linkage in a unity build).
struct SoakBranch {
  std::string name;        // soak-007
  std::string env;         // preview-soak-007
  bool live = false;       // the branch exists in the remote
  std::string commit;      // its head while live
  bool served = false;     // seen ready since it was (re)created: requests to it must succeed
  uint64_t generation = 0; // bumped when its branch is deleted: requests racing that are in the window
};

struct SoakFigures {
  std::atomic<long> pushes{0}, extends{0}, destroys{0}, creates{0};
  std::atomic<long> requests{0}, requests_in_window_failed{0}, api_calls{0}, api_down_failed{0};
  std::atomic<long> handshake_resets{0}; // reset while Caddy swapped its socket (a route change), retried
};

class SoakTest : public TemplatesTest {
protected:
  SoakTest() : remote(tmp.sub("remote.git")), work(make_example_repo(tmp.sub("work"), "api-service", "main")) {
    remote.push(work, "main");
  }

  // A new commit on `b` (from main when the branch is new or was deleted), not yet pushed.
  std::string commit_on(const SoakBranch& b, bool from_main, const std::string& note) {
    if (from_main) {
      work.git({"checkout", "-q", "-B", b.name, "main"});
    } else {
      work.git({"checkout", "-q", b.name});
    }
    work.write_file("NOTE.txt", note + "\n");
    return work.commit(b.name + ": " + note);
  }

  // Every branch ready at its head, or gone; polled until `timeout_ms`.
  bool converged(int timeout_ms, std::string& why) {
    return wait_until(
        [&] {
          json envs = list_envs();
          if (!envs.is_array()) {
            why = "GET /api/v1/environments failed";
            return false;
          }
          std::map<std::string, json> by_name;
          for (const auto& e : envs) {
            by_name[e.value("name", "")] = e;
          }
          std::lock_guard lock(m_mu);
          for (const auto& b : branches) {
            auto it = by_name.find(b.env);
            std::string phase = it == by_name.end() ? "absent" : it->second.value("phase", "");
            if (b.live) {
              std::string deployed = it == by_name.end() || !it->second["deployed_commit"].is_string()
                                         ? ""
                                         : it->second["deployed_commit"].get<std::string>();
              if (phase != "ready" || deployed != b.commit) {
                why = b.env + " is " + phase + " at " + deployed + ", wanted ready at " + b.commit;
                return false;
              }
            } else if (phase != "absent" && phase != "destroyed") {
              why = b.env + " is " + phase + ", wanted destroyed";
              return false;
            }
          }
          return true;
        },
        timeout_ms, 500);
  }

  json list_envs() {
    std::shared_lock lock(m_daemon_mu);
    auto [status, body] = d->api("GET", "/api/v1/environments");
    return status == 200 && body.is_object() ? body.value("environments", json()) : json();
  }

  BareRepo remote;
  GitRepo work;
  std::unique_ptr<DaemonProcess> d;
  std::vector<SoakBranch> branches;
  std::mutex m_mu;               // branches
  std::shared_mutex m_daemon_mu; // exclusive while the daemon is killed and started again
};

TEST_F(SoakTest, HundredEnvironmentsSurviveChurnAndAKill9) {
  const int n_envs = soak_setting("IDP_SOAK_ENVS", 100);
  const int seconds = soak_setting("IDP_SOAK_SECONDS", 120);
  const unsigned seed =
      static_cast<unsigned>(soak_setting("IDP_SOAK_SEED", static_cast<int>(std::random_device{}() & 0x7fffffff)));
  std::printf("soak: %d environments, %d s of churn, IDP_SOAK_SEED=%u\n", n_envs, seconds, seed);
  std::mt19937 rng(seed);

  // All branches at once, one push.
  std::vector<std::string> push_args = {"push", "-q", "--force", remote.path()};
  for (int i = 0; i < n_envs; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "soak-%03d", i);
    SoakBranch b;
    b.name = name;
    b.env = std::string("preview-") + name;
    b.commit = commit_on(b, true, "v0");
    b.live = true;
    push_args.push_back(b.name);
    branches.push_back(b);
  }
  work.git(push_args);
  d = make_daemon(json::object(), "repositories:\n  - url: " + util::json_dump(json(remote.path())) +
                                      "\n    poll: true\n    poll_interval: 500ms\n");
  std::string why;
  Millis t0 = now_ms();
  ASSERT_TRUE(converged(900000, why)) << why << "\n" << d->log();
  std::printf("soak: %d environments ready in %.1f s\n", n_envs, (now_ms() - t0) / 1000.0);
  for (auto& b : branches) {
    b.served = true;
  }
  const long rss_base = process_rss_kb(d->pid());
  // The fds held, not those open for a moment (a git poll's pipes and lock, an API call's
  // connection): the lowest count seen over two seconds.
  long fds_base = process_fd_count(d->pid());
  std::string fds_base_targets = process_fd_targets(d->pid());
  for (Millis until = now_ms() + 2000; now_ms() < until; std::this_thread::sleep_for(std::chrono::milliseconds(100))) {
    if (long n = process_fd_count(d->pid()); n < fds_base) {
      fds_base = n;
      fds_base_targets = process_fd_targets(d->pid());
    }
  }

  SoakFigures fig;
  std::atomic<bool> stop{false};
  std::atomic<bool> daemon_down{false};
  std::mutex failures_mu;
  std::vector<std::string> failures; // outside any documented window
  auto fail = [&](const std::string& what) {
    std::lock_guard lock(failures_mu);
    if (failures.size() < 50) {
      failures.push_back(what);
    }
  };
  const int router_port = d->router_port();
  const Millis start = now_ms(); // the churn's start: failures carry their time from it

  // Requests through the router to environments seen ready, about 40 a second per thread.
  auto traffic = [&](unsigned thread_seed) {
    std::mt19937 r(thread_seed);
    while (!stop) {
      std::string env;
      uint64_t gen = 0;
      {
        std::lock_guard lock(m_mu);
        const SoakBranch& b = branches[r() % branches.size()];
        if (b.live && b.served) {
          env = b.env;
          gen = b.generation;
        }
      }
      if (!env.empty()) {
        util::HttpRequest req;
        req.url = "http://127.0.0.1:" + std::to_string(router_port) + "/health";
        req.headers = {{"Host", env + ".preview.localhost:" + std::to_string(router_port)}};
        req.timeout_ms = 10000;
        auto res = util::http_request(req);
        if (!res && router_handshake_reset(res.error().message)) {
          ++fig.handshake_resets; // the documented window of a route change: a client retries
          res = util::http_request(req);
        }
        ++fig.requests;
        if (!res || res->status != 200) {
          std::lock_guard lock(m_mu);
          const SoakBranch* b = nullptr;
          for (const auto& x : branches) {
            if (x.env == env) {
              b = &x;
            }
          }
          if (b == nullptr || b->generation != gen || !b->live) {
            ++fig.requests_in_window_failed;
          } else {
            fail(seconds_since(start) + ": GET /health on ready " + env + ": " +
                 (res ? std::to_string(res->status) : res.error().message));
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25)); // load pacing, not synchronisation
    }
  };

  // API reads: the list, as the dashboard polls it; marks environments seen ready.
  auto observer = [&] {
    while (!stop) {
      bool down = daemon_down;
      json envs = list_envs();
      ++fig.api_calls;
      if (!envs.is_array()) {
        if (down || daemon_down) {
          ++fig.api_down_failed;
        } else {
          fail("GET /api/v1/environments failed while the daemon was up");
        }
      } else {
        std::lock_guard lock(m_mu);
        for (const auto& e : envs) {
          for (auto& b : branches) {
            // Ready at the commit wanted now: a list read before a delete and a re-push
            // shows the old incarnation ready at an older commit, which is being removed.
            if (b.env == e.value("name", "") && b.live && e.value("phase", "") == "ready" &&
                e["deployed_commit"].is_string() && e["deployed_commit"].get<std::string>() == b.commit) {
              b.served = true;
            }
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  };

  std::vector<std::thread> threads;
  threads.emplace_back(traffic, seed + 1);
  threads.emplace_back(traffic, seed + 2);
  threads.emplace_back(observer);

  // The churn, on this thread: one operation every 200 ms, the kill -9 half way.
  const Millis end = start + seconds * 1000LL;
  bool killed = false;
  int version = 0;
  while (now_ms() < end) {
    if (!killed && now_ms() >= start + seconds * 500LL) {
      std::unique_lock lock(m_daemon_mu);
      daemon_down = true;
      d->kill9();
      d->start();
      daemon_down = false;
      killed = true;
      std::printf("soak: daemon killed with SIGKILL and started again at %.1f s\n", (now_ms() - start) / 1000.0);
      continue;
    }
    size_t i = rng() % branches.size();
    int dice = static_cast<int>(rng() % 100);
    std::string note = "v" + std::to_string(++version);
    SoakBranch snapshot;
    {
      std::lock_guard lock(m_mu);
      snapshot = branches[i];
    }
    if (snapshot.live && dice < 40) {
      std::string sha = commit_on(snapshot, false, note);
      work.git({"push", "-q", "--force", remote.path(), snapshot.name});
      std::lock_guard lock(m_mu);
      branches[i].commit = sha;
      ++fig.pushes;
    } else if (snapshot.live && snapshot.served && dice < 60) {
      std::shared_lock lock(m_daemon_mu);
      auto [status, body] = d->api("POST", "/api/v1/environments/" + snapshot.env + "/extend", R"({"ttl":"1h"})");
      ++fig.extends;
      ++fig.api_calls;
      if (status != 200) {
        fail("extend " + snapshot.env + ": " + std::to_string(status) + " " + util::json_dump(body));
      }
    } else if (snapshot.live && dice < 80) {
      {
        std::lock_guard lock(m_mu);
        branches[i].live = false;
        branches[i].served = false;
        ++branches[i].generation;
      }
      remote.delete_branch(snapshot.name);
      ++fig.destroys;
    } else if (!snapshot.live) {
      std::string sha = commit_on(snapshot, true, note);
      {
        std::lock_guard lock(m_mu);
        branches[i].commit = sha;
        branches[i].live = true;
      }
      work.git({"push", "-q", "--force", remote.path(), snapshot.name});
      ++fig.creates;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // load pacing
  }

  // Traffic goes on while the daemon catches up with the last operations.
  bool ok = converged(600000, why);
  stop = true;
  for (auto& t : threads) {
    t.join();
  }
  ASSERT_TRUE(ok) << why << "\n" << d->log();

  std::set<std::string> live;
  for (const auto& b : branches) {
    if (b.live) {
      live.insert(b.env);
    }
  }
  // Nothing orphaned: one revision of each live environment (processes, directory,
  // checkout, route), nothing of the others. Retiring may end just after `ready`: poll.
  std::set<std::string> want_routes = {"idp-catch-all"};
  for (const auto& env : live) {
    want_routes.insert("idp-env-" + env);
  }
  auto clean = [&] {
    if (process_environments(*d) != live || caddy_routes(home) != want_routes ||
        checkouts(home).size() != live.size() || !git_worktrees(home).empty()) {
      return false;
    }
    for (const auto& env : live) {
      auto revs = process_revisions(*d, env);
      if (std::set<std::string>(revs.begin(), revs.end()).size() != 1 || revision_dirs(home, env).size() != 1) {
        return false;
      }
    }
    return true;
  };
  EXPECT_TRUE(wait_until(clean, 120000, 500))
      << process_environments(*d).size() << " environments with processes; " << caddy_routes(home).size()
      << " routes for " << live.size() << " live environments; " << checkouts(home).size() << " checkouts, "
      << git_worktrees(home).size() << " registered worktrees";

  // Back to the baseline: the fds the daemon holds for live environments, and its memory,
  // are not more than with all of them alive before the churn (allocator slack allowed).
  // Again the fds held, not those open for a moment: the lowest count seen, for up to ten
  // seconds until it is back near the baseline.
  const long rss_end = process_rss_kb(d->pid());
  long fds_end = process_fd_count(d->pid());
  wait_until([&] { return (fds_end = std::min(fds_end, process_fd_count(d->pid()))) <= fds_base + 8; }, 10000, 100);
  const std::string fds_end_targets = process_fd_targets(d->pid());
  std::printf("soak: operations: %ld pushes, %ld extends, %ld destroys, %ld creates; %zu live at the end\n",
              fig.pushes.load(), fig.extends.load(), fig.destroys.load(), fig.creates.load(), live.size());
  std::printf("soak: router requests: %ld, failed outside the window: %zu, failed inside it (branch deleted): %ld, "
              "handshakes reset by a route change and retried: %ld\n",
              fig.requests.load(), failures.size(), fig.requests_in_window_failed.load(), fig.handshake_resets.load());
  std::printf("soak: API calls: %ld, failed while the daemon was down: %ld\n", fig.api_calls.load(),
              fig.api_down_failed.load());
  std::printf("soak: daemon RSS %ld kB -> %ld kB, fds %ld -> %ld (baseline: all ready before the churn)\n", rss_base,
              rss_end, fds_base, fds_end);
  std::printf("soak: the daemon's fds before the churn:\n%safter it:\n%s", fds_base_targets.c_str(),
              fds_end_targets.c_str());
  EXPECT_TRUE(failures.empty()) << util::join(failures, "\n") << "\nthe router's lines in the daemon's log:\n"
                                << router_lines(d->log()) << "\ncaddy.log, its end:\n"
                                << util::tail_lines(
                                       util::read_file(util::path_join(home, "router/caddy.log")).value_or(""), 40);
  EXPECT_GT(fig.requests.load(), 0);
  EXPECT_GT(fig.pushes.load() + fig.destroys.load() + fig.creates.load(), 0);
  EXPECT_LE(fds_end, fds_base + 8) << "the daemon holds more file descriptors than before the churn; before:\n"
                                   << fds_base_targets << "after:\n"
                                   << fds_end_targets;
  EXPECT_LE(rss_end, rss_base * 3 / 2 + 32 * 1024) << "the daemon's memory grew during the churn";
  EXPECT_EQ(d->stop(), 0);
}
