#pragma once
// Poller: compares each watched repository's branches (`git ls-remote --heads`) with what
// the sources last acted on (SeenHeads) and with the environments in the store, and pushes
// the difference onto the BranchQueue:
//   - a tracked branch whose head is new or moved  → sync (at the branch head when it runs)
//   - a branch that is gone while an environment still tracks it → remove
// One pass over every repository runs at start (whatever `poll` says): the startup sync that
// repairs anything a crash lost between accepting a webhook and acting on it. After that,
// repositories with `poll: true` are polled every poll_interval (a failed startup pass of
// any repository is retried every 30s until it succeeds). The thread also prunes webhook
// delivery ids older than 7 days. Thread-safe.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sources/branch_queue.hpp"
#include "sources/seen_heads.hpp"
#include "sources/watched_repo.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/periodic_thread.hpp"
#include "util/time.hpp"

namespace idp::sources {

// `git ls-remote --heads`: branch → commit. A seam so tests can script the remote.
using ListHeads = std::function<Expected<std::map<std::string, std::string>>(const std::string& url)>;

class Poller {
public:
  // `list_heads` defaults to util::git_ls_remote_heads when empty.
  Poller(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue, SeenHeads& seen,
         util::Clock& clock, ListHeads list_heads = {});
  ~Poller();

  // Starts the thread: one pass over every repository now, then the polled ones on their interval.
  void start();
  void stop();

  // One pass over `repo` (actor "poller" or "startup"); returns how much work it queued.
  // transient when the repository cannot be listed (nothing is queued then).
  Expected<size_t> poll_once(const WatchedRepo& repo, const std::string& actor);

private:
  // One pass over what is due; returns the milliseconds until the next is due.
  util::Millis step();

  std::vector<WatchedRepo> m_repos;
  store::StateStore& m_store;
  BranchQueue& m_queue;
  SeenHeads& m_seen;
  util::Clock& m_clock;
  ListHeads m_list_heads;

  // The thread's own state.
  std::vector<bool> m_synced;     // the startup pass of each repository succeeded
  std::vector<int64_t> m_next_at; // steady ms of each repository's next pass
  int64_t m_next_prune = 0;
  util::PeriodicThread m_thread;
};

} // namespace idp::sources
