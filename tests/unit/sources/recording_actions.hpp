#pragma once
// RecordingActions: a BranchActions fake that records every call, can block callers until
// released (to fill the queue behind a running sync) and can fail the next calls.

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sources/branch_queue.hpp"

namespace idp::testing {

class RecordingActions final : public sources::BranchActions {
public:
  struct Call {
    std::string op; // "sync" | "remove"
    std::string repo;
    std::string branch;
    std::string commit;
    std::string actor;
    std::string reason;
    std::optional<int> pr_number;
  };

  Expected<std::string> sync(const engine::BranchUpdate& upd, const std::string& actor,
                             const std::string& reason) override {
    std::unique_lock<std::mutex> lk(m_mu);
    m_calls.push_back({"sync", upd.repo, upd.branch, upd.commit, actor, reason, upd.pr_number});
    m_cv.notify_all();
    m_cv.wait(lk, [this] { return !m_hold; });
    if (!m_fail.empty()) {
      Error e = m_fail.front();
      m_fail.pop_front();
      return Unexpected(e);
    }
    if (!upd.commit.empty()) {
      return upd.commit;
    }
    return m_heads.count(upd.branch) ? m_heads[upd.branch] : std::string("head-of-" + upd.branch);
  }

  Expected<void> remove(const std::string& repo, const std::string& branch, const std::string& actor,
                        const std::string& reason) override {
    std::unique_lock<std::mutex> lk(m_mu);
    m_calls.push_back({"remove", repo, branch, "", actor, reason, std::nullopt});
    m_cv.notify_all();
    m_cv.wait(lk, [this] { return !m_hold; });
    if (!m_fail.empty()) {
      Error e = m_fail.front();
      m_fail.pop_front();
      return Unexpected(e);
    }
    return {};
  }

  // While held, calls block (after being recorded).
  void hold(bool h) {
    std::lock_guard<std::mutex> g(m_mu);
    m_hold = h;
    m_cv.notify_all();
  }
  void fail_next(std::vector<Error> errors) {
    std::lock_guard<std::mutex> g(m_mu);
    m_fail.insert(m_fail.end(), errors.begin(), errors.end());
  }
  // What a sync with no commit resolves to.
  void set_head(const std::string& branch, const std::string& commit) {
    std::lock_guard<std::mutex> g(m_mu);
    m_heads[branch] = commit;
  }
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> g(m_mu);
    return m_calls;
  }
  bool wait_calls(size_t n, int timeout_ms) const {
    std::unique_lock<std::mutex> lk(m_mu);
    return m_cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return m_calls.size() >= n; });
  }

private:
  mutable std::mutex m_mu;
  mutable std::condition_variable m_cv;
  std::vector<Call> m_calls;
  std::deque<Error> m_fail;
  std::map<std::string, std::string> m_heads;
  bool m_hold = false;
};

} // namespace idp::testing
