#pragma once
// StoreRetry: a store write the engine must not lose (a phase, the URL and commit of a
// ready environment, a revision) is attempted until it succeeds. Every failure is logged
// and retried after a bounded backoff (options store_retry_base doubling to
// store_retry_max); the wait ends early when stop() or notify() is called.
// Thread-safe: one StoreRetry serves every worker of a Reconciler.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <spdlog/spdlog.h>
#include <string>

#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::engine {

// Store failures worth retrying: a busy database, a disk or connection error. Any other
// code (not_found, conflict, a mutator's own error, ...) is a result, not a failure of
// the write, and retrying would give the same answer.
bool is_retryable_store_error(const Error& err);

class StoreRetry {
public:
  StoreRetry(util::Millis base, util::Millis max) : m_base(base), m_max(max) {}

  // Runs `op` until it succeeds, fails with a non-retryable error, stop() was called or
  // `give_up()` returns true (checked before each retry; e.g. the lease was lost).
  // Returns the last result. Every failure is logged with `what`; a give-up as an error.
  template <class T>
  Expected<T> run(
      const std::string& what, const std::function<Expected<T>()>& op,
      const std::function<bool()>& give_up = [] { return false; }) {
    util::Millis delay = m_base;
    for (int attempt = 1;; ++attempt) {
      Expected<T> r = op();
      if (r || !is_retryable_store_error(r.error())) {
        if (!r) {
          // A result rather than a failure of the store (e.g. "superseded" from a
          // mutator): the caller acts on it; logged so that nothing vanishes unseen.
          spdlog::log(r.error().code == ErrorCode::conflict ? spdlog::level::info : spdlog::level::warn, "{}: {}", what,
                      r.error().full_message());
        } else if (attempt > 1) {
          spdlog::info("{}: succeeded at attempt {}", what, attempt);
        }
        return r;
      }
      if (stopped() || give_up()) {
        spdlog::error("{}: failed (attempt {}), giving up because the {} : {}", what, attempt,
                      stopped() ? "daemon is stopping" : "operation was cancelled", r.error().full_message());
        return r;
      }
      spdlog::warn("{}: failed (attempt {}), retrying in {} ms: {}", what, attempt, delay, r.error().full_message());
      wait(delay, give_up);
      delay = std::min(m_max, delay * 2);
    }
  }

  // Ends every wait and makes run() return after its current attempt.
  void stop();
  // Allows retries again after stop() (a restarted reconciler).
  void restart();
  // Wakes waiting retries so that they check give_up() now (e.g. after a cancel).
  void notify();
  bool stopped() const { return m_stopped.load(); }

private:
  void wait(util::Millis ms, const std::function<bool()>& give_up);

  util::Millis m_base;
  util::Millis m_max;
  std::atomic<bool> m_stopped{false};
  std::mutex m_mu;
  std::condition_variable m_cv;
  uint64_t m_notifications = 0; // guarded by m_mu
};

} // namespace idp::engine
