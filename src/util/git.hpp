#pragma once
// git through argv (never a shell): remote heads, a bare mirror cache per repository,
// files at a commit, and checkouts of an exact commit.

#include <map>
#include <optional>
#include <string>

#include "util/expected.hpp"

namespace idp::util {

// Environment every git call runs with: no prompts, only safe transports.
std::map<std::string, std::string> git_safe_env();

// `url` without the credentials it may carry ("https://user:token@host/x" →
// "https://***@host/x"), for messages and logs.
std::string redact_url(std::string_view url);

// Credentials of repository URLs. A URL given as "https://user:token@host/x" is kept as
// "https://host/x" everywhere (store, events, logs, API, mirror config); the credential
// stays in memory (and in the credential file, 0600, when one is set) and reaches git only
// through GIT_ASKPASS (this binary, in askpass mode) and its environment, never argv.

// `url` without its user-info ("https://user:token@host/x" → "https://host/x"); other URLs
// (paths, scp-like "git@host:x") unchanged.
std::string strip_url_credentials(std::string_view url);
// True when `url` carries user-info with a secret ("user:password@" or "token@").
bool url_has_credentials(std::string_view url);
// Remembers the credential of `url` (if any) for git calls on its stripped form, and
// returns the stripped form. Persisted to the credential file when one is set.
Expected<std::string> remember_url_credentials(std::string_view url);
// Loads (and from then on writes) remembered credentials at `path` (JSON, mode 0600).
Expected<void> use_git_credential_file(const std::string& path);
// The askpass program: when the environment has IDP_GIT_ASKPASS=1, `idp` answers git's
// "Username for …" / "Password for …" prompt (argv[1]) from IDP_GIT_USERNAME /
// IDP_GIT_PASSWORD and returns 0; otherwise returns -1 (not in askpass mode).
int git_askpass_main(int argc, char** argv);

// True when `name` is a valid git branch name (git check-ref-format --branch rules).
bool is_valid_git_branch(std::string_view name);

// branch name → commit sha of every refs/heads/* on the remote.
Expected<std::map<std::string, std::string>> git_ls_remote_heads(const std::string& url, int64_t timeout_ms = 60000);

// A bare mirror of one remote under `cache_dir`. Mutating calls are serialised across
// threads and processes by a lock file beside the mirror. Thread-safe.
class GitMirror {
public:
  GitMirror(std::string cache_dir, std::string url);

  const std::string& path() const { return m_path; }
  const std::string& url() const { return m_url; }

  // Clones on first use, then fetches (with prune). Afterwards every remote head is local.
  Expected<void> fetch(int64_t timeout_ms = 120000);
  // Fetches refs/heads/<branch> alone (clones first when there is no mirror yet) and returns
  // its commit: what a create or a push of one branch needs, without updating every other
  // head (a full fetch of a remote with 200 heads takes twice as long). Leaves git's
  // automatic maintenance to fetch() and to maintain(), off the deploy's path. not_found
  // when the remote has no such branch.
  Expected<std::string> fetch_branch(const std::string& branch, int64_t timeout_ms = 120000);
  // The commit refs/heads/<branch> points at in the mirror (after fetch).
  Expected<std::string> resolve_branch(const std::string& branch);
  // git's automatic housekeeping (packs loose objects when there are many), under the
  // mirror's lock; nothing to do costs one short git run.
  Expected<void> maintain(int64_t timeout_ms = 600000);
  // Fetches refs/pull/<number>/head, the head GitHub keeps in the base repository for every
  // pull request (a fork's too), into the mirror under the same name, and returns its
  // commit. The ref stays (fetch's prune covers refs/heads only), so that commit stays in
  // the mirror for later checkouts. not_found when the remote has no such ref.
  Expected<std::string> fetch_pull_head(int number, int64_t timeout_ms = 120000);
  // Fetches when `commit` is not present yet.
  Expected<void> ensure_commit(const std::string& commit);
  // Contents of `path` at `commit`; nullopt when the file does not exist there.
  Expected<std::optional<std::string>> read_file(const std::string& commit, const std::string& path);
  // The files under `dir` at `commit` ("" or "." = the whole tree) as a gzip'd tar, at their
  // paths in the repository (dir/…). not_found when `dir` is not a directory there;
  // too_large when the archive would exceed `max_bytes`. The same commit gives the same bytes.
  Expected<std::string> archive(const std::string& commit, const std::string& dir, size_t max_bytes);
  // The files of `commit` at `dest` (replaced if it exists). A plain directory, not a git
  // worktree: nothing is registered in the mirror, so a checkout costs the same beside
  // 1,000 others (git worktree add/remove/prune read every registered worktree, under the
  // mirror's lock), and the checkout carries no `.git` link into the mirror. Checkouts of
  // one mirror run in parallel.
  Expected<void> checkout(const std::string& commit, const std::string& dest);
  // Removes the checkout at `dest`; ok if already gone. A git worktree there (made by an
  // earlier version) is unregistered from the mirror too.
  Expected<void> remove_checkout(const std::string& dest);

private:
  std::string m_url;
  std::string m_path;
  std::string m_lock;
};

} // namespace idp::util
