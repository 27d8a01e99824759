#include "drivers/local/isolation.hpp"

#include <cerrno>
#include <cstring>
#include <ftw.h>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/local/search_access.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

namespace {

// nftw has no user pointer: the walk's target and first failure live here, one walk at a
// time (guarded by k_walk_mutex).
struct ChownWalk {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string failed;
  int error = 0;
};
ChownWalk* g_walk = nullptr; // only set while k_walk_mutex is held
std::mutex k_walk_mutex;

int chown_one(const char* path, const struct stat*, int, struct FTW*) {
  if (::lchown(path, g_walk->uid, g_walk->gid) != 0) {
    g_walk->failed = path;
    g_walk->error = errno;
    return 1; // stops the walk
  }
  return 0;
}

} // namespace

Expected<void> chown_tree(const std::string& dir, uid_t uid, gid_t gid) {
  std::lock_guard<std::mutex> g(k_walk_mutex);
  ChownWalk walk{uid, gid, "", 0};
  g_walk = &walk;
  int r = ::nftw(dir.c_str(), chown_one, 32, FTW_PHYS);
  int e = errno;
  g_walk = nullptr;
  if (r != 0) {
    std::string path = walk.failed.empty() ? dir : walk.failed;
    return make_error(ErrorCode::io_error, "cannot give " + util::quote(path) + " to uid " + std::to_string(uid) +
                                               ": " + std::strerror(walk.error != 0 ? walk.error : e));
  }
  return {};
}

std::vector<std::string> revoke_search_path(const std::vector<std::string>& dirs, uid_t uid) {
  std::vector<std::string> warnings;
  for (const auto& d : dirs) {
    if (auto r = revoke_search_permission(d, uid); !r) {
      warnings.push_back(r.error().message);
    }
  }
  return warnings;
}

Expected<std::vector<std::string>> grant_search_path(const std::vector<std::string>& dirs, uid_t uid) {
  std::vector<std::string> notes;
  for (const auto& d : dirs) {
    IDP_TRY_ASSIGN(std::string note, grant_search_permission(d, uid));
    if (!note.empty()) {
      notes.push_back(std::move(note));
    }
  }
  return notes;
}

std::vector<std::string> ancestors_closed_to_others(const std::string& path) {
  std::vector<std::string> out;
  std::string prefix;
  auto parts = util::split(path, '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i].empty()) {
      if (i == 0) {
        prefix = "/";
      }
      continue;
    }
    prefix = prefix == "/" ? "/" + parts[i] : prefix + "/" + parts[i];
    struct stat st {};
    if (::stat(prefix.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      out.push_back(prefix);
    }
  }
  struct stat root {};
  if (::stat("/", &root) == 0 && (root.st_mode & S_IXOTH) == 0) {
    out.insert(out.begin(), "/");
  }
  return out;
}

Expected<void> ensure_private_dir(const std::string& dir, uid_t uid, gid_t gid) {
  IDP_TRY(util::ensure_dir(dir, 0700));
  if (::chown(dir.c_str(), uid, gid) != 0 || ::chmod(dir.c_str(), 0700) != 0) {
    return make_error(ErrorCode::io_error, "cannot give " + util::quote(dir) + " to uid " + std::to_string(uid) + ": " +
                                               std::strerror(errno));
  }
  return {};
}

} // namespace idp::drivers::local
