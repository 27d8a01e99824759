#pragma once
// Which watched repository a GitHub payload or an environment belongs to. No I/O except
// resolving local paths (RepoResolver::canonical_repo).

#include <string>
#include <vector>

#include "sources/watched_repo.hpp"
#include "sources/webhook_payload.hpp"

namespace idp::sources {

// "owner/name" of `repo` on GitHub: github_repo when set, else derived from an
// https://host/owner/name(.git), ssh://git@host/owner/name or git@host:owner/name(.git) url;
// "" for local paths and anything else.
std::string github_repo_of(const WatchedRepo& repo);

// True when a payload's `repository` object names `repo`: full_name equals github_repo_of
// (case-insensitive), or one of clone_url / html_url / ssh_url / git_url / url / svn_url is
// the repo's url (normalised: case of the host, trailing "/" and ".git" ignored; local paths
// compared as absolute paths).
bool payload_names_repo(const PayloadRepository& repository, const WatchedRepo& repo);

// The first repo in `repos` the payload's `repository` names; nullptr when none does.
const WatchedRepo* find_watched_repo(const std::vector<WatchedRepo>& repos, const PayloadRepository& repository);

// The first repo whose url is `env_repo` (an Environment::repo, stored canonical); nullptr when none.
const WatchedRepo* find_repo_by_url(const std::vector<WatchedRepo>& repos, const std::string& env_repo);

} // namespace idp::sources
