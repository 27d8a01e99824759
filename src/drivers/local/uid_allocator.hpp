#pragma once
// Unprivileged uids for environments (isolation of repository code, docs/security.md).
//
// Each environment of a root daemon runs its build, app, jobs and exec sessions as a uid
// of its own (gid = uid) taken from a configured range. No passwd entry is needed; uids
// that do have one (a real user or service) are skipped. The table env → uid lives in one
// file (<home>/uids.json, written atomically before acquire() returns), so a restarted
// daemon gives every environment the uid its files already belong to. Several homes on
// one machine (several daemons, parallel tests) share the uid space: each uid in use is
// also claimed in a machine-wide directory (/run/idp-uids/<uid>, naming the table that
// owns it), and a uid claimed by another table is skipped. Thread-safe.

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <sys/types.h>

#include "util/expected.hpp"

namespace idp::drivers::local {

struct UidRange {
  uid_t first = 200000;
  uid_t last = 265535;

  // "FIRST-LAST" with 1000 <= FIRST <= LAST < 2^31-1; invalid_config saying what was expected.
  static Expected<UidRange> parse(const std::string& text);
  std::string to_string() const;
};

class UidAllocator {
public:
  // `file`: where the table is kept (read lazily, on first use). `claims_dir`: the
  // machine-wide claims ("" = none: only this table counts).
  UidAllocator(std::string file, UidRange range, std::string claims_dir = "");

  // The environment's uid: the one recorded for it, else the lowest free uid of the range
  // (recorded before returning). conflict naming the range when every uid is taken (an
  // environment's uid recorded outside a since narrowed range is still returned);
  // io_error when the table cannot be read or written.
  Expected<uid_t> acquire(const std::string& env);
  // The uid recorded for `env`, if any.
  Expected<std::optional<uid_t>> find(const std::string& env);
  // Frees the environment's uid (ok when it has none).
  Expected<void> release(const std::string& env);
  // Frees the uids of every environment not in `live`.
  Expected<void> retain(const std::set<std::string>& live);

private:
  Expected<void> load_locked();
  Expected<void> save_locked() const;
  // True when `uid` is now claimed by this table (it was free, or already ours).
  bool claim(uid_t uid) const;
  void unclaim(uid_t uid) const;

  std::string m_file;
  std::string m_claims_dir;
  UidRange m_range;
  std::mutex m_mutex;
  bool m_loaded = false;
  std::map<std::string, uid_t> m_uids;
};

} // namespace idp::drivers::local
