#pragma once
// BranchQueue: the one funnel from triggers (webhooks, the poller, the startup sync) to the
// Controller. Triggers push work and return at once; a small pool of workers calls the
// Controller, where git fetches happen. Per repo+branch:
//   - work runs one at a time, in the order it arrived (never two workers on one branch);
//   - a sync queued behind a pending sync replaces it (coalescing: only the newest commit
//     is synced), a remove drops a pending sync, and a second remove is merged into the
//     first; a sync after a remove stays behind it (destroy, then create afresh);
//   - transient failures (git unreachable, store busy) are retried with backoff unless
//     newer work for the branch arrives first.
// Thread-safe.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/controller.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::sources {

class SeenHeads;

enum class BranchOp { sync, remove };

struct BranchWork {
  BranchOp op = BranchOp::sync;
  std::string repo; // WatchedRepo::url
  std::string branch;
  std::string commit; // sync: the commit to deploy, "" = the branch head when the work runs
  // The branch head as the trigger saw it ("" = unknown, or deleted for a remove). Recorded
  // in SeenHeads once the work is done, so the poller does not act on it again.
  std::string head;
  std::string owner;
  std::optional<int> pr_number;
  std::string default_template;
  bool only_if_head = false; // sync: refuse `commit` unless it is the branch head when the work runs
  // A pull request from a fork (issue 15): sync deploys `commit` (approved) as its untrusted
  // environment, remove destroys that environment. `branch` is then only this work's key
  // (ForkGate: "pull/<n>/head (fork)", never a real branch's name).
  std::optional<int> fork_pr;
  std::string actor; // "webhook:push", "poller", ...
  std::string reason;
  int attempts = 0;            // failed attempts so far (transient errors)
  util::Millis not_before = 0; // steady-clock ms; retries wait until then
};

// What the workers call: the Controller in production, a recording fake in tests.
class BranchActions {
public:
  virtual ~BranchActions() = default;
  // Create-or-redeploy; returns the commit the environment now wants.
  virtual Expected<std::string> sync(const engine::BranchUpdate& upd, const std::string& actor,
                                     const std::string& reason) = 0;
  virtual Expected<void> remove(const std::string& repo, const std::string& branch, const std::string& actor,
                                const std::string& reason) = 0;
  // Destroys the environment of a fork's pull request, if any.
  virtual Expected<void> remove_fork(const std::string& repo, int pr, const std::string& actor,
                                     const std::string& reason) {
    (void)repo, (void)pr, (void)actor, (void)reason;
    return make_error(ErrorCode::internal, "this BranchActions does not handle forks");
  }
};

// BranchActions over the real Controller.
class ControllerActions final : public BranchActions {
public:
  explicit ControllerActions(engine::Controller& controller) : m_controller(controller) {}
  Expected<std::string> sync(const engine::BranchUpdate& upd, const std::string& actor,
                             const std::string& reason) override;
  Expected<void> remove(const std::string& repo, const std::string& branch, const std::string& actor,
                        const std::string& reason) override;
  Expected<void> remove_fork(const std::string& repo, int pr, const std::string& actor,
                             const std::string& reason) override;

private:
  engine::Controller& m_controller;
};

class BranchQueue {
public:
  struct Options {
    size_t workers = 2;
    util::Millis retry_base = 2'000; // first retry delay; doubles per attempt
    util::Millis retry_max = 60'000;
    int max_attempts = 6; // then the work is dropped (the next poll/push repairs it)
  };

  // `seen` (may be null) learns the head of each branch once work for it is done.
  BranchQueue(BranchActions& actions, SeenHeads* seen, Options options);
  BranchQueue(BranchActions& actions, SeenHeads* seen) : BranchQueue(actions, seen, Options()) {}
  ~BranchQueue();

  enum class Pushed {
    queued,    // new work
    coalesced, // replaced or merged into pending work for the same branch
  };
  // Adds work (before or after start()). Never blocks on the Controller.
  Pushed push(BranchWork work);

  void start();
  // Lets running work finish, drops what is pending, joins the workers.
  void stop();

  // Called by a worker when work failed for good (not retried), with its error: the
  // GitHub notifier tells a pull request about a create a budget refused. Before start().
  void on_failed(std::function<void(const BranchWork&, const Error&)> f) { m_on_failed = std::move(f); }

  // Blocks until nothing is pending or running, or timeout; returns whether idle.
  bool wait_idle(int timeout_ms) const;

  struct Stats {
    uint64_t pushed = 0;
    uint64_t coalesced = 0;
    uint64_t done = 0;     // work that ran and succeeded
    uint64_t failed = 0;   // work that ran and failed for good
    uint64_t rejected = 0; // of those, refused for the branch's own fault (its config, a branch gone)
    uint64_t retried = 0;
  };
  Stats stats() const;
  // The stats in Prometheus text: idp_branch_work_received_total (a push, a deleted branch,
  // a closed pull request) and idp_branch_work_total{outcome} (done; rejected for the
  // branch's own fault; failed for good otherwise; retried; coalesced into newer work for
  // the same branch).
  std::string metrics_text() const;
  // Pending work for a branch, oldest first.
  std::vector<BranchWork> pending_for_test(const std::string& repo, const std::string& branch) const;

private:
  static std::string key_of(const std::string& repo, const std::string& branch);
  void worker();
  void run(BranchWork& work);

  BranchActions& m_actions;
  SeenHeads* m_seen;
  Options m_options;
  std::function<void(const BranchWork&, const Error&)> m_on_failed;

  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  mutable std::condition_variable m_idle_cv;
  bool m_running = false;
  bool m_stopping = false;
  std::map<std::string, std::deque<BranchWork>> m_pending; // key → at most [remove][sync]
  std::deque<std::string> m_order;                         // keys with pending work, FIFO
  std::set<std::string> m_inflight;
  Stats m_stats;
  std::vector<std::thread> m_workers;
};

} // namespace idp::sources
