#pragma once
// A background thread that calls one step over and over until stopped: the step returns
// how long to wait before its next call, and stop() ends that wait at once. The loop of
// the reaper, the poller and the GitHub notifier.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "util/time.hpp"

namespace idp::util {

class PeriodicThread {
public:
  // Returns the milliseconds to wait before the next call (at least 1).
  using Step = std::function<Millis()>;

  PeriodicThread() = default;
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;
  // Stops the thread. Owners whose step uses their other members call stop() in their own
  // destructor, before those members go.
  ~PeriodicThread();

  // Starts calling `step` at once; nothing when already running.
  void start(Step step);
  // Ends the wait, lets a step in progress finish and joins; nothing when not running.
  void stop();
  // True once stop() has begun: a long step can return early.
  bool stopping() const;

private:
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  bool m_running = false;
  std::thread m_thread;
};

} // namespace idp::util
