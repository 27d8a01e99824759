#include "sources/repo_identity.hpp"

#include <regex>

#include "engine/repo_resolver.hpp"
#include "util/strings.hpp"

namespace idp::sources {

namespace {

bool is_remote_url(const std::string& s) {
  return s.find("://") != std::string::npos || (s.find('@') != std::string::npos && s.find(':') != std::string::npos);
}

// A comparable form of a repository location.
std::string normalise(const std::string& location) {
  if (location.empty()) {
    return "";
  }
  if (!is_remote_url(location)) {
    std::string p = engine::RepoResolver::canonical_repo(location);
    while (p.size() > 1 && p.back() == '/') {
      p.pop_back();
    }
    return p;
  }
  std::string s = util::to_lower(location);
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  if (util::ends_with(s, ".git")) {
    s.resize(s.size() - 4);
  }
  return s;
}

} // namespace

std::string github_repo_of(const WatchedRepo& repo) {
  if (!repo.github_repo.empty()) {
    return repo.github_repo;
  }
  // host then owner/name; the path must have exactly two components.
  static const std::regex k_url(
      R"(^(?:https?|ssh|git)://(?:[^@/]+@)?[^/]+/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$)");
  static const std::regex k_scp(R"(^[^@/\s]+@[^:/\s]+:([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$)");
  std::smatch m;
  if (std::regex_match(repo.url, m, k_url) || std::regex_match(repo.url, m, k_scp)) {
    return m[1].str() + "/" + m[2].str();
  }
  return "";
}

bool payload_names_repo(const PayloadRepository& repository, const WatchedRepo& repo) {
  if (!repository.is_object) {
    return false;
  }
  std::string gh = util::to_lower(github_repo_of(repo));
  if (!gh.empty() && !repository.full_name.empty() && util::to_lower(repository.full_name) == gh) {
    return true;
  }
  std::string mine = normalise(repo.url);
  if (mine.empty()) {
    return false;
  }
  for (const std::string* location : {&repository.clone_url, &repository.html_url, &repository.ssh_url,
                                      &repository.git_url, &repository.url, &repository.svn_url}) {
    if (!location->empty() && normalise(*location) == mine) {
      return true;
    }
  }
  return false;
}

const WatchedRepo* find_watched_repo(const std::vector<WatchedRepo>& repos, const PayloadRepository& repository) {
  for (const auto& r : repos) {
    if (payload_names_repo(repository, r)) {
      return &r;
    }
  }
  return nullptr;
}

const WatchedRepo* find_repo_by_url(const std::vector<WatchedRepo>& repos, const std::string& env_repo) {
  for (const auto& r : repos) {
    if (engine::RepoResolver::canonical_repo(r.url) == env_repo) {
      return &r;
    }
  }
  return nullptr;
}

} // namespace idp::sources
