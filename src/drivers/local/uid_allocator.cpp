#include "drivers/local/uid_allocator.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

namespace {

// Below this are system and login users; 2^31-1 and up are not valid everywhere.
constexpr int64_t k_min_uid = 1000;
constexpr int64_t k_max_uid = 2147483646;

bool has_passwd_entry(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[4096];
  return ::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr;
}

} // namespace

Expected<UidRange> UidRange::parse(const std::string& text) {
  auto bad = [&] {
    return make_error(ErrorCode::invalid_config, "expected a uid range like \"200000-265535\" (first-last, from " +
                                                     std::to_string(k_min_uid) + " up to " + std::to_string(k_max_uid) +
                                                     "), got " + util::quote(text));
  };
  auto dash = text.find('-');
  if (dash == std::string::npos) {
    return bad();
  }
  auto first = util::parse_int<int64_t>(text.substr(0, dash), k_min_uid, k_max_uid);
  auto last = util::parse_int<int64_t>(text.substr(dash + 1), k_min_uid, k_max_uid);
  if (!first || !last || *first > *last) {
    return bad();
  }
  return UidRange{static_cast<uid_t>(*first), static_cast<uid_t>(*last)};
}

std::string UidRange::to_string() const { return std::to_string(first) + "-" + std::to_string(last); }

UidAllocator::UidAllocator(std::string file, UidRange range, std::string claims_dir)
    : m_file(std::move(file)), m_claims_dir(std::move(claims_dir)), m_range(range) {}

bool UidAllocator::claim(uid_t uid) const {
  if (m_claims_dir.empty()) {
    return true;
  }
  if (!util::ensure_dir(m_claims_dir, 0700)) {
    return true; // no claims possible here: this table alone decides
  }
  std::string path = util::path_join(m_claims_dir, std::to_string(uid));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ssize_t w = ::write(fd, m_file.data(), m_file.size());
    ::close(fd);
    return w == static_cast<ssize_t>(m_file.size());
  }
  // Someone's claim: ours, a live home's, or a gone home's (deleted without destroying its
  // environments), which is taken over. Under the file's lock: two homes taking over the
  // same stale claim at once must not both believe they won it.
  fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return false; // unclaimed meanwhile: the caller tries the next uid (or again later)
  }
  bool ours = false;
  if (::flock(fd, LOCK_EX) == 0) {
    std::string owner;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(owner.size()))) > 0) {
      owner.append(buf, static_cast<size_t>(n));
    }
    ours = owner == m_file;
    if (!ours && !owner.empty() && !util::is_directory(owner.substr(0, owner.rfind('/')))) {
      ours = ::ftruncate(fd, 0) == 0 &&
             ::pwrite(fd, m_file.data(), m_file.size(), 0) == static_cast<ssize_t>(m_file.size());
    }
    ::flock(fd, LOCK_UN);
  }
  ::close(fd);
  return ours;
}

void UidAllocator::unclaim(uid_t uid) const {
  if (m_claims_dir.empty()) {
    return;
  }
  std::string path = util::path_join(m_claims_dir, std::to_string(uid));
  auto owner = util::read_file(path);
  if (owner && *owner == m_file) {
    ::unlink(path.c_str());
  }
}

Expected<void> UidAllocator::load_locked() {
  if (m_loaded) {
    return {};
  }
  if (util::path_exists(m_file)) {
    IDP_TRY_ASSIGN(std::string text, util::read_file(m_file));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return make_error(ErrorCode::io_error, util::quote(m_file) + " is not a JSON object of environment uids");
    }
    for (const auto& [env, uid] : j.items()) {
      if (!uid.is_number_unsigned() || uid.get<uint64_t>() < static_cast<uint64_t>(k_min_uid)) {
        return make_error(ErrorCode::io_error, util::quote(m_file) + ": environment " + util::quote(env) +
                                                   " has an invalid uid " + util::json_dump(uid));
      }
      m_uids[env] = static_cast<uid_t>(uid.get<uint64_t>());
    }
  }
  m_loaded = true;
  return {};
}

Expected<void> UidAllocator::save_locked() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [env, uid] : m_uids) {
    j[env] = uid;
  }
  return util::write_file_atomic(m_file, util::json_dump(j) + "\n", 0600);
}

Expected<uid_t> UidAllocator::acquire(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mutex);
  IDP_TRY(load_locked());
  if (auto it = m_uids.find(env); it != m_uids.end()) {
    // Claimed again after a reboot emptied /run; a claim by another home meanwhile is a
    // clash this table cannot resolve (its files belong to that uid): keep it, say so.
    if (!claim(it->second)) {
      return make_error(ErrorCode::conflict, "uid " + std::to_string(it->second) + " of environment " +
                                                 util::quote(env) + " is claimed by another idp home (" +
                                                 util::quote(m_claims_dir) + "); give the homes disjoint uid_ranges");
    }
    return it->second;
  }
  std::set<uid_t> used;
  for (const auto& [name, uid] : m_uids) {
    used.insert(uid);
  }
  for (uint64_t u = m_range.first; u <= m_range.last; ++u) {
    auto uid = static_cast<uid_t>(u);
    if (used.count(uid) || has_passwd_entry(uid) || !claim(uid)) {
      continue;
    }
    m_uids[env] = uid;
    if (auto r = save_locked(); !r) {
      m_uids.erase(env);
      unclaim(uid);
      return Unexpected(r.error().with_context("cannot record the uid of environment " + util::quote(env)));
    }
    return uid;
  }
  return make_error(ErrorCode::conflict, "no free uid for environment " + util::quote(env) + ": all " +
                                             std::to_string(uint64_t{m_range.last} - m_range.first + 1) +
                                             " uids of the range " + m_range.to_string() +
                                             " are in use (environments or users); widen the local driver's "
                                             "uid_range or destroy environments");
}

Expected<std::optional<uid_t>> UidAllocator::find(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mutex);
  IDP_TRY(load_locked());
  if (auto it = m_uids.find(env); it != m_uids.end()) {
    return std::optional<uid_t>(it->second);
  }
  return std::optional<uid_t>();
}

Expected<void> UidAllocator::release(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mutex);
  IDP_TRY(load_locked());
  auto it = m_uids.find(env);
  if (it == m_uids.end()) {
    return {};
  }
  uid_t uid = it->second;
  m_uids.erase(it);
  IDP_TRY(save_locked());
  unclaim(uid);
  return {};
}

Expected<void> UidAllocator::retain(const std::set<std::string>& live) {
  std::lock_guard<std::mutex> g(m_mutex);
  IDP_TRY(load_locked());
  bool changed = false;
  for (auto it = m_uids.begin(); it != m_uids.end();) {
    if (!live.count(it->first)) {
      unclaim(it->second);
      it = m_uids.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  return changed ? save_locked() : Expected<void>{};
}

} // namespace idp::drivers::local
