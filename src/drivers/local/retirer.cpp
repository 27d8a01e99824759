// Retiring in the background: the revision a route switch replaced is stopped after the
// drain by one thread of the driver, not inside the deploy, so the next push's deploy and a
// destroy never wait on a drain. The switch records it in EnvState::retiring (with the
// route, in one write), so a daemon killed meanwhile retires it at its next start
// (adopt_live_environments); destroy and stop(false) take it with everything else.

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "drivers/local/local_driver.hpp"
#include "util/failpoint.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

// How soon a retirement whose environment is busy (an apply holds its lock) is tried again.
constexpr int64_t k_busy_retry_ms = 50;

} // namespace

void LocalDriver::schedule_retire(const std::string& env, const std::string& key, int64_t delay_ms) {
  std::lock_guard<std::mutex> g(m_retire_mu);
  if (m_retire_stop) {
    return; // stopping: the record stays, the next start retires it
  }
  m_retire_queue.emplace(util::steady_ms() + std::max<int64_t>(0, delay_ms), std::make_pair(env, key));
  if (!m_retirer.joinable()) {
    m_retirer = std::thread([this] { retirer_loop(); });
  }
  m_retire_cv.notify_all();
}

void LocalDriver::stop_retirer() {
  {
    std::lock_guard<std::mutex> g(m_retire_mu);
    m_retire_stop = true;
    m_retire_queue.clear(); // still recorded in the state files
  }
  m_retire_cv.notify_all();
  if (m_retirer.joinable()) {
    m_retirer.join();
  }
}

size_t LocalDriver::retiring_count() const {
  std::lock_guard<std::mutex> g(m_retire_mu);
  return m_retire_queue.size() + m_retiring_now;
}

void LocalDriver::retirer_loop() {
  std::unique_lock<std::mutex> lk(m_retire_mu);
  while (!m_retire_stop) {
    if (m_retire_queue.empty()) {
      m_retire_cv.wait(lk);
      continue;
    }
    auto first = m_retire_queue.begin();
    int64_t now = util::steady_ms();
    if (first->first > now) {
      m_retire_cv.wait_for(lk, std::chrono::milliseconds(first->first - now));
      continue;
    }
    auto [env, key] = first->second;
    m_retire_queue.erase(first);
    ++m_retiring_now;
    lk.unlock();
    bool done = retire_recorded(env, key);
    lk.lock();
    --m_retiring_now;
    if (!done && !m_retire_stop) {
      m_retire_queue.emplace(util::steady_ms() + k_busy_retry_ms, std::make_pair(env, key));
    }
  }
}

bool LocalDriver::retire_recorded(const std::string& env, const std::string& key) {
  auto guard = m_env_locks.try_lock(env);
  if (!guard) {
    return false; // an apply or a destroy holds it: try again shortly
  }
  auto p = paths(env);
  auto loaded = load_env_state(p.state);
  if (!loaded || !*loaded) {
    return true; // destroyed meanwhile (everything went with it), or unreadable: start() deals with it
  }
  EnvState s = **loaded;
  auto it = std::find_if(s.retiring.begin(), s.retiring.end(), [&](const InstanceRecord& r) { return r.key == key; });
  if (it == s.retiring.end()) {
    return true;
  }
  InstanceRecord inst = *it;
  bool shared = (s.active && s.active->dir == inst.dir) || (s.pending && s.pending->dir == inst.dir);
  retire(env, s.repo, inst, !shared);
  s.retiring.erase(it);
  if (auto r = save_env_state(p.state, s); !r) {
    // Retired all the same; the record goes at the next start (retiring it again is a no-op).
    spdlog::warn("local driver: {}: revision {} stopped, but its record stays: {}", env, key, r.error().message);
  }
  (void)env_log(env, 0)->append("system", "stopped revision " + key);
  if (IDP_FAILPOINT("local.apply.old_retired")) {
    spdlog::warn("local driver: failpoint local.apply.old_retired fired after stopping revision {} of {}", key, env);
  }
  return true;
}

} // namespace idp::drivers::local
