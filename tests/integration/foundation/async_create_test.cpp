// Issue 10, "Bounds": `POST /api/v1/environments` answers once the desired state is stored;
// the clone and the config are read by an engine worker. A clone that hangs holds no
// request; a daemon killed during it converges after a restart; a repository that cannot
// be cloned fails the environment with git's reason, which `idp create` prints (exit 1).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <gtest/gtest.h>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

// A gate the test holds shut (an exclusive flock) until it releases it.
class CloneGate {
public:
  explicit CloneGate(std::string path) : m_path(std::move(path)) {
    m_fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    EXPECT_GE(m_fd, 0);
    EXPECT_EQ(::flock(m_fd, LOCK_EX), 0);
  }
  ~CloneGate() { release(); }
  void release() {
    if (m_fd >= 0) {
      ::close(m_fd);
      m_fd = -1;
    }
  }
  const std::string& path() const { return m_path; }

private:
  std::string m_path;
  int m_fd = -1;
};

// A stand-in for ssh (GIT_SSH_COMMAND, "simple" variant: HOST COMMAND): says it was reached
// (a new line in `reached`), waits at the gate, then runs git's remote command on this
// machine. ssh://localhost/<path> URLs go through it.
std::string write_fake_ssh(const TempDir& tmp, const std::string& gate, const std::string& reached) {
  std::string path = tmp.sub("fake-ssh");
  std::string script = "#!/bin/sh\n"
                       "shift\n" // the host
                       "echo reached >> '" +
                       reached +
                       "'\n"
                       "flock '" +
                       gate +
                       "' true\n"
                       "exec sh -c \"$*\"\n";
  EXPECT_TRUE(util::write_file_atomic(path, script));
  ::chmod(path.c_str(), 0755);
  return path;
}

std::pair<long, nlohmann::json> api_call(const DaemonProcess& d, const std::string& method, const std::string& path,
                                         const std::string& body = "") {
  util::HttpRequest req;
  req.method = method;
  req.url = d.api_url() + path;
  req.body = body;
  req.headers = {d.admin_auth_header(), {"Content-Type", "application/json"}};
  req.timeout_ms = 60000; // generous: a request that is answered at all answers in time
  auto r = util::http_request(req);
  if (!r) {
    return {0, r.error().message};
  }
  return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
}

} // namespace

TEST(AsyncCreateTest, PostAnswersWhileTheCloneHangsAndAKilledDaemonConverges) {
  TempDir tmp("idp-async-create");
  (void)util::ensure_dir(tmp.sub("home"));
  GitRepo app = make_example_repo(tmp.sub("app"), "api-service", "feature/slow");
  CloneGate gate(tmp.sub("gate"));
  std::string reached = tmp.sub("ssh-reached");
  std::string ssh = write_fake_ssh(tmp, gate.path(), reached);
  auto clones_at_gate = [&] {
    std::string text = util::read_file(reached).value_or("");
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  };
  // The daemon (and the git it runs) inherit these.
  ::setenv("GIT_SSH_COMMAND", ssh.c_str(), 1);
  ::setenv("GIT_SSH_VARIANT", "simple", 1);
  DaemonProcess d(tmp.sub("home"));
  d.start();
  std::string url = "ssh://localhost" + app.path();

  auto [status, env] =
      api_call(d, "POST", "/api/v1/environments", nlohmann::json{{"repo", url}, {"branch", "feature/slow"}}.dump());
  ASSERT_EQ(status, 202) << "answered before the clone: " << env.dump() << "\n" << d.log();
  EXPECT_EQ(env.value("name", ""), "preview-slow");
  EXPECT_EQ(env.value("phase", ""), "pending");
  EXPECT_EQ(env.value("commit", "x"), "");
  // A worker's git clone is held at the gate; the API answers meanwhile.
  ASSERT_TRUE(wait_until([&] { return clones_at_gate() >= 1; }, 60000)) << d.env("preview-slow").dump() << d.log();
  EXPECT_NE(d.env("preview-slow").value("message", "").find("fetching branch \"feature/slow\""), std::string::npos)
      << d.env("preview-slow").dump();
  auto [ls, list] = api_call(d, "GET", "/api/v1/environments");
  EXPECT_EQ(ls, 200);
  EXPECT_EQ(list["environments"].size(), 1u) << list.dump();
  auto [dup, dup_body] =
      api_call(d, "POST", "/api/v1/environments", nlohmann::json{{"repo", url}, {"branch", "feature/slow"}}.dump());
  EXPECT_EQ(dup, 409) << "the desired state is stored: a second create is refused at once: " << dup_body.dump();

  // kill -9 in the middle of the clone, restart (its worker clones again), open the gate:
  // the environment converges.
  size_t before = clones_at_gate();
  d.kill9();
  d.start();
  ASSERT_TRUE(wait_until([&] { return clones_at_gate() > before; }, 60000)) << d.log();
  gate.release();
  ASSERT_TRUE(d.wait_phase("preview-slow", "ready", 300000)) << d.env("preview-slow").dump() << "\n" << d.log();
  nlohmann::json ready = d.env("preview-slow");
  EXPECT_EQ(ready.value("commit", ""), app.head());
  EXPECT_EQ(ready.value("deployed_commit", ""), app.head());
  EXPECT_EQ(ready.value("template", ""), "api-service");
  EXPECT_FALSE(ready["expires_at"].is_null()) << "the config's TTL applies: " << ready.dump();
  // No half-filled mirror was left behind by the killed clone.
  EXPECT_TRUE(find_files(tmp.sub("home/git"), [](const auto& e) {
                return e.path().filename().string().find(".partial.") != std::string::npos;
              }).empty());
  EXPECT_EQ(d.stop(), 0) << d.log();
  ::unsetenv("GIT_SSH_COMMAND");
  ::unsetenv("GIT_SSH_VARIANT");
}

TEST(AsyncCreateTest, ARepositoryThatCannotBeClonedFailsTheEnvironmentAndTheCli) {
  TempDir tmp("idp-async-create");
  (void)util::ensure_dir(tmp.sub("home"));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  std::string missing = tmp.sub("no-such-repo");
  auto r = d.cli({"create", "--repo", missing, "--branch", "main", "--name", "broken"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  std::string reason = "git clone " + missing + " failed: ";
  EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << "git's own message: " << r.err;
  nlohmann::json env = d.env("broken");
  ASSERT_TRUE(env.is_object()) << "the environment is recorded, failed: " << d.log();
  EXPECT_EQ(env.value("phase", ""), "failed") << env.dump();
  EXPECT_NE(env.value("message", "").find(reason), std::string::npos) << env.dump();
  EXPECT_EQ(d.stop(), 0) << d.log();
}
