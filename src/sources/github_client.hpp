#pragma once
// A minimal GitHub REST client for notifications: commit statuses and issue comments.
// Every request carries Authorization: Bearer <token>, Accept: application/vnd.github+json
// and X-GitHub-Api-Version. The token never appears in an error message or a log line.
// Thread-safe (each call is its own HTTP request).

#include <cstdint>
#include <optional>
#include <string>

#include "util/expected.hpp"

namespace idp::sources {

inline constexpr const char* k_github_api_version = "2022-11-28";

class GithubClient {
public:
  // `api_url` like https://api.github.com or https://ghe.example.com/api/v3 (no trailing '/').
  GithubClient(std::string api_url, std::string token);

  // POST /repos/{owner}/{repo}/statuses/{sha}. state: pending | success | failure | error.
  // An empty target_url is left out; description is cut to GitHub's 140 characters.
  Expected<void> create_status(const std::string& repo, const std::string& sha, const std::string& state,
                               const std::string& target_url, const std::string& description,
                               const std::string& context);

  // The id of the first comment on issue/PR `number` whose body contains `marker`, following
  // every page (per_page=100); nullopt when there is none.
  Expected<std::optional<int64_t>> find_comment(const std::string& repo, int number, const std::string& marker);
  // POST /repos/{owner}/{repo}/issues/{number}/comments; returns the new comment's id.
  Expected<int64_t> create_comment(const std::string& repo, int number, const std::string& body);
  // PATCH /repos/{owner}/{repo}/issues/comments/{id}. not_found when the comment is gone.
  Expected<void> update_comment(const std::string& repo, int64_t id, const std::string& body);

private:
  // Errors by status: unauthorized (401), not_found (404), transient (429, 5xx, a 403 rate
  // limit, network), permanent (other 4xx); the message names the method, the path and
  // GitHub's "message".
  struct Reply {
    long status = 0;
    std::string body;
    std::string link; // the Link header
  };
  Expected<Reply> call(const std::string& method, const std::string& path, const std::string& body);
  std::string redact(std::string text) const;

  std::string m_api_url;
  std::string m_token;
};

} // namespace idp::sources
