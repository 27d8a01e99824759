#include "fakes/fake_driver.hpp"

#include <algorithm>
#include <chrono>

namespace idp::testing {

using namespace std::chrono_literals;

Expected<void> FakeDriver::start(const std::vector<core::Environment>& live) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"start", "", "", 0});
  // Like a real driver after a restart: whatever belongs to no live environment is removed.
  for (auto it = m_live.begin(); it != m_live.end();) {
    bool keep = std::any_of(live.begin(), live.end(), [&](const core::Environment& e) { return e.name == it->first; });
    it = keep ? std::next(it) : m_live.erase(it);
  }
  m_cv.notify_all();
  return {};
}

void FakeDriver::stop(bool) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"stop", "", "", 0});
  m_hold = false;
  m_hold_failed = false;
  m_cv.notify_all();
}

Expected<void> FakeDriver::plan(const drivers::DeploySpec& spec) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"plan", spec.env.name, spec.env.commit, spec.revision_id});
  if (m_plan_error) {
    return Unexpected(*m_plan_error);
  }
  return {};
}

Expected<drivers::ApplyResult> FakeDriver::apply(const drivers::DeploySpec& spec, drivers::Progress& progress) {
  std::unique_lock<std::mutex> lk(m_mu);
  m_calls.push_back({"apply", spec.env.name, spec.env.commit, spec.revision_id, spec.template_values});
  m_cv.notify_all();
  progress.revision_status(core::RevisionStatus::starting, "fake start");
  auto cancelled = [&] {
    m_calls.push_back({"apply-cancelled", spec.env.name, spec.env.commit, spec.revision_id});
    m_cv.notify_all();
    return make_error(ErrorCode::cancelled, "apply cancelled");
  };
  while (m_hold) {
    if (progress.cancelled()) {
      return cancelled();
    }
    m_cv.wait_for(lk, 5ms);
  }
  if (progress.cancelled()) {
    return cancelled();
  }
  if (!m_apply_errors.empty()) {
    Error e = m_apply_errors.front();
    m_apply_errors.pop_front();
    progress.revision_status(core::RevisionStatus::failed, e.message); // as the real drivers do
    m_calls.push_back({"apply-failed", spec.env.name, spec.env.commit, spec.revision_id});
    m_cv.notify_all();
    while (m_hold_failed) {
      m_cv.wait_for(lk, 5ms);
    }
    return Unexpected(e);
  }
  m_live[spec.env.name] = spec.env.commit;
  if (auto it = m_health.find(spec.env.name); it != m_health.end() && (it->second.first == drivers::Health::stopped ||
                                                                       it->second.first == drivers::Health::asleep)) {
    m_health.erase(it); // like a real driver: applying starts what the server stop stopped
  }
  drivers::ApplyResult r;
  r.url = "http://" + spec.env.name + ".fake.test/";
  r.outputs = {{"commit", spec.env.commit}};
  return r;
}

Expected<void> FakeDriver::sleep(const core::Environment& env, drivers::Progress&) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"sleep", env.name, env.commit, 0});
  m_health[env.name] = {drivers::Health::asleep, "asleep"};
  m_cv.notify_all();
  return {};
}

Expected<std::optional<util::Millis>> FakeDriver::last_request(const core::Environment& env) {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_last_request.find(env.name);
  return it == m_last_request.end() ? std::optional<util::Millis>() : std::optional<util::Millis>(it->second);
}

void FakeDriver::set_last_request(const std::string& env, util::Millis at) {
  std::lock_guard<std::mutex> g(m_mu);
  m_last_request[env] = at;
}

Expected<drivers::Observation> FakeDriver::observe(const core::Environment& env) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"observe", env.name, env.commit, 0});
  m_cv.notify_all();
  drivers::Observation o;
  auto it = m_health.find(env.name);
  if (it != m_health.end()) {
    o.health = it->second.first;
    o.detail = it->second.second;
  } else {
    o.health = m_live.count(env.name) ? drivers::Health::healthy : drivers::Health::not_running;
  }
  return o;
}

Expected<void> FakeDriver::destroy(const core::Environment& env, drivers::Progress&) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"destroy", env.name, env.commit, 0});
  m_cv.notify_all();
  if (!m_destroy_errors.empty()) {
    Error e = m_destroy_errors.front();
    m_destroy_errors.pop_front();
    return Unexpected(e);
  }
  m_live.erase(env.name);
  m_health.erase(env.name);
  return {};
}

Expected<drivers::LogChunk> FakeDriver::read_logs(const core::Environment& env, const drivers::LogQuery&) {
  std::lock_guard<std::mutex> g(m_mu);
  m_calls.push_back({"logs", env.name, env.commit, 0});
  drivers::LogChunk c;
  if (m_live.count(env.name)) {
    c.lines.push_back({0, "stdout", "fake log line of " + env.name});
  }
  return c;
}

void FakeDriver::fail_next_applies(std::vector<Error> errors) {
  std::lock_guard<std::mutex> g(m_mu);
  m_apply_errors.assign(errors.begin(), errors.end());
}

void FakeDriver::fail_next_destroys(std::vector<Error> errors) {
  std::lock_guard<std::mutex> g(m_mu);
  m_destroy_errors.assign(errors.begin(), errors.end());
}

void FakeDriver::hold_applies(bool hold) {
  std::lock_guard<std::mutex> g(m_mu);
  m_hold = hold;
  m_cv.notify_all();
}

void FakeDriver::hold_failed_applies(bool hold) {
  std::lock_guard<std::mutex> g(m_mu);
  m_hold_failed = hold;
  m_cv.notify_all();
}

void FakeDriver::set_health(const std::string& env, drivers::Health h, std::string detail) {
  std::lock_guard<std::mutex> g(m_mu);
  m_health[env] = {h, std::move(detail)};
}

void FakeDriver::fail_plans(std::optional<Error> err) {
  std::lock_guard<std::mutex> g(m_mu);
  m_plan_error = std::move(err);
}

std::vector<FakeDriver::Call> FakeDriver::calls() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_calls;
}

size_t FakeDriver::count(const std::string& op, const std::string& env) const {
  std::lock_guard<std::mutex> g(m_mu);
  size_t n = 0;
  for (const auto& c : m_calls) {
    if (c.op == op && (env.empty() || c.env == env)) {
      ++n;
    }
  }
  return n;
}

std::map<std::string, std::string> FakeDriver::live() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_live;
}

bool FakeDriver::wait_for(const std::string& op, const std::string& env, size_t n, int timeout_ms) const {
  std::unique_lock<std::mutex> lk(m_mu);
  auto pred = [&] {
    size_t k = 0;
    for (const auto& c : m_calls) {
      if (c.op == op && (env.empty() || c.env == env)) {
        ++k;
      }
    }
    return k >= n;
  };
  return m_cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), pred);
}

} // namespace idp::testing
