#pragma once
// Helpers for the local driver tests: a recording Progress, contexts and specs over the
// example app, HTTP through the router, the test binary as the shim.

#include <atomic>
#include <climits>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

#include "drivers/driver.hpp"
#include "support/test_support.hpp"
#include "util/http_client.hpp"
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
  bool cancelled() const override { return m_cancel.load(); }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }
  void cancel() { m_cancel = true; }

  std::vector<std::string> steps;
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

// GET through the router: http://<env>.preview.localhost:<port><path>.
inline Expected<util::HttpResponse> get_via_router(int router_port, const std::string& env, const std::string& path) {
  return http_get("http://" + env + ".preview.localhost:" + std::to_string(router_port) + path);
}

inline long status_via_router(int router_port, const std::string& env, const std::string& path = "/health") {
  auto r = get_via_router(router_port, env, path);
  return r ? r->status : -1;
}

} // namespace idp::drivers::local::testing
