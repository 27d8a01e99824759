#pragma once
// A repository the server watches (from the server config): which branches get
// environments, how changes arrive (webhooks, polling), how GitHub is told.

#include <string>
#include <vector>

#include "util/time.hpp"

namespace idp::sources {

struct WatchedRepo {
  std::string url;                          // clone URL or local path, without credentials
  std::string url_with_credentials;         // the configured URL when it carried some ("" = none): for git only
  std::string github_repo;                  // "owner/name" for webhooks and notifications ("" = derive from url)
  std::vector<std::string> include = {"*"}; // branch globs that get environments
  std::vector<std::string> exclude;         // branch globs that never do (default: the default branch)
  std::string default_branch = "main";      // excluded unless listed in include explicitly
  std::string webhook_secret;               // resolved value ("" = webhooks refused for this repo)
  std::string github_token;                 // resolved value ("" = no notifications)
  std::string default_template;             // "" = the repo's config decides
  // Pull requests from forks (issue 15): "ignore" (never deployed) or "approve" (deployed
  // under the untrusted profile once a developer approves their head commit).
  std::string forks = "ignore";
  std::vector<std::string> fork_approvers; // GitHub logins whose "/idp approve" comment approves
  bool poll = false;
  util::Millis poll_interval = 30'000;

  // True when `branch` should have an environment.
  bool tracks(const std::string& branch) const;
};

} // namespace idp::sources
