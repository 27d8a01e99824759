#include "util/fs.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace idp::util {

static std::string quoted_path(const std::string& p) { return "\"" + p + "\""; }

namespace {
Unexpected errno_error(std::string_view what, const std::string& path) {
  return make_error(ErrorCode::io_error, std::string(what) + " " + quoted_path(path) + ": " + std::strerror(errno));
}
} // namespace

Expected<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return make_error(ErrorCode::not_found, "no such file " + quoted_path(path));
    }
    return errno_error("cannot open", path);
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      ::close(fd);
      return errno_error("cannot read", path);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

static Expected<void> write_all(int fd, std::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno_error("cannot write", path);
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

namespace {
// fsync, retried on EINTR. A failed fsync means the data may not be on disk: the caller
// must not report the write as done.
bool fsync_fd(int fd) {
  while (::fsync(fd) != 0) {
    if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

} // namespace

std::string parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

Expected<void> write_file_atomic(const std::string& path, std::string_view data, int mode) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return errno_error("cannot create", tmp);
  }
  auto w = write_all(fd, data, tmp);
  if (w && !fsync_fd(fd)) {
    w = errno_error("cannot sync", tmp);
  }
  // close can report a deferred write error (NFS) too.
  if (::close(fd) != 0 && w && errno != EINTR) {
    w = errno_error("cannot close", tmp);
  }
  if (!w) {
    ::unlink(tmp.c_str());
    return w;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto e = errno_error("cannot rename to", path);
    ::unlink(tmp.c_str());
    return e;
  }
  // The rename is only durable once the directory entry is: without this, a power loss
  // can bring back the old file (or none) after we reported the new one as written.
  std::string dir = parent_dir(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return errno_error("cannot open directory", dir);
  }
  bool synced = fsync_fd(dfd);
  int sync_errno = errno;
  ::close(dfd);
  if (!synced) {
    errno = sync_errno;
    return errno_error("cannot sync directory", dir);
  }
  return {};
}

Expected<void> append_file(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno_error("cannot open", path);
  }
  auto w = write_all(fd, data, path);
  ::close(fd);
  return w;
}

// The process umask, read without changing it (umask() would, racing other threads):
// "Umask:" in /proc/self/status (Linux 4.7+); 022 when it cannot be read.
static mode_t current_umask() {
  auto status = read_file("/proc/self/status");
  if (status) {
    auto pos = status->find("\nUmask:");
    if (pos != std::string::npos) {
      return static_cast<mode_t>(std::strtoul(status->c_str() + pos + 7, nullptr, 8));
    }
  }
  return 022;
}

Expected<void> ensure_dir(const std::string& path, int mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec && !is_directory(path)) {
    return make_error(ErrorCode::io_error, "cannot create directory " + quoted_path(path) + ": " + ec.message());
  }
  // The umask applies as it would to mkdir: the daemon's 077 keeps every directory private.
  auto want = static_cast<mode_t>(mode) & ~current_umask();
  // With an access ACL, chmod's group bits set its mask: keep the mask, or every named
  // entry (an environment's uid, PostgreSQL's) loses its access until granted again.
  if (::getxattr(path.c_str(), "system.posix_acl_access", nullptr, 0) > 0) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      want = (want & ~static_cast<mode_t>(070)) | (st.st_mode & 070);
    }
  }
  ::chmod(path.c_str(), want);
  return {};
}

Expected<void> remove_all(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    return make_error(ErrorCode::io_error, "cannot remove " + quoted_path(path) + ": " + ec.message());
  }
  return {};
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return -1;
  }
  return st.st_size;
}

int64_t file_mtime_ms(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return -1;
  }
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

std::string path_join(std::string_view a, std::string_view b) {
  if (a.empty()) {
    return std::string(b);
  }
  if (!b.empty() && b.front() == '/') {
    return std::string(b);
  }
  std::string out(a);
  if (out.back() != '/') {
    out += '/';
  }
  out += b;
  return out;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  if (ec) {
    return path;
  }
  return p.lexically_normal().string();
}

Expected<std::string> make_temp_dir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + std::string(prefix) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return errno_error("cannot create temporary directory", tmpl);
  }
  return tmpl;
}

std::string default_idp_home() {
  if (const char* h = std::getenv("IDP_HOME"); h && *h) {
    return h;
  }
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/idp";
  }
  // As root, like a packaged service: /var/lib/idp. (Under /root, which is 0700, the
  // unprivileged user the managed PostgreSQL runs as could not reach its data directory.)
  if (::geteuid() == 0) {
    return "/var/lib/idp";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/share/idp";
}

FileLock::~FileLock() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

FileLock::FileLock(FileLock&& other) noexcept : m_fd(other.m_fd) { other.m_fd = -1; }

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
    m_fd = other.m_fd;
    other.m_fd = -1;
  }
  return *this;
}

static Expected<FileLock> lock_impl(const std::string& path, bool wait, FileLock (*make)(int)) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return errno_error("cannot open lock file", path);
  }
  while (::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) {
      continue;
    }
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return make_error(ErrorCode::conflict, "lock " + quoted_path(path) + " is held by another process");
    }
    errno = err;
    return errno_error("cannot lock", path);
  }
  return make(fd);
}

Expected<FileLock> FileLock::try_acquire(const std::string& path) {
  return lock_impl(path, false, [](int fd) { return FileLock(fd); });
}

Expected<FileLock> FileLock::acquire(const std::string& path) {
  return lock_impl(path, true, [](int fd) { return FileLock(fd); });
}

} // namespace idp::util
