#pragma once
// Retention: a periodic task that forgets what is old, so that the store and the git cache
// do not grow forever. Each sweep removes
// - events older than event_retention (the audit log of live environments included);
// - the rows of environments destroyed more than destroyed_retention ago, with their
//   revisions and job runs (their events follow the event retention);
// - git mirrors under the cache directory that no live environment uses and that were
//   not fetched for mirror_retention (a watched repository is fetched at every poll and
//   push, so it stays). A mirror in use by a fetch at that moment is skipped.
// Then it runs git's automatic maintenance on the mirrors of live environments (the
// deploy path's fetches skip it).
// A retention of 0 keeps that kind forever. Thread-safe.

#include <string>

#include "engine/options.hpp"
#include "store/state_store.hpp"
#include "util/periodic_thread.hpp"

namespace idp::engine {

class Retention {
public:
  struct Swept {
    size_t events = 0;
    size_t environments = 0;
    size_t mirrors = 0;
  };

  // `git_cache_dir` is the RepoResolver's cache (<home>/git).
  Retention(store::StateStore& store, util::Clock& clock, std::string git_cache_dir, const EngineOptions& options);
  ~Retention();
  // Sweeps at once, then every options.retention_interval; nothing when that is 0.
  void start();
  void stop();
  // One sweep now. Failures are logged and the rest of the sweep still runs; the error of
  // the first failure is returned (what was removed before it stays removed).
  Expected<Swept> sweep();

private:
  // `live`: the environments not destroyed, listed before the cache directory is read.
  Expected<size_t> prune_mirrors(util::Millis now, const std::vector<core::Environment>& live);
  void maintain_mirrors(const std::vector<core::Environment>& live);

  store::StateStore& m_store;
  util::Clock& m_clock;
  std::string m_git_cache_dir;
  EngineOptions m_options;
  util::PeriodicThread m_thread;
};

} // namespace idp::engine
