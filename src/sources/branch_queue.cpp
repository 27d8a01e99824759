#include "sources/branch_queue.hpp"

#include <spdlog/spdlog.h>

#include "sources/seen_heads.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"

namespace idp::sources {

namespace {

std::string commit_or_head(const std::string& c) { return c.empty() ? "head" : c.substr(0, 7); }

// Worth another attempt later: the repository or the store may be back by then.
bool retryable(ErrorCode code) {
  return code == ErrorCode::transient || code == ErrorCode::timeout || code == ErrorCode::io_error;
}

} // namespace

Expected<std::string> ControllerActions::sync(const engine::BranchUpdate& upd, const std::string& actor,
                                              const std::string& reason) {
  IDP_TRY_ASSIGN(core::Environment env, m_controller.sync_branch(upd, actor, reason));
  if (env.freeze && !env.freeze->waiting.empty()) {
    return env.freeze->waiting.back(); // held by a freeze: seen, so a poll does not hold it again
  }
  return env.commit;
}

Expected<void> ControllerActions::remove(const std::string& repo, const std::string& branch, const std::string& actor,
                                         const std::string& reason) {
  IDP_TRY(m_controller.remove_branch(repo, branch, actor, reason));
  return {};
}

Expected<void> ControllerActions::remove_fork(const std::string& repo, int pr, const std::string& actor,
                                              const std::string& reason) {
  IDP_TRY(m_controller.remove_fork(repo, pr, actor, reason));
  return {};
}

BranchQueue::BranchQueue(BranchActions& actions, SeenHeads* seen, Options options)
    : m_actions(actions), m_seen(seen), m_options(options) {}

BranchQueue::~BranchQueue() { stop(); }

std::string BranchQueue::key_of(const std::string& repo, const std::string& branch) { return repo + "\n" + branch; }

BranchQueue::Pushed BranchQueue::push(BranchWork work) {
  Pushed result = Pushed::queued;
  {
    std::lock_guard<std::mutex> g(m_mu);
    std::string key = key_of(work.repo, work.branch);
    auto& q = m_pending[key];
    bool was_empty = q.empty();
    m_stats.pushed += 1;
    if (work.op == BranchOp::sync) {
      if (!q.empty() && q.back().op == BranchOp::sync) {
        // Only the newest commit matters: the older one would be superseded anyway.
        q.back() = std::move(work);
        result = Pushed::coalesced;
      } else {
        q.push_back(std::move(work));
      }
    } else {
      if (!q.empty() && q.back().op == BranchOp::sync) {
        q.pop_back(); // deploying what is about to be removed helps nobody
        result = Pushed::coalesced;
      }
      if (!q.empty() && q.back().op == BranchOp::remove) {
        q.back() = std::move(work); // PR closed + branch deleted: one removal
        result = Pushed::coalesced;
      } else {
        q.push_back(std::move(work));
      }
    }
    if (result == Pushed::coalesced) {
      m_stats.coalesced += 1;
    }
    if (was_empty) {
      m_order.push_back(key);
    }
  }
  m_cv.notify_one();
  return result;
}

void BranchQueue::start() {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_running) {
    return;
  }
  m_running = true;
  m_stopping = false;
  for (size_t i = 0; i < std::max<size_t>(1, m_options.workers); ++i) {
    m_workers.emplace_back([this] { util::thread_main("branch_queue", [this] { worker(); }); });
  }
}

void BranchQueue::stop() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (!m_running) {
      return;
    }
    m_running = false;
    m_stopping = true;
  }
  m_cv.notify_all();
  for (auto& t : m_workers) {
    if (t.joinable()) {
      t.join();
    }
  }
  m_workers.clear();
  std::lock_guard<std::mutex> g(m_mu);
  if (!m_pending.empty()) {
    // Not lost: the startup sync after the next start compares every branch with git.
    spdlog::info("sources: {} branch(es) with pending work at shutdown", m_pending.size());
  }
  m_pending.clear();
  m_order.clear();
  m_idle_cv.notify_all();
}

bool BranchQueue::wait_idle(int timeout_ms) const {
  std::unique_lock<std::mutex> lk(m_mu);
  return m_idle_cv.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                            [this] { return m_pending.empty() && m_inflight.empty(); });
}

BranchQueue::Stats BranchQueue::stats() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_stats;
}

std::string BranchQueue::metrics_text() const {
  Stats st = stats();
  std::string out = "# HELP idp_branch_work_received_total Branch work received: pushes, deleted branches, closed "
                    "pull requests.\n# TYPE idp_branch_work_received_total counter\n";
  out += "idp_branch_work_received_total " + std::to_string(st.pushed) + "\n";
  out += "# HELP idp_branch_work_total Branch work by outcome: done, rejected (the branch's config, a branch gone), "
         "failed (for good, otherwise), retried, coalesced (replaced by newer work for its branch).\n"
         "# TYPE idp_branch_work_total counter\n";
  for (const auto& [outcome, n] : {std::pair{"done", st.done},
                                   {"rejected", st.rejected},
                                   {"failed", st.failed - st.rejected},
                                   {"retried", st.retried},
                                   {"coalesced", st.coalesced}}) {
    out += std::string("idp_branch_work_total{outcome=\"") + outcome + "\"} " + std::to_string(n) + "\n";
  }
  return out;
}

std::vector<BranchWork> BranchQueue::pending_for_test(const std::string& repo, const std::string& branch) const {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_pending.find(key_of(repo, branch));
  if (it == m_pending.end()) {
    return {};
  }
  return {it->second.begin(), it->second.end()};
}

void BranchQueue::worker() {
  std::unique_lock<std::mutex> lk(m_mu);
  while (!m_stopping) {
    int64_t now = util::steady_ms();
    int64_t next_due = 0;
    auto picked = m_order.end();
    for (auto it = m_order.begin(); it != m_order.end(); ++it) {
      if (m_inflight.count(*it)) {
        continue;
      }
      const BranchWork& front = m_pending[*it].front();
      if (front.not_before > now) {
        next_due = next_due == 0 ? front.not_before : std::min(next_due, front.not_before);
        continue;
      }
      picked = it;
      break;
    }
    if (picked == m_order.end()) {
      if (next_due > 0) {
        m_cv.wait_for(lk, std::chrono::milliseconds(next_due - now));
      } else {
        m_cv.wait(lk);
      }
      continue;
    }
    std::string key = *picked;
    auto& q = m_pending[key];
    BranchWork work = std::move(q.front());
    q.pop_front();
    if (q.empty()) {
      m_pending.erase(key);
      m_order.erase(picked);
    }
    m_inflight.insert(key);
    lk.unlock();
    bool ran = util::guarded_step("branch_queue", [&] { run(work); });
    lk.lock();
    if (!ran) {
      // Logged by the guard; the next push or poll of the branch brings it back.
      m_stats.failed += 1;
    }
    m_inflight.erase(key);
    // The branch just finished may have work that another worker skipped while it ran: this
    // worker takes the next item itself; another is woken only when there is more than one
    // (waking every worker after every item put the idle ones back to sleep at once).
    if (m_pending.size() > 1) {
      m_cv.notify_one();
    }
    if (m_pending.empty() && m_inflight.empty()) {
      m_idle_cv.notify_all();
    }
  }
}

void BranchQueue::run(BranchWork& work) {
  Expected<void> result;
  std::string now_at = work.head;
  if (work.op == BranchOp::sync) {
    engine::BranchUpdate upd;
    upd.repo = work.repo;
    upd.branch = work.branch;
    upd.commit = work.commit;
    upd.only_if_head = work.only_if_head;
    upd.owner = work.owner;
    upd.pr_number = work.pr_number;
    upd.default_template = work.default_template;
    upd.fork_pr = work.fork_pr;
    auto synced = m_actions.sync(upd, work.actor, work.reason);
    if (synced) {
      now_at = *synced;
    } else {
      result = Unexpected(synced.error());
    }
  } else if (work.fork_pr) {
    result = m_actions.remove_fork(work.repo, *work.fork_pr, work.actor, work.reason);
  } else {
    result = m_actions.remove(work.repo, work.branch, work.actor, work.reason);
  }
  const char* what = work.op == BranchOp::sync ? "sync" : "remove";

  if (!result && retryable(result.error().code) && work.attempts + 1 < m_options.max_attempts) {
    work.attempts += 1;
    util::Millis delay = m_options.retry_base;
    for (int i = 1; i < work.attempts && delay < m_options.retry_max; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, m_options.retry_max);
    work.not_before = util::steady_ms() + delay;
    spdlog::warn("sources: {} of branch {} ({}) failed, retrying in {}: {}", what, util::quote(work.branch),
                 commit_or_head(work.commit), util::format_duration(delay), result.error().full_message());
    std::lock_guard<std::mutex> g(m_mu);
    m_stats.retried += 1;
    std::string key = key_of(work.repo, work.branch);
    auto& q = m_pending[key];
    bool newer = !q.empty() && (q.front().op == work.op || q.front().op == BranchOp::remove);
    if (newer) {
      return; // newer work for the branch replaces this attempt
    }
    bool was_empty = q.empty();
    q.push_front(std::move(work));
    if (was_empty) {
      m_order.push_back(key);
    }
    return;
  }

  const bool rejected = !result && (result.error().code == ErrorCode::invalid_config ||
                                    result.error().code == ErrorCode::invalid_argument);
  if (result) {
    spdlog::debug("sources: {} of branch {} ({}) done", what, util::quote(work.branch), commit_or_head(now_at));
  } else if (rejected) {
    // The branch's config is wrong at this commit: the environment (if any) shows why; a new push fixes it.
    spdlog::info("sources: {} of branch {} ({}) rejected: {}", what, util::quote(work.branch),
                 commit_or_head(work.commit), result.error().full_message());
  } else {
    spdlog::error("sources: {} of branch {} ({}) failed: {}", what, util::quote(work.branch),
                  commit_or_head(work.commit), result.error().full_message());
  }
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (result) {
      m_stats.done += 1;
    } else {
      m_stats.failed += 1;
      m_stats.rejected += rejected ? 1 : 0;
    }
  }
  if (!result && m_on_failed) {
    m_on_failed(work, result.error());
  }
  if (!m_seen || work.fork_pr) {
    return; // a fork's pull request is no branch of the repository: the poller never sees it
  }
  if (!result && retryable(result.error().code)) {
    return; // gave up for now: the next poll or startup sync tries again
  }
  if (work.op == BranchOp::remove && work.head.empty()) {
    m_seen->erase(work.repo, work.branch);
  } else if (!now_at.empty()) {
    m_seen->set(work.repo, work.branch, now_at);
  }
}

} // namespace idp::sources
