#include "engine/store_retry.hpp"

#include <chrono>

namespace idp::engine {

bool is_retryable_store_error(const Error& err) {
  return err.code == ErrorCode::transient || err.code == ErrorCode::io_error || err.code == ErrorCode::timeout;
}

void StoreRetry::stop() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_stopped = true;
    ++m_notifications;
  }
  m_cv.notify_all();
}

void StoreRetry::restart() { m_stopped = false; }

void StoreRetry::notify() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    ++m_notifications;
  }
  m_cv.notify_all();
}

void StoreRetry::wait(util::Millis ms, const std::function<bool()>& give_up) {
  std::unique_lock<std::mutex> lk(m_mu);
  uint64_t seen = m_notifications;
  // give_up() reads atomics of the caller only; it never takes m_mu.
  m_cv.wait_for(lk, std::chrono::milliseconds(ms),
                [&] { return m_stopped.load() || m_notifications != seen || give_up(); });
}

} // namespace idp::engine
