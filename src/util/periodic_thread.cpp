#include "util/periodic_thread.hpp"

#include <algorithm>

namespace idp::util {

PeriodicThread::~PeriodicThread() { stop(); }

void PeriodicThread::start(Step step) {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_running || m_thread.joinable()) {
    return;
  }
  m_running = true;
  m_thread = std::thread([this, step = std::move(step)] {
    std::unique_lock<std::mutex> lk(m_mu);
    while (m_running) {
      lk.unlock();
      Millis wait = std::max<Millis>(1, step());
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
