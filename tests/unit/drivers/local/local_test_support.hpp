#pragma once
// Helpers for the local driver tests: a recording Progress, contexts and specs over the
// example app, HTTP through the router, the test binary as the shim.

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <filesystem>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

#include "drivers/driver.hpp"
#include "drivers/local/local_driver.hpp"
#include "drivers/local/processes.hpp"
#include "support/test_support.hpp"
#include "util/http_client.hpp"
#include "util/proc.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local::testing {

// Records what the driver reports; cancel() makes cancelled() true, optionally only once
// a given revision status was reported.
class RecordingProgress final : public Progress {
public:
  void step(std::string_view what) override {
    std::lock_guard<std::mutex> g(m_mutex);
    steps.emplace_back(what);
  }
  void revision_status(core::RevisionStatus status, std::string_view message) override {
    std::lock_guard<std::mutex> g(m_mutex);
    statuses.push_back(status);
    if (cancel_on && *cancel_on == status) {
      m_cancel = true;
    }
  }
  void phase(std::string_view name) override {
    std::lock_guard<std::mutex> g(m_mutex);
    phases.emplace_back(name);
  }
  bool cancelled() const override { return m_cancel.load(); }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }
  void cancel() { m_cancel = true; }

  std::vector<std::string> steps;
  std::vector<std::string> phases; // Progress::phase, in order
  std::vector<core::RevisionStatus> statuses;
  std::optional<core::RevisionStatus> cancel_on;

private:
  std::mutex m_mutex;
  std::atomic<bool> m_cancel{false};
};

inline std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, static_cast<size_t>(n > 0 ? n : 0));
}

inline DriverContext make_context(const std::string& home, nlohmann::json options = nlohmann::json::object()) {
  DriverContext ctx;
  ctx.home = home;
  ctx.router_port = *util::find_free_port();
  ctx.self_exe = self_exe();
  if (!options.contains("health_timeout_ms")) {
    options["health_timeout_ms"] = 30000;
  }
  if (!options.contains("stop_grace_ms")) {
    options["stop_grace_ms"] = 3000;
  }
  ctx.options = options;
  return ctx;
}

inline core::Environment make_env(const std::string& name, const idp::testing::GitRepo& repo) {
  core::Environment e;
  e.name = name;
  e.repo = repo.path();
  e.branch = "main";
  e.commit = repo.head();
  return e;
}

// The example api-service at the repo's HEAD.
inline DeploySpec make_spec(const std::string& name, const idp::testing::GitRepo& repo, int64_t revision_id = 1) {
  DeploySpec s;
  s.env = make_env(name, repo);
  s.revision_id = revision_id;
  s.config.local.start = "node server.js";
  s.config.health_check_path = "/health";
  s.config.cpu = 256;
  s.config.memory = 512;
  return s;
}

inline Expected<util::HttpResponse> http_get(const std::string& url) {
  util::HttpRequest r;
  r.url = url;
  r.timeout_ms = 5000;
  r.connect_timeout_ms = 1000;
  return util::http_request(r);
}

// GET through the router: http://<env>.preview.localhost:<port><path>, sent to 127.0.0.1
// (the router's address): curl would try ::1 first for a .localhost name, and report that
// attempt's "connection refused" when the IPv4 one failed for another reason.
inline Expected<util::HttpResponse> get_via_router(int router_port, const std::string& env, const std::string& path) {
  util::HttpRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(router_port) + path;
  r.headers = {{"Host", env + ".preview.localhost:" + std::to_string(router_port)}};
  r.timeout_ms = 5000;
  r.connect_timeout_ms = 1000;
  return util::http_request(r);
}

inline long status_via_router(int router_port, const std::string& env, const std::string& path = "/health") {
  auto r = get_via_router(router_port, env, path);
  return r ? r->status : -1;
}

// Live processes whose working directory is `dir` or inside it (/proc/<pid>/cwd): what
// runs in a home (Caddy in router/, apps and builds in their checkouts, PostgreSQL in its
// data directory), with or without marker variables.
inline std::vector<pid_t> processes_working_under(const std::string& dir) {
  std::error_code ec;
  std::string root = std::filesystem::weakly_canonical(dir, ec).string();
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr || root.empty()) {
    if (d != nullptr) {
      ::closedir(d);
    }
    return out;
  }
  while (auto* ent = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(ent->d_name));
    if (pid <= 0 || pid == ::getpid()) {
      continue;
    }
    char buf[PATH_MAX];
    ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/cwd").c_str(), buf, sizeof buf - 1);
    if (n <= 0) {
      continue;
    }
    std::string cwd(buf, static_cast<size_t>(n));
    if ((cwd == root || cwd.rfind(root + "/", 0) == 0) && util::process_alive(pid)) {
      out.push_back(pid);
    }
  }
  ::closedir(d);
  return out;
}

// Everything a driver of `home` may have left running: its router's Caddy (marker
// IDP_ROUTER_HOME_ID), environments' processes (IDP_HOME_ID) and whatever works inside
// the home (PostgreSQL, unmarked children).
inline std::vector<pid_t> processes_of_home(const std::string& home) {
  std::string id = home_id_for(home);
  std::vector<pid_t> out = util::find_processes_with_env("IDP_ROUTER_HOME_ID", id);
  for (const auto& p : find_marked_processes(id)) {
    out.push_back(p.pid);
  }
  for (pid_t p : processes_working_under(home)) {
    out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Stops, whatever a test's outcome, what a driver of `home` left running
// (processes_of_home). A fixture declares it before its driver, so its destructor runs
// after the driver's: also when the test body or TearDown failed or threw, and when the
// router was detached (stop(true): a later stop() leaves its Caddy alone, as in the daemon).
class HomeProcessReaper {
public:
  explicit HomeProcessReaper(std::string home) : m_home(std::move(home)) {}
  ~HomeProcessReaper() { stop_all(); }
  HomeProcessReaper(const HomeProcessReaper&) = delete;
  HomeProcessReaper& operator=(const HomeProcessReaper&) = delete;

  // Stops them (TERM, KILL after 2 s); returns how many there were.
  size_t stop_all() const {
    auto left = processes_of_home(m_home);
    if (!left.empty()) {
      util::terminate_processes(left, 2000);
    }
    return left.size();
  }

private:
  std::string m_home;
};

} // namespace idp::drivers::local::testing
