#pragma once
// Sources: everything that turns repository changes into desired state, built once by the
// daemon: the GitHub webhook receiver and the poller (with its startup sync) feed one
// BranchQueue whose workers call the Controller; the GitHub notifier reports back. They
// write desired state through the Controller and nothing else.
//
// Crash safety: a webhook is answered once its work is queued in memory. If the daemon
// dies before the work runs, the startup sync (one `git ls-remote` pass over every watched
// repository, polled or not) finds the pushed or deleted branch and queues it again.
// A pull request closed while its branch still exists is the one event git cannot show;
// that environment stays until its branch is deleted or its TTL runs out.

#include <memory>
#include <string>
#include <vector>

#include "engine/controller.hpp"
#include "sources/branch_queue.hpp"
#include "sources/fork_gate.hpp"
#include "sources/github_notifier.hpp"
#include "sources/github_webhook.hpp"
#include "sources/poller.hpp"
#include "sources/seen_heads.hpp"
#include "sources/watched_repo.hpp"
#include "store/state_store.hpp"
#include "util/time.hpp"

namespace idp::sources {

class Sources {
public:
  struct Options {
    std::string github_api_url = "https://api.github.com";
    size_t max_body_bytes = 1024 * 1024; // the API server's payload limit
    engine::CostRates cost_rates;        // the PR comment's cost line (issue 12)
  };

  Sources(std::vector<WatchedRepo> repos, store::StateStore& store, engine::Controller& controller, util::Clock& clock,
          Options options);
  ~Sources();

  // The receiver behind POST /hooks/github (usable before start(): work waits in the queue).
  GithubWebhook& webhook() { return *m_webhook; }
  BranchQueue& queue() { return *m_queue; }
  ForkGate& forks() { return *m_forks; }
  // The GitHub notifier (the budgets' github_comment alerts post through it).
  GithubNotifier& notifier() { return *m_notifier; }

  // Starts the queue workers, the poller (startup sync first) and the notifier.
  void start();
  // Stops the notifier, the poller and the queue (running work finishes; pending work is
  // left to the next startup sync).
  void stop();

private:
  std::vector<WatchedRepo> m_repos;
  std::unique_ptr<ControllerActions> m_actions;
  std::unique_ptr<SeenHeads> m_seen;
  std::unique_ptr<BranchQueue> m_queue;
  std::unique_ptr<ForkGate> m_forks;
  std::unique_ptr<GithubWebhook> m_webhook;
  std::unique_ptr<Poller> m_poller;
  std::unique_ptr<GithubNotifier> m_notifier;
  bool m_started = false;
};

} // namespace idp::sources
