#pragma once
// Long-lived threads: guarded_step and thread_main, the exception guards every thread entry
// of the daemon uses (a throw is logged with the thread's name and the loop goes on; never
// std::terminate), and PeriodicThread, a loop that calls one step until stopped (the
// reaper, the poller, the GitHub notifier). Each guard checks the failpoint
// "thread.<name>" (util/failpoint.hpp), so tests can throw inside any of these loops.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "util/failpoint.hpp"
#include "util/time.hpp"

namespace idp::util {

// Logs (error) that thread `name` caught `what` and goes on.
void log_thread_exception(std::string_view name, std::string_view what) noexcept;
// Checks the failpoint "thread.<name>": throws for throw (and for error, since a loop has no
// error path to take), aborts or sleeps as configured.
void thread_failpoint(std::string_view name);

// One iteration of a thread's loop: the failpoint "thread.<name>", then `body`. A throw from
// either is logged with the name and swallowed. Returns false when something threw.
template <class F>
bool guarded_step(std::string_view name, F&& body) noexcept {
  try {
    thread_failpoint(name);
    body();
    return true;
  } catch (const std::exception& e) {
    log_thread_exception(name, e.what());
  } catch (...) {
    log_thread_exception(name, "an exception that is not a std::exception");
  }
  return false;
}

// The whole body of a thread: runs guarded_step(name, body) until `body` returns normally;
// after a throw (logged), runs `body` again from its start after `restart_delay_ms`. For
// loops that keep their state in members and can begin again at the top.
void thread_main(std::string_view name, const std::function<void()>& body, Millis restart_delay_ms = 500);

class PeriodicThread {
public:
  // Returns the milliseconds to wait before the next call (at least 1).
  using Step = std::function<Millis()>;
  // Wait after a step that threw (it is logged): a step that keeps throwing does not spin.
  static constexpr Millis k_wait_after_throw = 1000;

  PeriodicThread() = default;
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;
  // Stops the thread. Owners whose step uses their other members call stop() in their own
  // destructor, before those members go.
  ~PeriodicThread();

  // Starts calling `step` at once; nothing when already running. `name` appears in logs and
  // names the failpoint "thread.<name>". A step that throws is logged and called again
  // after k_wait_after_throw.
  void start(Step step, std::string name = "periodic");
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
