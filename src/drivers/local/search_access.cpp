#include "drivers/local/search_access.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <vector>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {

namespace {

// linux/posix_acl_xattr.h
constexpr uint32_t k_acl_version = 2;
constexpr uint16_t k_user_obj = 0x01, k_user = 0x02, k_group_obj = 0x04, k_mask = 0x10, k_other = 0x20;
constexpr uint32_t k_undefined_id = 0xFFFFFFFFu;
constexpr const char* k_acl_xattr = "system.posix_acl_access";

// An ACL update is read-modify-write: two at once on one directory (two environments'
// uids, PostgreSQL's user) would lose an entry. Every update in this process takes this.
std::mutex acl_mutex;

struct AclEntry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

uint32_t read_u32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  }
  return v;
}
uint16_t read_u16(const std::string& s, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(s[at]) | (static_cast<unsigned char>(s[at + 1]) << 8));
}
void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}
void put_u16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>((v >> 8) & 0xFF));
}

// The xattr value (system.posix_acl_access) of `entries`.
std::string encode_acl(const std::vector<AclEntry>& entries) {
  std::string out;
  put_u32(out, k_acl_version);
  for (const auto& e : entries) {
    put_u16(out, e.tag);
    put_u16(out, e.perm);
    put_u32(out, e.id);
  }
  return out;
}

// How many entries an xattr value holds (a 4-byte header, then 8 bytes an entry).
size_t acl_entry_count(const std::string& value) { return value.size() < 4 ? 0 : (value.size() - 4) / 8; }

} // namespace

std::string acl_with_search_entry(const std::string& current, mode_t mode, uid_t uid) {
  std::vector<AclEntry> entries;
  if (current.size() >= 4 && read_u32(current, 0) == k_acl_version && (current.size() - 4) % 8 == 0) {
    for (size_t at = 4; at + 8 <= current.size(); at += 8) {
      entries.push_back({read_u16(current, at), read_u16(current, at + 2), read_u32(current, at + 4)});
    }
  } else {
    entries = {{k_user_obj, static_cast<uint16_t>((mode >> 6) & 7), k_undefined_id},
               {k_group_obj, static_cast<uint16_t>((mode >> 3) & 7), k_undefined_id},
               {k_other, static_cast<uint16_t>(mode & 7), k_undefined_id}};
  }
  // The mask bounds every group-class entry. Keep their effective permissions as they are
  // (perm & old mask), then widen the mask by exactly the search bit our entry needs.
  auto mask_it = std::find_if(entries.begin(), entries.end(), [](const AclEntry& e) { return e.tag == k_mask; });
  uint16_t old_mask = 7;
  if (mask_it != entries.end()) {
    old_mask = mask_it->perm;
  }
  bool found = false;
  for (auto& e : entries) {
    if (e.tag == k_user && e.id == uid) {
      e.perm = static_cast<uint16_t>((e.perm & old_mask) | 1);
      found = true;
    } else if (e.tag != k_user_obj && e.tag != k_other && e.tag != k_mask) {
      e.perm = static_cast<uint16_t>(e.perm & old_mask);
    }
  }
  if (!found) {
    entries.push_back({k_user, 1, static_cast<uint32_t>(uid)});
  }
  uint16_t mask = 0;
  for (const auto& e : entries) {
    if (e.tag != k_user_obj && e.tag != k_other && e.tag != k_mask) {
      mask = static_cast<uint16_t>(mask | e.perm);
    }
  }
  entries.erase(std::remove_if(entries.begin(), entries.end(), [](const AclEntry& e) { return e.tag == k_mask; }),
                entries.end());
  entries.push_back({k_mask, mask, k_undefined_id});
  // The kernel wants entries ordered by tag, then by id.
  std::sort(entries.begin(), entries.end(),
            [](const AclEntry& a, const AclEntry& b) { return a.tag != b.tag ? a.tag < b.tag : a.id < b.id; });
  return encode_acl(entries);
}

std::string acl_without_entry(const std::string& current, uid_t uid) {
  if (current.size() < 4 || read_u32(current, 0) != k_acl_version || (current.size() - 4) % 8 != 0) {
    return current;
  }
  std::vector<AclEntry> entries;
  bool found = false;
  for (size_t at = 4; at + 8 <= current.size(); at += 8) {
    AclEntry e{read_u16(current, at), read_u16(current, at + 2), read_u32(current, at + 4)};
    if (e.tag == k_user && e.id == uid) {
      found = true;
    } else {
      entries.push_back(e);
    }
  }
  if (!found) {
    return current;
  }
  // The mask shrinks back to what the remaining group-class entries had (never widens).
  auto mask_it = std::find_if(entries.begin(), entries.end(), [](const AclEntry& e) { return e.tag == k_mask; });
  if (mask_it != entries.end()) {
    uint16_t mask = 0;
    for (const auto& e : entries) {
      if (e.tag != k_user_obj && e.tag != k_other && e.tag != k_mask) {
        mask = static_cast<uint16_t>(mask | e.perm);
      }
    }
    mask_it->perm = static_cast<uint16_t>(mask & mask_it->perm);
  }
  return encode_acl(entries);
}

Expected<void> revoke_search_permission(const std::string& dir, uid_t uid) {
  std::lock_guard<std::mutex> g(acl_mutex);
  ssize_t n = ::getxattr(dir.c_str(), k_acl_xattr, nullptr, 0);
  if (n <= 0) {
    return {};
  }
  std::string current(static_cast<size_t>(n), '\0');
  n = ::getxattr(dir.c_str(), k_acl_xattr, current.data(), current.size());
  current.resize(n > 0 ? static_cast<size_t>(n) : 0);
  std::string acl = acl_without_entry(current, uid);
  if (acl == current) {
    return {};
  }
  if (::setxattr(dir.c_str(), k_acl_xattr, acl.data(), acl.size(), 0) != 0) {
    return make_error(ErrorCode::io_error, "cannot set an ACL on " + util::quote(dir) + ": " + std::strerror(errno));
  }
  return {};
}

Expected<std::string> grant_search_permission(const std::string& dir, uid_t uid) {
  std::lock_guard<std::mutex> g(acl_mutex);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return make_error(ErrorCode::io_error, "cannot stat " + util::quote(dir) + ": " + std::strerror(errno));
  }
  if (st.st_uid == uid) {
    return std::string();
  }
  if ((st.st_mode & S_IXOTH) != 0) {
    return std::string(); // every user may search it already: an entry would add nothing
  }
  std::string current;
  ssize_t n = ::getxattr(dir.c_str(), k_acl_xattr, nullptr, 0);
  if (n > 0) {
    current.resize(static_cast<size_t>(n));
    n = ::getxattr(dir.c_str(), k_acl_xattr, current.data(), current.size());
    current.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  std::string acl = acl_with_search_entry(current, st.st_mode & 0777, uid);
  if (acl == current) {
    return std::string();
  }
  if (::setxattr(dir.c_str(), k_acl_xattr, acl.data(), acl.size(), 0) == 0) {
    return std::string();
  }
  int e = errno;
  // A full ACL: ext4 keeps a directory's ACL in one block, about 500 entries of 4 KiB (a
  // home with that many isolated environments).
  const bool full = e == ENOSPC || e == E2BIG;
  if (e != EOPNOTSUPP && e != ENOTSUP && !full) {
    return make_error(ErrorCode::io_error, "cannot set an ACL on " + util::quote(dir) + ": " + std::strerror(e));
  }
  if (::chmod(dir.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0) {
    return make_error(ErrorCode::io_error, "cannot make " + util::quote(dir) + " searchable: " + std::strerror(errno));
  }
  if (full) {
    return "the ACL of " + util::quote(dir) + " is full (" + std::to_string(acl_entry_count(current)) +
           " entries; the filesystem allows no more): made it searchable (o+x) for every user";
  }
  return "the filesystem of " + util::quote(dir) + " has no ACLs: made it searchable (o+x) for every user";
}

Expected<void> check_reachable_by(const std::string& path, uid_t uid, gid_t gid, const std::string& user_name) {
  auto can_search = [&](const std::string& p) {
    util::Command c;
    c.argv = {"test", "-x", p};
    c.clear_env = true;
    c.env = {{"PATH", "/usr/bin:/bin"}};
    util::RunOptions o;
    o.uid = static_cast<int>(uid);
    o.gid = static_cast<int>(gid);
    o.timeout_ms = 10000;
    auto r = util::run(c, o);
    return r && r->ok();
  };
  if (can_search(path)) {
    return {};
  }
  // Find the first directory on the way that stops it.
  std::string blocked = path;
  std::string prefix;
  for (const auto& part : util::split(path, '/')) {
    if (part.empty()) {
      continue;
    }
    prefix += "/" + part;
    if (!can_search(prefix)) {
      blocked = prefix;
      break;
    }
  }
  return make_error(ErrorCode::permanent, "PostgreSQL runs as user " + util::quote(user_name) +
                                              ", which cannot reach " + util::quote(path) + ": it may not search " +
                                              util::quote(blocked) + "; allow it (setfacl -m u:" + user_name + ":x " +
                                              blocked + ") or put the idp home where it can reach it");
}

} // namespace idp::drivers::local
