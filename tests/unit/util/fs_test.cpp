// util::write_file_atomic: the file and then its directory are synced, every failure is
// reported, and the old content stays until the new one is complete.
#include "util/fs.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cerrno>
#include <climits>
#include <csignal>
#include <dirent.h>
#include <netinet/in.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <vector>

#include "util/ports.hpp"
#include "util/strings.hpp"

using namespace idp;

namespace {

// fsync seen by this test: the path of each synced fd, and an optional failure to inject
// for paths containing `fail_containing` or equal to `fail_exact`. Only while `recording`,
// so nothing else is affected.
struct FsyncSpy {
  bool recording = false;
  std::vector<std::string> synced;
  std::string fail_containing;
  std::string fail_exact;
};
FsyncSpy g_spy;

std::string fd_path(int fd) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string real(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] != '.') {
        out.emplace_back(e->d_name);
      }
    }
    ::closedir(d);
  }
  return out;
}

struct TempDir {
  std::string path = real(*util::make_temp_dir("idp-fs-test"));
  ~TempDir() { (void)util::remove_all(path); } // best effort: a leftover temp dir harms nothing
};

// Records and optionally fails fsync for the duration of a test.
struct SpyScope {
  explicit SpyScope(std::string fail_containing = "", std::string fail_exact = "") {
    g_spy = FsyncSpy{true, {}, std::move(fail_containing), std::move(fail_exact)};
  }
  ~SpyScope() { g_spy.recording = false; }
};

} // namespace

// The test binary's fsync takes the place of libc's for the code under test (a link-time
// seam: util::write_file_atomic has no other way to show what it synced).
extern "C" int fsync(int fd) {
  if (g_spy.recording) {
    std::string p = fd_path(fd);
    g_spy.synced.push_back(p);
    if ((!g_spy.fail_containing.empty() && p.find(g_spy.fail_containing) != std::string::npos) ||
        (!g_spy.fail_exact.empty() && p == g_spy.fail_exact)) {
      errno = EIO;
      return -1;
    }
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

TEST(FsTest, WriteFileAtomicReplacesTheContent) {
  TempDir dir;
  std::string file = dir.path + "/state.json";
  ASSERT_TRUE(util::write_file_atomic(file, "old"));
  ASSERT_TRUE(util::write_file_atomic(file, "new content", 0600));
  EXPECT_EQ(*util::read_file(file), "new content");
  EXPECT_EQ(entries(dir.path), std::vector<std::string>{"state.json"}) << "a temporary file was left";
}

TEST(FsTest, WriteFileAtomicSyncsTheFileThenTheDirectory) {
  TempDir dir;
  std::string file = dir.path + "/state.json";
  SpyScope spy;
  ASSERT_TRUE(util::write_file_atomic(file, "data"));
  ASSERT_EQ(g_spy.synced.size(), 2u) << util::join(g_spy.synced, ", ");
  EXPECT_TRUE(util::starts_with(g_spy.synced[0], file + ".tmp.")) << g_spy.synced[0];
  EXPECT_EQ(g_spy.synced[1], dir.path);
}

TEST(FsTest, FailedFileSyncIsAnErrorAndKeepsTheOldContent) {
  TempDir dir;
  std::string file = dir.path + "/state.json";
  ASSERT_TRUE(util::write_file_atomic(file, "old"));
  SpyScope spy(".tmp.");
  auto w = util::write_file_atomic(file, "new");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::io_error);
  EXPECT_NE(w.error().message.find("cannot sync"), std::string::npos) << w.error().message;
  EXPECT_EQ(*util::read_file(file), "old");
  EXPECT_EQ(entries(dir.path), std::vector<std::string>{"state.json"}) << "a temporary file was left";
}

TEST(FsTest, FailedDirectorySyncIsAnError) {
  TempDir dir;
  std::string file = dir.path + "/state.json";
  SpyScope spy("", dir.path);
  auto w = util::write_file_atomic(file, "new");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::io_error);
  EXPECT_NE(w.error().message.find("cannot sync directory"), std::string::npos) << w.error().message;
}

TEST(FsTest, FailedWriteKeepsTheOldContent) {
  TempDir dir;
  std::string file = dir.path + "/state.json";
  ASSERT_TRUE(util::write_file_atomic(file, "old"));
  // A file size limit makes the write of the temporary file fail part way (EFBIG).
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = saved;
  small.rlim_cur = 16;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto w = util::write_file_atomic(file, std::string(1000, 'x'));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::io_error);
  EXPECT_EQ(*util::read_file(file), "old");
  EXPECT_EQ(entries(dir.path), std::vector<std::string>{"state.json"}) << "a temporary file was left";
}

TEST(FsTest, UnwritableDirectoryIsAnError) {
  // /proc refuses new files even to root.
  auto w = util::write_file_atomic("/proc/idp-fs-test", "x");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::io_error);
  EXPECT_NE(w.error().message.find("cannot create"), std::string::npos) << w.error().message;
  auto missing = util::write_file_atomic("/nonexistent/dir/file", "x");
  ASSERT_FALSE(missing);
}

namespace idp::util {
namespace {

// An app's port is free (a listen on it works) and never one the kernel hands out for a
// bind to port 0 or an outgoing connection.
// A socket bound to 127.0.0.1:port, not listening; -1 when the bind fails.
int bound_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(PortsTest, AnAppPortIsFreeAndOutsideTheEphemeralRange) {
  auto [lo, hi] = ephemeral_port_range();
  ASSERT_GT(lo, 0);
  ASSERT_GE(hi, lo);
  for (int i = 0; i < 50; ++i) {
    auto port = find_free_app_port();
    ASSERT_TRUE(port.has_value()) << port.error().message;
    EXPECT_TRUE(*port < lo || *port > hi) << *port << " is in " << lo << "-" << hi;
    int fd = bound_loopback(*port);
    EXPECT_GE(fd, 0) << *port;
    EXPECT_EQ(::listen(fd, 1), 0);
    ::close(fd);
  }
}

// The health check's probe: a port nobody listens on refuses; once bound and listening it
// accepts; closed, it refuses again.
TEST(PortsTest, AcceptsConnectionsOnlyWhileSomethingListens) {
  auto port = find_free_app_port();
  ASSERT_TRUE(port.has_value());
  EXPECT_FALSE(accepts_connections(*port));
  int fd = bound_loopback(*port);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(accepts_connections(*port)) << "bound, not listening yet";
  ASSERT_EQ(::listen(fd, 4), 0);
  EXPECT_TRUE(accepts_connections(*port));
  ::close(fd);
  EXPECT_FALSE(accepts_connections(*port));
}

} // namespace
} // namespace idp::util
