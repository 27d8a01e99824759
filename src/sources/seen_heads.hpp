#pragma once
// SeenHeads: per watched repository, the head of each branch the sources last acted on
// (synced, or removed while the branch still existed). The poller compares `git ls-remote`
// with it, so a restart neither repeats work (a PR closed with its branch kept is not
// re-created) nor misses it (a push accepted but not acted on before a crash is, because
// a head is recorded only once its work is done). Kept in store settings under
// "sources.heads.<hash of the repo>". Thread-safe.

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "store/state_store.hpp"

namespace idp::sources {

class SeenHeads {
public:
  explicit SeenHeads(store::StateStore& store) : m_store(store) {}

  // The recorded head of `branch` in `repo` (a WatchedRepo::url), if any.
  std::optional<std::string> get(const std::string& repo, const std::string& branch);
  // Records (and persists) `commit` as the head of `branch`.
  void set(const std::string& repo, const std::string& branch, const std::string& commit);
  void erase(const std::string& repo, const std::string& branch);
  // Every recorded branch of `repo`.
  std::map<std::string, std::string> all(const std::string& repo);

  static std::string setting_key(const std::string& repo);

private:
  std::map<std::string, std::string>& load(const std::string& repo);
  void save(const std::string& repo);

  store::StateStore& m_store;
  std::mutex m_mu;
  std::map<std::string, std::map<std::string, std::string>> m_heads; // canonical repo → branch → commit
};

} // namespace idp::sources
