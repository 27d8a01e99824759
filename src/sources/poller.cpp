#include "sources/poller.hpp"

#include <set>

#include <spdlog/spdlog.h>

#include "engine/controller.hpp"
#include "engine/repo_resolver.hpp"
#include "util/git.hpp"
#include "util/strings.hpp"

namespace idp::sources {

using core::Desired;

namespace {
const util::Millis k_delivery_retention = 7LL * 24 * 3600 * 1000;
const int64_t k_startup_retry = 30'000;
} // namespace

Poller::Poller(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue, SeenHeads& seen,
               util::Clock& clock, ListHeads list_heads)
    : m_repos(std::move(repos)), m_store(store), m_queue(queue), m_seen(seen), m_clock(clock),
      m_list_heads(std::move(list_heads)) {
  if (!m_list_heads) {
    m_list_heads = [](const std::string& url) { return util::git_ls_remote_heads(url); };
  }
}

Poller::~Poller() { stop(); }

void Poller::start() {
  if (!m_thread.stopping()) {
    return; // already running
  }
  m_synced.assign(m_repos.size(), false);
  m_next_at.assign(m_repos.size(), 0);
  m_thread.start([this] { return step(); }, "poller");
}

void Poller::stop() { m_thread.stop(); }

Expected<size_t> Poller::poll_once(const WatchedRepo& repo, const std::string& actor) {
  auto heads = m_list_heads(repo.url);
  if (!heads) {
    return Unexpected(heads.error());
  }
  IDP_TRY_ASSIGN(auto envs, m_store.list_environments(false));
  std::string canon = engine::RepoResolver::canonical_repo(repo.url);
  std::map<std::string, const core::Environment*> tracking; // branch → live environment tracking it
  for (const auto& e : envs) {
    if (!e.source_key.empty() && e.source_key == engine::Controller::source_key(canon, e.branch)) {
      tracking[e.branch] = &e;
    }
  }
  size_t queued = 0;
  for (const auto& [branch, head] : *heads) {
    if (!repo.tracks(branch) || !util::is_valid_git_branch(branch)) {
      continue;
    }
    auto it = tracking.find(branch);
    if (it != tracking.end() && it->second->desired == Desired::present && it->second->commit == head) {
      m_seen.set(repo.url, branch, head); // already wanted (e.g. a webhook was faster)
      continue;
    }
    if (m_seen.get(repo.url, branch) == head) {
      continue; // acted on already: removed by a closed PR, or its config was rejected
    }
    BranchWork w;
    w.op = BranchOp::sync;
    w.repo = repo.url;
    w.branch = branch;
    w.commit = ""; // the head when the work runs: never older than what a webhook queued meanwhile
    w.head = head;
    w.default_template = repo.default_template;
    w.actor = actor;
    w.reason = (it == tracking.end() ? "new branch at " : "branch moved to ") + head.substr(0, 7);
    m_queue.push(std::move(w));
    queued += 1;
  }
  for (const auto& [branch, env] : tracking) {
    if (heads->count(branch) || env->desired != Desired::present) {
      continue;
    }
    BranchWork w;
    w.op = BranchOp::remove;
    w.repo = repo.url;
    w.branch = branch;
    w.actor = actor;
    w.reason = "branch deleted";
    m_queue.push(std::move(w));
    queued += 1;
  }
  for (const auto& [branch, _] : m_seen.all(repo.url)) {
    if (!heads->count(branch) && !tracking.count(branch)) {
      m_seen.erase(repo.url, branch); // a branch re-created at the same commit is new again
    }
  }
  return queued;
}

util::Millis Poller::step() {
  const size_t n = m_repos.size();
  int64_t now = util::steady_ms();
  int64_t wake = now + 60'000;
  if (now >= m_next_prune) {
    // Delivery ids only guard against GitHub's redeliveries, which come within days.
    (void)m_store.prune_deliveries(m_clock.now_ms() - k_delivery_retention);
    m_next_prune = now + 3'600'000;
  }
  for (size_t i = 0; i < n && !m_thread.stopping(); ++i) {
    const WatchedRepo& repo = m_repos[i];
    if (m_synced[i] && !repo.poll) {
      continue;
    }
    if (m_next_at[i] > now) {
      wake = std::min(wake, m_next_at[i]);
      continue;
    }
    const char* actor = m_synced[i] ? "poller" : "startup";
    auto queued = poll_once(repo, actor);
    if (!queued) {
      spdlog::warn("sources: {} {}: {}", m_synced[i] ? "polling" : "startup sync of", util::quote(repo.url),
                   queued.error().full_message());
    } else {
      if (*queued > 0) {
        spdlog::info("sources: {} {}: {} branch change(s)", m_synced[i] ? "poll of" : "startup sync of",
                     util::quote(repo.url), *queued);
      }
      m_synced[i] = true;
    }
    // A failed startup sync of a repository that is not polled is retried on its own.
    m_next_at[i] = util::steady_ms() + (m_synced[i] || repo.poll ? repo.poll_interval : k_startup_retry);
    if (repo.poll || !m_synced[i]) {
      wake = std::min(wake, m_next_at[i]);
    }
  }
  return std::max<int64_t>(1, wake - util::steady_ms());
}

} // namespace idp::sources
