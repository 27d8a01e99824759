#pragma once
// Letting the unprivileged PostgreSQL user reach its cluster inside the home.
//
// The home is 0700 (the daemon recreates it so on every start), and PostgreSQL, which
// runs as its own user, must walk through it to <home>/postgres. We grant exactly that:
// a POSIX ACL entry "user:<uid>:--x" on the home (search, no listing, no reading), added
// to whatever ACL the directory has and re-applied at every start. Where the filesystem
// has no ACLs we fall back to o+x (search for everyone, still no listing) and say so.

#include <string>
#include <sys/types.h>

#include "util/expected.hpp"

namespace idp::drivers::local {

// Adds search permission on `dir` for `uid` (ACL, else o+x). Thread-safe (updates of
// ACLs by this process are serialised). Returns "" when done through
// an ACL, else a note describing the fallback. io_error when neither works.
Expected<std::string> grant_search_permission(const std::string& dir, uid_t uid);

// Removes the ACL entry of `uid` from `dir` (what grant_search_permission added); ok when
// there is none or the filesystem has no ACLs. io_error when the ACL cannot be written.
Expected<void> revoke_search_permission(const std::string& dir, uid_t uid);

// Checks that `uid`/`gid` can reach `path` (runs `test -x` as that user). On failure,
// permanent naming the first directory on the way that it cannot search and how to fix it.
Expected<void> check_reachable_by(const std::string& path, uid_t uid, gid_t gid, const std::string& user_name);

// The ACL "system.posix_acl_access" value with `uid` given search permission, from the
// current value (empty = none, then built from `mode`). Exposed for tests.
std::string acl_with_search_entry(const std::string& current, mode_t mode, uid_t uid);
// `current` without the entry of `uid` (mask recomputed); `current` itself when it has none.
std::string acl_without_entry(const std::string& current, uid_t uid);

} // namespace idp::drivers::local
