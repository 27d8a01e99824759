#include "sources/sources.hpp"

#include <spdlog/spdlog.h>

namespace idp::sources {

Sources::Sources(std::vector<WatchedRepo> repos, store::StateStore& store, engine::Controller& controller,
                 util::Clock& clock, Options options)
    : m_repos(std::move(repos)) {
  m_actions = std::make_unique<ControllerActions>(controller);
  m_seen = std::make_unique<SeenHeads>(store);
  m_queue = std::make_unique<BranchQueue>(*m_actions, m_seen.get());
  ForkGate::Options fo;
  fo.github_api_url = options.github_api_url;
  m_forks = std::make_unique<ForkGate>(m_repos, store, *m_queue, clock, fo);
  m_webhook = std::make_unique<GithubWebhook>(m_repos, store, *m_queue, clock, options.max_body_bytes, m_forks.get());
  m_poller = std::make_unique<Poller>(m_repos, store, *m_queue, *m_seen, clock);
  GithubNotifier::Options no;
  no.api_url = options.github_api_url;
  no.cost_rates = options.cost_rates;
  m_notifier = std::make_unique<GithubNotifier>(m_repos, store, clock, no);
  // A create a budget refused (issue 12) leaves no environment whose events the notifier
  // would follow: the queue hands it over.
  m_queue->on_failed([notifier = m_notifier.get()](const BranchWork& work, const Error& error) {
    if (work.op != BranchOp::sync || error.kind != "budget_exhausted") {
      return;
    }
    RefusedCreate r;
    r.repo = work.repo;
    r.branch = work.fork_pr ? "pull request #" + std::to_string(*work.fork_pr) + " (fork)" : work.branch;
    r.commit = !work.commit.empty() ? work.commit : work.head;
    r.pr_number = work.fork_pr ? work.fork_pr : work.pr_number;
    r.reason = error.message;
    notifier->refused(std::move(r));
  });
}

Sources::~Sources() { stop(); }

void Sources::start() {
  if (m_started) {
    return;
  }
  m_started = true;
  m_queue->start();
  m_forks->start();
  m_poller->start();
  m_notifier->start();
  if (!m_repos.empty()) {
    spdlog::info("sources: watching {} repositor{}{}", m_repos.size(), m_repos.size() == 1 ? "y" : "ies",
                 m_notifier->enabled() ? ", notifying GitHub" : "");
  }
}

void Sources::stop() {
  if (!m_started) {
    return;
  }
  m_started = false;
  m_notifier->stop();
  m_poller->stop();
  m_forks->stop();
  m_queue->stop();
}

} // namespace idp::sources
