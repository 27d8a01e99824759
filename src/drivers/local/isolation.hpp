#pragma once
// File-system side of running an environment as its own uid (docs/security.md
// "Isolation"): what the uid may reach inside the 0700 home, and nothing more.

#include <string>
#include <sys/types.h>
#include <vector>

#include "util/expected.hpp"

namespace idp::drivers::local {

// lchown of `dir` and everything below it (symlinks are not followed). io_error naming
// the first path that failed.
Expected<void> chown_tree(const std::string& dir, uid_t uid, gid_t gid);

// Search (x, no listing, no reading) for `uid` on each of `dirs` (search_access.hpp:
// an ACL entry, else o+x). Returns the fallback notes (empty when ACLs did it).
Expected<std::vector<std::string>> grant_search_path(const std::vector<std::string>& dirs, uid_t uid);
// Removes those entries again; failures are returned as warnings, the walk goes on.
std::vector<std::string> revoke_search_path(const std::vector<std::string>& dirs, uid_t uid);

// The directories above `path` ("/" down to its parent) that other users may not search
// (no o+x): a home under /root or a 0700 temporary directory. An environment's uid needs
// search on them to reach its own directories.
std::vector<std::string> ancestors_closed_to_others(const std::string& path);

// `dir` exists, is owned by uid:gid and is 0700 (the environment's private HOME).
Expected<void> ensure_private_dir(const std::string& dir, uid_t uid, gid_t gid);

} // namespace idp::drivers::local
