#include "engine/repo_resolver.hpp"

#include <regex>

#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::engine {

std::string RepoResolver::canonical_repo(const std::string& repo) {
  if (repo.find("://") == std::string::npos && repo.find('@') == std::string::npos && util::is_directory(repo)) {
    std::string p = util::absolute_path(repo);
    while (p.size() > 1 && p.back() == '/') {
      p.pop_back();
    }
    return p;
  }
  return repo;
}

Expected<std::string> RepoResolver::resolve_branch(const std::string& repo, const std::string& branch) {
  if (!util::is_valid_git_branch(branch)) {
    return make_error(ErrorCode::invalid_argument, "invalid branch name " + util::quote(branch));
  }
  util::GitMirror mirror(m_cache_dir, repo);
  auto commit = mirror.fetch_branch(branch);
  if (!commit && commit.error().code == ErrorCode::not_found) {
    return make_error(ErrorCode::invalid_config, commit.error().message);
  }
  return commit;
}

Expected<std::string> RepoResolver::resolve_pull_head(const std::string& repo, int number) {
  util::GitMirror mirror(m_cache_dir, repo);
  return mirror.fetch_pull_head(number);
}

bool RepoResolver::is_commit_sha(const std::string& text) {
  static const std::regex k_sha("^[0-9a-f]{7,40}$");
  return std::regex_match(text, k_sha);
}

Expected<std::string> RepoResolver::resolve_commit(const std::string& repo, const std::string& commit) {
  if (!is_commit_sha(commit)) {
    return make_error(ErrorCode::invalid_argument,
                      "expected a commit sha (7 to 40 hex digits), got " + util::quote(commit));
  }
  util::GitMirror mirror(m_cache_dir, repo);
  IDP_TRY(mirror.fetch());
  util::Command c;
  c.argv = {"git", "-C", mirror.path(), "rev-parse", "--verify", "--quiet", commit + "^{commit}"};
  c.env = util::git_safe_env();
  util::RunOptions o;
  o.timeout_ms = 30000;
  IDP_TRY_ASSIGN(auto r, util::run(c, o));
  std::string full = util::trim(r.out);
  if (!r.ok() || full.size() != 40) {
    return make_error(ErrorCode::invalid_argument, "commit " + util::quote(commit) + " is not in " + util::quote(repo));
  }
  return full;
}

Expected<std::optional<std::string>> RepoResolver::read_file(const std::string& repo, const std::string& commit,
                                                             const std::string& path) {
  util::GitMirror mirror(m_cache_dir, repo);
  return mirror.read_file(commit, path);
}

} // namespace idp::engine
