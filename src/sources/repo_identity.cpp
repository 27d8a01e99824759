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

bool payload_names_repo(const nlohmann::json& repository, const WatchedRepo& repo) {
  if (!repository.is_object()) {
    return false;
  }
  std::string gh = util::to_lower(github_repo_of(repo));
  auto full_name = repository.find("full_name");
  if (!gh.empty() && full_name != repository.end() && full_name->is_string() &&
      util::to_lower(full_name->get<std::string>()) == gh) {
    return true;
  }
  std::string mine = normalise(repo.url);
  if (mine.empty()) {
    return false;
  }
  for (const char* key : {"clone_url", "html_url", "ssh_url", "git_url", "url", "svn_url"}) {
    auto it = repository.find(key);
    if (it != repository.end() && it->is_string() && normalise(it->get<std::string>()) == mine) {
      return true;
    }
  }
  return false;
}

const WatchedRepo* find_watched_repo(const std::vector<WatchedRepo>& repos, const nlohmann::json& repository) {
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
