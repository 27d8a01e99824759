// Pull requests from forks (issue 15): held until a developer approves their head commit,
// then deployed under the untrusted profile. A real `idp serve`, real git (the fork's commits
// reach the base repository only as refs/pull/<n>/head, as on GitHub), GitHub's published
// webhook payloads edited to come from a fork, and a local fake of GitHub's REST API.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "fakes/fake_github.hpp"
#include "gitops_test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::testing {
namespace {

using nlohmann::json;

const std::string k_fork = "mallory/app";
const int k_pr = 7;

// A commit on top of main, with `files` changed, pushed to the base repository as
// refs/pull/<pr>/head only (no branch: GitHub keeps a fork's head there).
std::string push_fork_head(GitopsRig& rig, int pr, const std::vector<std::pair<std::string, std::string>>& files) {
  rig.work->checkout("main");
  rig.work->checkout_new_branch("fork-work-" + util::random_hex(4));
  for (const auto& [rel, content] : files) {
    rig.work->write_file(rel, content);
  }
  std::string sha = rig.work->commit("fork commit");
  rig.work->git({"push", "--force", "--quiet", rig.remote_path, "HEAD:refs/pull/" + std::to_string(pr) + "/head"});
  rig.work->checkout("main");
  return sha;
}

std::string example_config(const std::string& version, const std::string& extra = "") {
  std::string text = *util::read_file(source_dir() + "/examples/api-service/.idp/config.yml");
  auto pos = text.find("environment:\n");
  text.insert(pos + std::string("environment:\n").size(), "  APP_VERSION: " + version + "\n");
  return text + extra;
}

std::string token_with_role(GitopsRig& rig, const std::string& name, const std::string& role) {
  auto r = rig.daemon->cli({"token", "create", "--name", name, "--role", role});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return util::trim(r.out);
}

// GET through the router, as a client with `token` ("" = none).
util::HttpResponse via_router(GitopsRig& rig, const std::string& env, const std::string& path,
                              const std::string& token) {
  util::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(rig.daemon->router_port()) + path;
  req.headers = {{"Host", env + ".preview.localhost:" + std::to_string(rig.daemon->router_port())},
                 {"Accept", "text/html"}};
  if (!token.empty()) {
    req.headers.push_back({"Authorization", "Bearer " + token});
  }
  req.timeout_ms = 10000;
  auto r = util::http_request(req);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : util::HttpResponse{};
}

json fork_of(GitopsRig& rig, int pr) {
  auto [status, body] = rig.daemon->api("GET", "/api/v1/forks");
  EXPECT_EQ(status, 200) << body.dump();
  for (const auto& f : body.value("forks", json::array())) {
    if (f.value("pr", 0) == pr) {
      return f;
    }
  }
  return nullptr;
}

json live_envs(GitopsRig& rig) {
  auto [status, body] = rig.daemon->api("GET", "/api/v1/environments");
  EXPECT_EQ(status, 200);
  return body.value("environments", json::array());
}

bool root() { return ::geteuid() == 0; }

class ForkTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!root()) {
      GTEST_SKIP() << "the untrusted profile needs root (its own uid and a network namespace)";
    }
    IDP_REQUIRE_WEBHOOK_EXAMPLES();
  }
};

// Must show 3: pending with a status and a comment, no environment; approval of the head
// commit deploys it; a new push needs a new approval; an approval without the right is
// refused (a viewer token, a comment by someone not in fork_approvers).
TEST_F(ForkTest, AForkIsDeployedOnlyAtTheCommitADeveloperApproved) {
  FakeGitHub github;
  const std::string token = "ghp_forktest0123456789TOKEN";
  GitopsRig rig("idp-gitops-fork",
                {.poll = false,
                 .github_api_url = github.url(),
                 .github_token = token,
                 .repository_extra = "    forks: approve\n    fork_approvers: [trusted-reviewer]\n"});
  rig.start();
  const std::string c1 = push_fork_head(rig, k_pr, {{".idp/config.yml", example_config("fork-v1")}});

  auto [s1, b1] = rig.webhook(
      "pull_request", fork_pull_request_payload(rig.payload_repo(), "opened", k_pr, k_fork, "patch-1", c1, "mallory"));
  ASSERT_EQ(s1, 202) << b1.dump();
  EXPECT_EQ(b1["status"], "pending");
  // GitHub hears of it: a pending status on the head, one comment saying who may approve.
  ASSERT_TRUE(wait_until(
      [&] {
        return !github.requests("POST", "/repos/idp-tests/app/statuses/" + c1).empty() &&
               github.comments(k_pr).size() == 1;
      },
      30000))
      << rig.daemon->log();
  auto status = json::parse(github.requests("POST", "/repos/idp-tests/app/statuses/" + c1).back().body);
  EXPECT_EQ(status["state"], "pending");
  EXPECT_EQ(status["context"], "mini-idp/preview");
  std::string comment = github.comments(k_pr)[0].body;
  EXPECT_NE(comment.find("idp approve idp-tests/app#7"), std::string::npos) << comment;
  EXPECT_NE(comment.find("@trusted-reviewer"), std::string::npos) << comment;
  EXPECT_NE(comment.find(short_sha(c1)), std::string::npos) << comment;
  EXPECT_TRUE(live_envs(rig).empty()) << "a fork gets no environment before an approval";
  EXPECT_EQ(fork_of(rig, k_pr)["state"], "pending");

  // Refused: a viewer's approval, and a comment by a login that is not an approver.
  std::string viewer = token_with_role(rig, "fork-viewer", "viewer");
  auto [sv, bv] =
      rig.daemon->api_as(viewer, "POST", "/api/v1/forks/approve", json{{"repo", "idp-tests/app"}, {"pr", k_pr}}.dump());
  EXPECT_EQ(sv, 403) << bv.dump();
  auto [sc, bc] =
      rig.webhook("issue_comment", pull_request_comment_payload(rig.payload_repo(), k_pr, "mallory", "/idp approve"));
  EXPECT_EQ(sc, 200) << bc.dump();
  EXPECT_EQ(bc["status"], "refused") << bc.dump();
  EXPECT_EQ(fork_of(rig, k_pr)["state"], "pending");
  EXPECT_TRUE(live_envs(rig).empty());
  // An approval naming another commit than the head is refused too.
  auto stale = rig.daemon->cli({"approve", "idp-tests/app#7", "--commit", "0123456"});
  EXPECT_NE(stale.exit_code, 0);
  EXPECT_NE(stale.err.find("not at 0123456"), std::string::npos) << stale.err;

  // A developer approves the head: it deploys, untrusted, behind sign-in.
  auto approved = rig.daemon->cli({"approve", "idp-tests/app#7"});
  ASSERT_EQ(approved.exit_code, 0) << approved.out << approved.err;
  EXPECT_NE(approved.out.find(short_sha(c1)), std::string::npos) << approved.out;
  ASSERT_TRUE(wait_until([&] { return !fork_of(rig, k_pr)["environment"].is_null(); }, 30000)) << rig.daemon->log();
  const std::string name = fork_of(rig, k_pr)["environment"];
  EXPECT_EQ(name, "pr-7");
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 120000)) << rig.daemon->env(name).dump() << rig.daemon->log();
  json env = rig.daemon->env(name);
  EXPECT_EQ(env["profile"], "untrusted");
  EXPECT_EQ(env["pr_number"], k_pr);
  auto anonymous = via_router(rig, name, "/", "");
  EXPECT_TRUE(anonymous.status == 302 || anonymous.status == 401) << anonymous.status << " " << anonymous.body;
  auto seen = via_router(rig, name, "/", viewer);
  ASSERT_EQ(seen.status, 200) << seen.body;
  EXPECT_NE(seen.body.find("fork-v1"), std::string::npos) << seen.body;

  // A new push is pending again; the environment stays at the approved commit.
  const std::string c2 = push_fork_head(rig, k_pr, {{".idp/config.yml", example_config("fork-v2")}});
  auto [s2, b2] = rig.webhook("pull_request", fork_pull_request_payload(rig.payload_repo(), "synchronize", k_pr, k_fork,
                                                                        "patch-1", c2, "mallory"));
  ASSERT_EQ(s2, 202) << b2.dump();
  EXPECT_EQ(b2["status"], "pending");
  ASSERT_TRUE(
      wait_until([&] { return !github.requests("POST", "/repos/idp-tests/app/statuses/" + c2).empty(); }, 30000));
  json fork = fork_of(rig, k_pr);
  EXPECT_EQ(fork["state"], "pending");
  EXPECT_EQ(fork["head_sha"], c2);
  EXPECT_EQ(fork["approved_commit"], c1);
  env = rig.daemon->env(name);
  EXPECT_EQ(env["commit"], c1) << "a push to a fork is not deployed before its approval";
  EXPECT_EQ(env["deployed_commit"], c1);
  // A redeploy by hand cannot pick the unapproved head either.
  auto [sr, br] = rig.daemon->api("POST", "/api/v1/environments/" + name + "/redeploy", json{{"commit", c2}}.dump());
  EXPECT_EQ(sr, 409) << br.dump();

  // An approver's comment approves the new head.
  auto [sa, ba] =
      rig.webhook("issue_comment",
                  pull_request_comment_payload(rig.payload_repo(), k_pr, "Trusted-Reviewer", "/idp approve\nthanks"));
  ASSERT_EQ(sa, 202) << ba.dump();
  EXPECT_EQ(ba["commit"], c2);
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 120000)) << rig.daemon->log();
  EXPECT_EQ(fork_of(rig, k_pr)["approved_by"], "github:Trusted-Reviewer");
  EXPECT_NE(via_router(rig, name, "/", viewer).body.find("fork-v2"), std::string::npos);

  // Closing the pull request destroys its environment.
  auto [sx, bx] = rig.webhook(
      "pull_request", fork_pull_request_payload(rig.payload_repo(), "closed", k_pr, k_fork, "patch-1", c2, "mallory"));
  ASSERT_EQ(sx, 202) << bx.dump();
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 60000)) << rig.daemon->log();
  EXPECT_EQ(fork_of(rig, k_pr)["state"], "closed");
  EXPECT_TRUE(rig.env_processes(name).empty());
  EXPECT_EQ(rig.daemon->log().find(token), std::string::npos) << "the token is never logged";
}

// A TCP listener on `addr` that counts the connections it accepts (none are expected).
class Listener {
public:
  explicit Listener(const std::string& addr) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    EXPECT_EQ(::bind(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&sa), &len);
    m_port = ntohs(sa.sin_port);
    ::listen(m_fd, 16);
    m_thread = std::thread([this] {
      while (true) {
        int c = ::accept(m_fd, nullptr, nullptr);
        if (c < 0) {
          return;
        }
        if (m_stop) {
          ::close(c);
          return;
        }
        m_accepted += 1;
        ::close(c);
      }
    });
  }
  ~Listener() {
    m_stop = true;
    ::shutdown(m_fd, SHUT_RDWR);
    ::close(m_fd);
    m_thread.join();
  }
  int port() const { return m_port; }
  int accepted() const { return m_accepted; }

private:
  int m_fd = -1;
  int m_port = 0;
  std::atomic<int> m_accepted{0};
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

// The host's first non-loopback IPv4 address ("" when it has none).
std::string host_address() {
  ifaddrs* list = nullptr;
  std::string out;
  if (::getifaddrs(&list) != 0) {
    return out;
  }
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET) {
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      if (std::string(buf).rfind("127.", 0) != 0) {
        out = buf;
        break;
      }
    }
  }
  ::freeifaddrs(list);
  return out;
}

// A hostile app: on GET / it reports what it could read and reach.
const char* k_probe = R"py(import http.server, json, os, socket, sys

def attempt(fn):
    try:
        return "ok: " + str(fn())
    except Exception as e:
        return "error: " + type(e).__name__ + ": " + str(e)

def connect(target):
    host, port = target.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=3)
    s.close()
    return "connected"

def via_proxy(target):
    proxy = os.environ.get("HTTPS_PROXY", "")
    host, port = proxy.rsplit("/", 1)[-1].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=3)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    line = s.recv(200).decode(errors="replace").split("\r\n")[0]
    s.close()
    return line

def read(path):
    with open(path, "rb") as f:
        return len(f.read())

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            targets = [t for t in os.environ.get("PROBE_TARGETS", "").split(",") if t]
            paths = [p for p in os.environ.get("PROBE_PATHS", "").split(",") if p]
            report = {
                "uid": os.getuid(),
                "environ": dict(os.environ),
                "connect": {t: attempt(lambda t=t: connect(t)) for t in targets},
                "proxy": {t: attempt(lambda t=t: via_proxy(t)) for t in targets},
                "read": {p: attempt(lambda p=p: read(p)) for p in paths},
            }
            body = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
)py";

// Must show 4: the approved fork's app gets no secret (though its config asks for one), reads
// none of the server's files, reaches no address (a listener on loopback and one on the
// host's own address see no connection; the egress proxy refuses both), runs as its own uid,
// and its URL is protected.
TEST_F(ForkTest, AnApprovedForkRunsWithoutSecretsNetworkOrTheServersFiles) {
  Listener on_loopback("127.0.0.1");
  const std::string other = host_address();
  std::unique_ptr<Listener> on_host = other.empty() ? nullptr : std::make_unique<Listener>("0.0.0.0");
  std::vector<std::string> targets = {"127.0.0.1:" + std::to_string(on_loopback.port())};
  if (on_host) {
    targets.push_back(other + ":" + std::to_string(on_host->port()));
  }
  GitopsRig rig("idp-gitops-fork-sandbox", {.poll = false, .repository_extra = "    forks: approve\n"});
  rig.start();
  const std::string secret_value = "s3cr3t-" + util::random_hex(8);
  auto set = rig.daemon->cli({"secret", "set", "shop-api-key"}, secret_value + "\n");
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;

  std::string config = "template: api-service\n"
                       "health_check_path: /health\n"
                       "ttl: 30d\n"
                       "cpu: 2048\n"
                       "memory: 4096\n"
                       "public: true\n"
                       "secrets:\n"
                       "  STOLEN_KEY: shop-api-key\n"
                       "environment:\n"
                       "  PROBE_TARGETS: \"" +
                       util::join(targets, ",") +
                       "\"\n"
                       "  PROBE_PATHS: \"" +
                       rig.daemon->home() + "/state.db," + rig.daemon->home() + "/admin.token,/etc/shadow\"\n" +
                       "local:\n"
                       "  start: python3 probe.py\n";
  const std::string c1 = push_fork_head(rig, k_pr, {{".idp/config.yml", config}, {"probe.py", k_probe}});
  ASSERT_EQ(rig.webhook("pull_request",
                        fork_pull_request_payload(rig.payload_repo(), "opened", k_pr, k_fork, "patch-1", c1, "mallory"))
                .first,
            202);
  auto approved = rig.daemon->cli({"approve", "idp-tests/app#7", "--commit", c1});
  ASSERT_EQ(approved.exit_code, 0) << approved.err;
  ASSERT_TRUE(rig.wait_ready_at("pr-7", c1, 120000)) << rig.daemon->env("pr-7").dump() << rig.daemon->log();
  json env = rig.daemon->env("pr-7");
  EXPECT_EQ(env["profile"], "untrusted");

  // Its URL is protected although its config says public: true and the server protects none.
  auto anonymous = via_router(rig, "pr-7", "/", "");
  EXPECT_TRUE(anonymous.status == 302 || anonymous.status == 401) << anonymous.status;
  std::string viewer = token_with_role(rig, "sandbox-viewer", "viewer");
  auto r = via_router(rig, "pr-7", "/", viewer);
  ASSERT_EQ(r.status, 200) << r.body;
  json report = json::parse(r.body);

  EXPECT_NE(report["uid"], 0) << "its own unprivileged uid";
  EXPECT_EQ(report["environ"].dump().find(secret_value), std::string::npos) << "no secret value reaches the app";
  EXPECT_FALSE(report["environ"].contains("STOLEN_KEY"));
  for (const auto& [path, result] : report["read"].items()) {
    EXPECT_TRUE(util::starts_with(result.get<std::string>(), "error: PermissionError"))
        << path << ": " << result.get<std::string>();
  }
  for (const auto& t : targets) {
    EXPECT_TRUE(util::starts_with(report["connect"][t].get<std::string>(), "error:"))
        << t << ": " << report["connect"][t].get<std::string>();
    EXPECT_NE(report["proxy"][t].get<std::string>().find("403"), std::string::npos)
        << t << " through the egress proxy: " << report["proxy"][t].get<std::string>();
  }
  EXPECT_EQ(on_loopback.accepted(), 0);
  if (on_host) {
    EXPECT_EQ(on_host->accepted(), 0);
  }
  // The profile's limits and TTL replaced what the fork's config asked for.
  auto events = rig.events("pr-7").dump();
  EXPECT_NE(events.find("secrets not given to a fork: STOLEN_KEY"), std::string::npos) << events;
  EXPECT_NE(events.find("cpu 2048 capped at 256"), std::string::npos) << events;
  util::Millis ttl = util::parse_iso8601(env["expires_at"].get<std::string>()).value_or(0) -
                     util::parse_iso8601(env["created_at"].get<std::string>()).value_or(0);
  EXPECT_LE(ttl, 24LL * 3600 * 1000 + 60'000) << "the profile's 24h TTL, not the config's 30d";
}

} // namespace
} // namespace idp::testing
