#pragma once
// Idle sleep (issue 12): where a runtime says that a sleeping environment's app answers
// again, for the daemon's wake handler, which holds the request that woke it. The runtime
// posts the app's upstream as soon as its health check passes, before it switches the
// route back and before the engine records the wake, so the held request goes to the app
// without waiting for either. Thread-safe; no I/O.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace idp::core {

class WakeBoard {
public:
  // The number of posts for `env` so far: what wait() waits to see grow.
  uint64_t seen(const std::string& env) const {
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_posts.find(env);
    return it == m_posts.end() ? 0 : it->second.count;
  }
  // The app of `env` answers at `upstream` ("127.0.0.1:<port>").
  void post(const std::string& env, const std::string& upstream) {
    {
      std::lock_guard<std::mutex> g(m_mu);
      auto& p = m_posts[env];
      p.count += 1;
      p.upstream = upstream;
    }
    m_cv.notify_all();
  }
  // Waits until `env` has more than `after` posts (its upstream) or `deadline` (nullopt).
  std::optional<std::string> wait(const std::string& env, uint64_t after,
                                  std::chrono::steady_clock::time_point deadline) const {
    std::unique_lock<std::mutex> lk(m_mu);
    bool posted = m_cv.wait_until(lk, deadline, [&] {
      auto it = m_posts.find(env);
      return it != m_posts.end() && it->second.count > after;
    });
    if (!posted) {
      return std::nullopt;
    }
    return m_posts.at(env).upstream;
  }
  // Forgets `env` (destroyed).
  void forget(const std::string& env) {
    std::lock_guard<std::mutex> g(m_mu);
    m_posts.erase(env);
  }

private:
  struct Post {
    uint64_t count = 0;
    std::string upstream;
  };
  mutable std::mutex m_mu;
  mutable std::condition_variable m_cv;
  std::map<std::string, Post> m_posts;
};

} // namespace idp::core
