// Issue "The first hour": what a new user hit in their first hour, each against real
// `idp serve` processes (two of them where the point is about two servers).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../templates/templates_test_support.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

// `idp serve ARGS…` as a second server: it must answer at once, so a bounded run.
util::RunResult serve_once(const std::vector<std::string>& args) {
  util::Command c;
  c.argv = {idp_binary(), "serve"};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.unset_env = {"IDP_SERVER", "IDP_HOME"};
  util::RunOptions o;
  o.timeout_ms = 60000;
  auto r = util::run(c, o);
  return r ? *r : util::RunResult{};
}

// The mode bits and the POSIX ACL of a directory: what a refused start must leave alone.
std::string mode_and_acl(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return "missing";
  }
  char acl[4096];
  ssize_t n = ::getxattr(dir.c_str(), "system.posix_acl_access", acl, sizeof acl);
  char mode[16];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return std::string(mode) + " acl:" + (n > 0 ? util::to_hex(std::string_view(acl, static_cast<size_t>(n))) : "none");
}

} // namespace

// 1. A refused second `idp serve` on the same home changes nothing: the running server's
// PostgreSQL (reaching its cluster through the home's ACL) keeps working.
TEST_F(TemplatesTest, SecondServeOnTheSameHomeIsRefusedAndChangesNothing) {
  auto d = make_daemon();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-database", "feature/lock");
  create(*d, repo, "feature/lock");
  ASSERT_TRUE(d->wait_phase("preview-lock", "ready", 1000)) << d->log();
  std::string before = mode_and_acl(home);
  pid_t postmaster = postmaster_pid();
  ASSERT_GT(postmaster, 0);

  auto second = serve_once({"--home", home, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(second.exit_code, 1) << second.out << second.err;
  EXPECT_NE(second.err.find("another idp serve is already running with home"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("nothing was changed"), std::string::npos) << second.err;

  EXPECT_EQ(mode_and_acl(home), before) << "the refused start changed the home's permissions";
  // A checkpoint is where a cluster that lost its way through the home PANICs.
  auto checkpoint = psql_superuser("CHECKPOINT");
  EXPECT_EQ(checkpoint.exit_code, 0) << checkpoint.err;
  EXPECT_EQ(postmaster_pid(), postmaster) << "the first server's PostgreSQL kept running";
  auto health = http(*d, "preview-lock", "GET", "/health");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(status(*d, "preview-lock").value("phase", ""), "ready");
  EXPECT_TRUE(d->running());

  auto destroyed = d->cli({"destroy", "preview-lock", "--yes"});
  EXPECT_EQ(destroyed.exit_code, 0) << destroyed.err;
  EXPECT_EQ(d->stop(), 0);
}

namespace {

// The port of an http://host:port URL.
int port_of(const std::string& url) { return std::atoi(url.substr(url.rfind(':') + 1).c_str()); }

// The listen backlog of the socket listening on 127.0.0.1:port (ss's Send-Q), -1 if none.
int listen_backlog(int port) {
  util::Command c;
  c.argv = {"ss", "-Hltn", "sport = :" + std::to_string(port)};
  auto r = util::run(c);
  if (!r || r->exit_code != 0) {
    return -1;
  }
  auto lines = util::split(util::trim(r->out), '\n');
  if (lines.size() != 1) {
    return -static_cast<int>(lines.size()) - 1;
  }
  std::istringstream in(lines[0]);
  std::string state;
  int recv_q = 0;
  int send_q = -1;
  in >> state >> recv_q >> send_q;
  return send_q;
}

int somaxconn() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int n = 0;
  in >> n;
  return n;
}

} // namespace

// 2. An API address in use is refused (no second listener sharing it), and the API listens
// with the system's backlog.
TEST(FirstHourTest, ApiAddressInUseIsRefused) {
  TempDir tmp("idp-first-hour");
  (void)util::ensure_dir(tmp.sub("a"));
  DaemonProcess a(tmp.sub("a"));
  a.start();
  int port = port_of(a.api_url());
  ASSERT_GT(port, 0);
  EXPECT_EQ(listen_backlog(port), somaxconn()) << "the API listens with net.core.somaxconn";

  auto second = serve_once({"--home", tmp.sub("b"), "--listen", "127.0.0.1:" + std::to_string(port)});
  EXPECT_FALSE(second.timed_out) << "a second server started on the same address";
  EXPECT_EQ(second.exit_code, 1) << second.err;
  EXPECT_NE(second.err.find("cannot listen on 127.0.0.1:" + std::to_string(port) + ": the address is already in use"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(listen_backlog(port), somaxconn()) << "only the first server listens there";
  auto health = a.cli({"list", "--json"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_EQ(a.stop(), 0);
}
