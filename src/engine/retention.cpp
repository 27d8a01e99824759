#include "engine/retention.hpp"

#include <dirent.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "util/fs.hpp"
#include "util/git.hpp"

namespace idp::engine {

namespace {

constexpr std::string_view k_mirror_suffix = ".git";

// Names of the entries of `dir` ending in `suffix`; empty when it does not exist.
std::vector<std::string> entries_ending_in(const std::string& dir, std::string_view suffix) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return out;
  }
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(name);
    }
  }
  ::closedir(d);
  return out;
}

// When a mirror was last cloned or fetched: git rewrites FETCH_HEAD at every fetch.
util::Millis last_used(const std::string& mirror) {
  return std::max({util::file_mtime_ms(util::path_join(mirror, "FETCH_HEAD")),
                   util::file_mtime_ms(util::path_join(mirror, "HEAD")), util::file_mtime_ms(mirror)});
}

} // namespace

Retention::Retention(store::StateStore& store, util::Clock& clock, std::string git_cache_dir,
                     const EngineOptions& options)
    : m_store(store), m_clock(clock), m_git_cache_dir(std::move(git_cache_dir)), m_options(options) {}

Retention::~Retention() { stop(); }

void Retention::start() {
  if (m_options.retention_interval <= 0) {
    return;
  }
  m_thread.start([this] {
    auto swept = sweep();
    if (swept && (swept->events > 0 || swept->environments > 0 || swept->mirrors > 0)) {
      spdlog::info("retention: removed {} events, {} destroyed environments, {} git mirrors", swept->events,
                   swept->environments, swept->mirrors);
    }
    return m_options.retention_interval;
  });
}

void Retention::stop() { m_thread.stop(); }

Expected<Retention::Swept> Retention::sweep() {
  util::Millis now = m_clock.now_ms();
  Swept swept;
  std::optional<Error> first_error;
  auto note = [&](const char* what, const Error& err) {
    spdlog::warn("retention: cannot prune {} (next sweep tries again): {}", what, err.full_message());
    if (!first_error) {
      first_error = err;
    }
  };
  if (m_options.event_retention > 0) {
    if (auto n = m_store.prune_events(now - m_options.event_retention)) {
      swept.events = *n;
    } else {
      note("events", n.error());
    }
  }
  if (m_options.destroyed_retention > 0) {
    if (auto n = m_store.purge_destroyed_environments(now - m_options.destroyed_retention)) {
      swept.environments = *n;
    } else {
      note("destroyed environments", n.error());
    }
  }
  // Listed before the cache directory is read: a mirror cloned for an environment created
  // after this list is new, hence recently used, and kept by prune_mirrors' age check.
  if (auto live = m_store.list_environments(false)) {
    if (m_options.mirror_retention > 0) {
      if (auto n = prune_mirrors(now, *live)) {
        swept.mirrors = *n;
      } else {
        note("git mirrors", n.error());
      }
    }
    maintain_mirrors(*live);
  } else if (m_options.mirror_retention > 0) {
    note("git mirrors", live.error());
  }
  if (first_error) {
    return Unexpected(*first_error);
  }
  return swept;
}

void Retention::maintain_mirrors(const std::vector<core::Environment>& live) {
  // Fetches on a deploy's path skip git's automatic maintenance (it is a process of its
  // own, on every fetch); the mirrors of live environments get it here instead, so loose
  // objects from many small fetches are packed. Housekeeping: a failure is only logged.
  std::set<std::string> repos;
  for (const auto& env : live) {
    repos.insert(env.repo);
  }
  for (const auto& repo : repos) {
    util::GitMirror mirror(m_git_cache_dir, repo);
    if (auto r = mirror.maintain(); !r) {
      spdlog::warn("retention: git maintenance of {} failed (next sweep tries again): {}", mirror.path(),
                   r.error().full_message());
    }
  }
}

Expected<size_t> Retention::prune_mirrors(util::Millis now, const std::vector<core::Environment>& live) {
  std::set<std::string> in_use;
  for (const auto& env : live) {
    std::string path = util::GitMirror(m_git_cache_dir, env.repo).path();
    in_use.insert(path.substr(path.rfind('/') + 1));
  }
  size_t removed = 0;
  for (const auto& name : entries_ending_in(m_git_cache_dir, k_mirror_suffix)) {
    std::string mirror = util::path_join(m_git_cache_dir, name);
    util::Millis used = last_used(mirror);
    if (in_use.count(name) || now - used < m_options.mirror_retention) {
      continue;
    }
    // The lock GitMirror::fetch takes: a mirror being cloned or fetched right now is in use.
    std::string lock_path = mirror.substr(0, mirror.size() - k_mirror_suffix.size()) + ".lock";
    auto lock = util::FileLock::try_acquire(lock_path);
    if (!lock) {
      continue;
    }
    if (auto r = util::remove_all(mirror); !r) {
      spdlog::warn("retention: cannot remove git mirror {}: {}", mirror, r.error().full_message());
      continue;
    }
    spdlog::info("retention: removed git mirror {} (unused since {})", mirror, util::format_iso8601(used));
    ++removed;
  }
  return removed;
}

} // namespace idp::engine
