#include "util/periodic_thread.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace idp::util {

void log_thread_exception(std::string_view name, std::string_view what) noexcept {
  try {
    spdlog::error("thread {}: caught an exception, carrying on: {}", name, what);
  } catch (...) {
    // Logging itself failed (out of memory?): nothing better to do than go on.
  }
}

void thread_failpoint(std::string_view name) {
  if (!detail::g_failpoints_on.load(std::memory_order_relaxed)) {
    return;
  }
  std::string fp = "thread." + std::string(name);
  if (failpoint(fp)) {
    throw FailpointError(fp);
  }
}

void thread_main(std::string_view name, const std::function<void()>& body, Millis restart_delay_ms) {
  while (!guarded_step(name, body)) {
    // The loop's own state said nothing about why it threw: begin it again, a little later
    // so a body that throws at once does not spin.
    std::this_thread::sleep_for(std::chrono::milliseconds(restart_delay_ms));
  }
}

PeriodicThread::~PeriodicThread() { stop(); }

void PeriodicThread::start(Step step, std::string name) {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_running || m_thread.joinable()) {
    return;
  }
  m_running = true;
  m_thread = std::thread([this, step = std::move(step), name = std::move(name)] {
    std::unique_lock<std::mutex> lk(m_mu);
    while (m_running) {
      lk.unlock();
      Millis wait = k_wait_after_throw;
      guarded_step(name, [&] { wait = std::max<Millis>(1, step()); });
      lk.lock();
      m_cv.wait_for(lk, std::chrono::milliseconds(wait), [this] { return !m_running; });
    }
  });
}

void PeriodicThread::stop() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_running = false;
  }
  m_cv.notify_all();
  if (m_thread.joinable() && m_thread.get_id() != std::this_thread::get_id()) {
    m_thread.join();
  }
}

bool PeriodicThread::stopping() const {
  std::lock_guard<std::mutex> g(m_mu);
  return !m_running;
}

} // namespace idp::util
