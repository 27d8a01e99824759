#pragma once
// Reads application repositories: which commit a branch is at, and .idp/config.yml at a
// commit. Backed by bare mirrors under <home>/git. Thread-safe.

#include <optional>
#include <string>

#include "util/expected.hpp"

namespace idp::engine {

class RepoResolver {
public:
  explicit RepoResolver(std::string cache_dir) : m_cache_dir(std::move(cache_dir)) {}
  virtual ~RepoResolver() = default;

  // The repository as stored: absolute path for local directories, URLs unchanged.
  static std::string canonical_repo(const std::string& repo);
  // True for what resolve_commit accepts: 7 to 40 lowercase hex digits (checked without git).
  static bool is_commit_sha(const std::string& text);

  // Fetches and returns the commit `branch` points at. invalid_config when the branch
  // does not exist; transient when the repository cannot be reached.
  virtual Expected<std::string> resolve_branch(const std::string& repo, const std::string& branch);
  // Fetches refs/pull/<number>/head (a pull request's head, also from a fork) and returns
  // its commit. not_found when the repository has no such pull request.
  virtual Expected<std::string> resolve_pull_head(const std::string& repo, int number);
  // Fetches and returns the full sha of `commit` (7 to 40 hex digits). invalid_argument when
  // it is not a commit of the repository.
  virtual Expected<std::string> resolve_commit(const std::string& repo, const std::string& commit);
  // Contents of `path` at `commit`, nullopt when absent.
  virtual Expected<std::optional<std::string>> read_file(const std::string& repo, const std::string& commit,
                                                         const std::string& path);

private:
  std::string m_cache_dir;
};

} // namespace idp::engine
