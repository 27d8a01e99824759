#pragma once
// In-process git (libgit2) for what a deploy does on its path: read a mirror's refs and
// objects, check a commit out, and fetch one ref from a repository on this machine. Each
// of these as a git run costs a process start or three (git fetch alone spawns
// upload-pack and rev-list); in process they take about a millisecond. Network remotes
// (https, ssh, git) are fetched by git itself (util/git.hpp), with its credential handling.
// Internal to util/git.cpp. Every call opens its own repository handle: thread-safe.

#include <optional>
#include <string>
#include <string_view>

#include "util/expected.hpp"

namespace idp::util::libgit {

// True for a repository on this machine: an absolute path or a file:// URL.
bool is_local_url(std::string_view url);

// The commit `ref` ("refs/heads/main") peels to in the repository at `repo`; nullopt when
// there is no such ref.
Expected<std::optional<std::string>> resolve_ref(const std::string& repo, const std::string& ref);

// True when `commit` (hex, possibly abbreviated) names a commit present in `repo`.
Expected<bool> has_commit(const std::string& repo, const std::string& commit);

// The bytes of the blob at `path` in `commit`, as stored (no filters); nullopt when no blob
// is at that path. not_found when the commit is not in `repo`.
Expected<std::optional<std::string>> read_blob(const std::string& repo, const std::string& commit,
                                               const std::string& path);

// Writes the files of `commit` into `dest` (an existing, empty directory). No index, no
// .git: a plain copy of the tree. not_found when the commit is not in `repo`.
Expected<void> checkout(const std::string& repo, const std::string& commit, const std::string& dest);

// Removes `ref` from `repo`; ok when it is not there.
Expected<void> delete_ref(const std::string& repo, const std::string& ref);

// Fetches `ref` of the local repository `url` into the same ref of `repo` (forced, no tags,
// no FETCH_HEAD) and returns the commit it peels to; nullopt when `url` has no such ref.
Expected<std::optional<std::string>> fetch_ref(const std::string& repo, const std::string& url, const std::string& ref);

} // namespace idp::util::libgit
