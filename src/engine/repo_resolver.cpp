#include "engine/repo_resolver.hpp"

#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/strings.hpp"

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
  IDP_TRY(mirror.fetch());
  auto commit = mirror.resolve_branch(branch);
  if (!commit && commit.error().code == ErrorCode::not_found) {
    return make_error(ErrorCode::invalid_config, commit.error().message);
  }
  return commit;
}

Expected<std::optional<std::string>> RepoResolver::read_file(const std::string& repo, const std::string& commit,
                                                             const std::string& path) {
  util::GitMirror mirror(m_cache_dir, repo);
  return mirror.read_file(commit, path);
}

} // namespace idp::engine
