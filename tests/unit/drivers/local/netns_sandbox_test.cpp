// The untrusted profile's network sandbox (`idp __netns`). The test binary is its own
// wrapper (main below runs run_netns for "__netns", as `idp __netns` does). The sandboxed
// program is python3 run as uid/gid 65534; the cases that need a network namespace skip
// when not root or when unshare(CLONE_NEWNET) is refused.
#include "drivers/local/netns_sandbox.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <memory>
#include <mutex>
#include <net/if.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/proc.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;
using idp::testing::wait_until;

constexpr int k_nobody = 65534;

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, static_cast<size_t>(n > 0 ? n : 0));
}

// Why the sandboxed cases cannot run here; "" when they can.
std::string sandbox_unavailable() {
  if (::geteuid() != 0) {
    return "not root: the network sandbox needs CAP_SYS_ADMIN";
  }
  pid_t p = ::fork();
  if (p == 0) {
    ::_exit(::unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  }
  int st = 0;
  ::waitpid(p, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    return "unshare(CLONE_NEWNET) is refused here (a container without CAP_SYS_ADMIN?)";
  }
  if (!util::find_executable("python3")) {
    return "python3 is not installed";
  }
  return "";
}

#define IDP_REQUIRE_SANDBOX()                                                                                          \
  if (auto why = sandbox_unavailable(); !why.empty()) {                                                                \
    GTEST_SKIP() << why;                                                                                               \
  }

// A TCP listener of the test on the host: for each connection it reads a line ("ping\n"
// answered "pong:ping\n") or an HTTP head (answered 200 with the head it saw as the body),
// then closes. Records what it received.
class HostListener {
public:
  explicit HostListener(const std::string& addr = "127.0.0.1") {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (::bind(m_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(m_fd, 16) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0 || ::pipe2(m_stop, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "cannot listen on " << addr << ": " << std::strerror(errno);
      return;
    }
    m_port = ntohs(sa.sin_port);
    m_thread = std::thread([this] { serve(); });
  }
  ~HostListener() {
    stop();
    ::close(m_fd);
  }
  int port() const { return m_port; }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> g(m_mu);
    return m_received;
  }
  // Stops serving and returns every connection that ever reached the listener: accepted,
  // or still waiting in its backlog.
  int stop_and_count() {
    stop();
    int n = m_accepted.load();
    ::fcntl(m_fd, F_SETFL, ::fcntl(m_fd, F_GETFL) | O_NONBLOCK);
    while (true) {
      int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        break;
      }
      ::close(c);
      ++n;
    }
    return n;
  }

private:
  void stop() {
    if (m_thread.joinable()) {
      ssize_t w = ::write(m_stop[1], "x", 1);
      (void)w; // the join below would hang without it: it cannot fail on a fresh pipe
      m_thread.join();
      ::close(m_stop[0]);
      ::close(m_stop[1]);
    }
  }
  void serve() {
    while (true) {
      pollfd p[2] = {{m_fd, POLLIN, 0}, {m_stop[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        continue;
      }
      if (p[1].revents) {
        return;
      }
      int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        ++m_accepted;
        handle(c);
        ::close(c);
      }
    }
  }
  void handle(int c) {
    std::string got;
    int64_t deadline = util::steady_ms() + 5000;
    auto complete = [&] {
      return util::starts_with(got, "GET ") ? got.find("\r\n\r\n") != std::string::npos
                                            : got.find('\n') != std::string::npos;
    };
    while (!complete() && util::steady_ms() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) {
        continue;
      }
      char buf[4096];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard<std::mutex> g(m_mu);
      m_received.push_back(got);
    }
    std::string reply;
    if (util::starts_with(got, "GET ")) {
      reply =
          "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(got.size()) + "\r\nConnection: close\r\n\r\n" + got;
    } else {
      reply = "pong:" + got;
    }
    (void)util::write_without_sigpipe(c, reply); // the client may have given up: its test fails then
  }

  int m_fd = -1;
  int m_port = 0;
  int m_stop[2] = {-1, -1};
  std::atomic<int> m_accepted{0};
  std::mutex m_mu;
  std::vector<std::string> m_received;
  std::thread m_thread;
};

// The first IPv4 address of an interface that is up and not loopback; "" when none.
std::string host_address() {
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) {
    return "";
  }
  std::string out;
  for (ifaddrs* i = ifs; i && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK)) {
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
      out = buf;
    }
  }
  ::freeifaddrs(ifs);
  return out;
}

util::Command wrapper_command(const NetnsArgs& a) {
  util::Command cmd;
  cmd.argv = {self_exe()};
  for (auto& s : netns_command_arguments(a)) {
    cmd.argv.push_back(s);
  }
  cmd.cwd = "/"; // readable by the sandboxed uid
  return cmd;
}

NetnsArgs python_args(const std::string& script, const std::vector<std::string>& script_args = {}) {
  NetnsArgs a;
  a.uid = k_nobody;
  a.gid = k_nobody;
  a.argv = {"python3", "-c", script};
  a.argv.insert(a.argv.end(), script_args.begin(), script_args.end());
  return a;
}

// Runs the wrapper to completion (30 s at most).
util::RunResult run_wrapper(const util::Command& cmd, const util::RunOptions& base = {}) {
  util::RunOptions o = base;
  o.timeout_ms = 30000;
  auto r = util::run(cmd, o);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  if (!r) {
    return {};
  }
  EXPECT_FALSE(r->timed_out) << "stdout: " << r->out << "\nstderr: " << r->err;
  return *r;
}

// Each stdout line of the sandboxed script that is a JSON object, by its "name".
std::map<std::string, nlohmann::json> json_lines(const std::string& out) {
  std::map<std::string, nlohmann::json> m;
  for (const auto& line : util::split(out, '\n')) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("name")) {
      m[j["name"].get<std::string>()] = j;
    }
  }
  return m;
}

// A wrapper left running in the background, stdout and stderr into files.
struct RunningWrapper {
  pid_t pid = 0;
  std::string out_path;
  std::string err_path;

  RunningWrapper(const TempDir& dir, util::Command cmd) : out_path(dir.sub("out")), err_path(dir.sub("err")) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    util::SpawnOptions o;
    o.stdout_fd = out;
    o.stderr_fd = err;
    o.detach = false;
    auto p = util::spawn(cmd, o);
    ::close(out);
    ::close(err);
    EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
    pid = p ? *p : 0;
  }
  ~RunningWrapper() {
    if (pid > 0 && util::process_alive(pid)) {
      ::kill(-pid, SIGKILL);
      util::wait_child(pid, 10000);
    }
  }
  std::string out() const { return util::read_file(out_path).value_or(""); }
  std::string err() const { return util::read_file(err_path).value_or(""); }
};

// --- The allowlist, the proxy's request parsing, the command line ---

TEST(NetnsEgressRuleTest, ParsesHostsWildcardsPortsAndIpLiterals) {
  auto r = parse_egress_rule("Registry.NPMJS.org");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "registry.npmjs.org");
  EXPECT_FALSE(r->wildcard);
  EXPECT_EQ(r->port, 0);
  r = parse_egress_rule("*.pypi.org:8443");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "pypi.org");
  EXPECT_TRUE(r->wildcard);
  EXPECT_EQ(r->port, 8443);
  r = parse_egress_rule("[::1]:443");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 443);
  r = parse_egress_rule("10.1.2.3:5000");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->host, "10.1.2.3");
  EXPECT_EQ(r->port, 5000);
  for (const char* bad : {"", "*", "*.", "*.1", "*.0.0.1", "a b.org", "exa*mple.com", "host:0", "host:65536",
                          "host:", "host:x", "[example.org]:443", "a\r\nb", "..org"}) {
    auto e = parse_egress_rule(bad);
    EXPECT_FALSE(e) << "accepted " << util::quote(bad);
    if (!e) {
      EXPECT_NE(e.error().message.find("egress rule"), std::string::npos) << e.error().message;
    }
  }
}

TEST(NetnsEgressRuleTest, MatchesExactHostsSubdomainsAndPorts) {
  std::vector<EgressRule> rules;
  for (const char* text : {"registry.npmjs.org", "*.pypi.org", "mirror.internal:8443", "10.1.2.3:5000"}) {
    rules.push_back(*parse_egress_rule(text));
  }
  EXPECT_TRUE(egress_allowed(rules, "registry.npmjs.org", 443));
  EXPECT_TRUE(egress_allowed(rules, "REGISTRY.npmjs.ORG.", 80)) << "case and a trailing dot do not matter";
  EXPECT_FALSE(egress_allowed(rules, "registry.npmjs.org", 22)) << "no port in the rule: 443 and 80 only";
  EXPECT_FALSE(egress_allowed(rules, "evil.registry.npmjs.org", 443)) << "an exact rule has no subdomains";
  EXPECT_FALSE(egress_allowed(rules, "registry.npmjs.org.evil.com", 443));

  EXPECT_TRUE(egress_allowed(rules, "files.pypi.org", 443));
  EXPECT_TRUE(egress_allowed(rules, "a.b.pypi.org", 80));
  EXPECT_FALSE(egress_allowed(rules, "pypi.org", 443)) << "*.suffix is for subdomains only";
  EXPECT_FALSE(egress_allowed(rules, "evilpypi.org", 443));
  EXPECT_FALSE(egress_allowed(rules, "files.pypi.org", 8080));

  EXPECT_TRUE(egress_allowed(rules, "mirror.internal", 8443));
  EXPECT_FALSE(egress_allowed(rules, "mirror.internal", 443)) << "a rule's port is the only one";

  EXPECT_TRUE(egress_allowed(rules, "10.1.2.3", 5000));
  EXPECT_FALSE(egress_allowed(rules, "10.1.2.4", 5000));
  EXPECT_FALSE(egress_allowed(rules, "10.1.2.3", 443));

  // A wildcard never matches an address, whatever its suffix (rules made by hand: the
  // parser refuses such a wildcard already).
  std::vector<EgressRule> numeric = {{"0.1", true, 0}, {"1", true, 0}, {"0.0.1", true, 80}};
  for (const char* host : {"127.0.0.1", "127.1", "10.0.1", "0x7f.0.0.1"}) {
    EXPECT_FALSE(egress_allowed(numeric, host, 80)) << host;
  }
  std::vector<EgressRule> by_name = {*parse_egress_rule("localhost")};
  EXPECT_FALSE(egress_allowed(by_name, "127.0.0.1", 443)) << "an IP only when listed literally";
  EXPECT_FALSE(egress_allowed(rules, "bad host", 443));
  EXPECT_FALSE(egress_allowed(rules, "", 443));
}

TEST(NetnsProxyRequestTest, ParsesConnectAndRewritesAbsoluteFormToOriginForm) {
  auto c = parse_proxy_request("CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: registry.npmjs.org:443\r\n\r\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->connect);
  EXPECT_EQ(c->host, "registry.npmjs.org");
  EXPECT_EQ(c->port, 443);
  c = parse_proxy_request("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "2001:db8::1");
  EXPECT_EQ(c->port, 8443);

  auto g = parse_proxy_request("GET http://Example.org:8080/a/b?c=d HTTP/1.1\r\nHost: other.example\r\n"
                               "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
                               "Connection: keep-alive\r\nUser-Agent: npm\r\n\r\n");
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_FALSE(g->connect);
  EXPECT_EQ(g->host, "Example.org");
  EXPECT_EQ(g->port, 8080);
  EXPECT_EQ(g->origin_head, "GET /a/b?c=d HTTP/1.1\r\nHost: Example.org:8080\r\nUser-Agent: npm\r\n"
                            "Connection: close\r\n\r\n");
  g = parse_proxy_request("HEAD http://example.org HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->port, 80);
  EXPECT_EQ(g->origin_head, "HEAD / HTTP/1.0\r\nHost: example.org\r\nConnection: close\r\n\r\n");

  for (const char* bad : {"CONNECT example.org HTTP/1.1\r\n\r\n", "GET https://example.org/ HTTP/1.1\r\n\r\n",
                          "GET /relative HTTP/1.1\r\n\r\n", "GET http://user:pw@example.org/ HTTP/1.1\r\n\r\n",
                          "GET http://exa\x01mple.org/ HTTP/1.1\r\n\r\n", "GET http://example.org/ HTTP/2\r\n\r\n",
                          "GET http://example.org/ HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
                          "GET http://example.org/ HTTP/1.1\r\nno colon\r\n\r\n",
                          "get http://example.org/ HTTP/1.1\r\n\r\n", "\r\n\r\n"}) {
    EXPECT_FALSE(parse_proxy_request(bad)) << "accepted " << util::quote(bad);
  }
}

TEST(NetnsArgumentsTest, BuildsTheWrapperCommandLine) {
  NetnsArgs a;
  a.uid = 1001;
  a.gid = 1002;
  a.publish = {8080};
  a.forward = {5432};
  a.allow = {"registry.npmjs.org", "*.pypi.org:443"};
  a.argv = {"npm", "start"};
  EXPECT_EQ(netns_command_arguments(a),
            (std::vector<std::string>{"__netns", "--uid", "1001", "--gid", "1002", "--publish", "8080", "--forward",
                                      "5432", "--allow", "registry.npmjs.org", "--allow", "*.pypi.org:443",
                                      "--proxy-port", "3128", "--", "npm", "start"}));
}

// --- Bad arguments and starting failures (no namespace needed for most) ---

TEST(NetnsSandboxTest, BadArgumentsExitTwoWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--publish", "abc", "--", "true"}, "bad value for --publish: \"abc\""},
      {{"--publish", "70000", "--", "true"}, "expected a port"},
      {{"--bogus", "1", "--", "true"}, "unknown option \"--bogus\""},
      {{
           "--",
       },
       "no command given"},
      {{"true"}, "unknown option \"true\""},
      {{"--publish"}, "option --publish needs a value"},
      {{"--allow", "*", "--", "true"}, "would allow every host"},
      {{"--uid", "65534", "--", "true"}, "--uid and --gid go together"},
      {{"--publish", "3128", "--", "true"}, "port 3128 is given twice"},
  };
  for (const auto& c : cases) {
    util::Command cmd;
    cmd.argv = {self_exe(), "__netns"};
    cmd.argv.insert(cmd.argv.end(), c.args.begin(), c.args.end());
    auto r = run_wrapper(cmd);
    EXPECT_EQ(r.exit_code, 2) << util::join(c.args, " ");
    EXPECT_NE(r.err.find(c.message), std::string::npos) << util::join(c.args, " ") << ": " << r.err;
  }
}

TEST(NetnsSandboxTest, TheIdpBinaryKnowsTheSubcommand) {
  std::string idp = idp::testing::idp_binary();
  if (idp.find('/') == std::string::npos || ::access(idp.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "no idp binary at " << util::quote(idp) << " (IDP_BINARY)";
  }
  util::Command cmd;
  cmd.argv = {idp, "__netns", "--publish", "x", "--", "true"};
  auto r = run_wrapper(cmd);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("idp __netns: bad value for --publish"), std::string::npos) << r.err;
}

TEST(NetnsSandboxTest, WithoutCapSysAdminTheCommandIsNeverRunUnsandboxed) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "not root: cannot start the wrapper as another user";
  }
  // The wrapper itself as nobody: no CAP_SYS_ADMIN, so no namespace.
  util::Command cmd = wrapper_command([] {
    NetnsArgs a;
    a.argv = {"sh", "-c", "echo RAN-UNSANDBOXED"};
    return a;
  }());
  util::RunOptions o;
  o.uid = k_nobody;
  o.gid = k_nobody;
  auto r = run_wrapper(cmd, o);
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_EQ(r.out.find("RAN-UNSANDBOXED"), std::string::npos);
  EXPECT_NE(r.err.find("needs CAP_SYS_ADMIN"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("was not run"), std::string::npos) << r.err;
}

TEST(NetnsSandboxTest, AMissingCommandExits127WithAMessage) {
  IDP_REQUIRE_SANDBOX();
  NetnsArgs a;
  a.uid = k_nobody;
  a.gid = k_nobody;
  a.argv = {"/nonexistent/idp-netns-test-command", "x"};
  auto r = run_wrapper(wrapper_command(a));
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("cannot start \"/nonexistent/idp-netns-test-command\": No such file or directory"),
            std::string::npos)
      << r.err;
}

// --- The sandbox at work ---

TEST(NetnsSandboxTest, PublishedPortReachesTheAppFromTheHost) {
  IDP_REQUIRE_SANDBOX();
  TempDir dir;
  int port = *util::find_free_app_port();
  const std::string server = R"PY(
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ("hello from the sandbox, uid=%d path=%s" % (os.getuid(), self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
)PY";
  NetnsArgs a = python_args(server);
  a.publish = {port};
  util::Command cmd = wrapper_command(a);
  cmd.env["PORT"] = std::to_string(port);
  RunningWrapper w(dir, cmd);
  std::string body;
  // Until the app listens, the wrapper accepts and closes: the GET fails and is retried.
  bool ok = wait_until(
      [&] {
        util::HttpRequest req;
        req.url = "http://127.0.0.1:" + std::to_string(port) + "/probe";
        req.timeout_ms = 3000;
        req.connect_timeout_ms = 1000;
        auto r = util::http_request(req);
        if (r && r->status == 200) {
          body = r->body;
          return true;
        }
        return false;
      },
      20000, 50);
  ASSERT_TRUE(ok) << "stderr: " << w.err();
  EXPECT_EQ(body, "hello from the sandbox, uid=65534 path=/probe");
  EXPECT_TRUE(util::process_alive(w.pid));
}

TEST(NetnsSandboxTest, NoDirectConnectionLeavesTheNamespace) {
  IDP_REQUIRE_SANDBOX();
  HostListener loopback;
  std::string addr = host_address();
  std::unique_ptr<HostListener> outside;
  std::vector<std::string> targets = {"127.0.0.1:" + std::to_string(loopback.port())};
  if (!addr.empty()) {
    outside = std::make_unique<HostListener>(addr);
    targets.push_back(addr + ":" + std::to_string(outside->port()));
  }
  const std::string script = R"PY(
import json, socket, sys
for t in sys.argv[1:]:
    host, port = t.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, int(port)))
        r = "connected"
    except OSError as e:
        r = "failed errno=%s" % e.errno
    print(json.dumps({"name": t, "result": r}))
try:
    socket.getaddrinfo("example.com", 443)
    r = "resolved"
except OSError as e:
    r = "failed"
print(json.dumps({"name": "dns", "result": r}))
)PY";
  auto r = run_wrapper(wrapper_command(python_args(script, targets)));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto lines = json_lines(r.out);
  for (const auto& t : targets) {
    ASSERT_TRUE(lines.count(t)) << r.out;
    EXPECT_TRUE(util::starts_with(lines[t]["result"].get<std::string>(), "failed")) << t << ": " << lines[t];
  }
  ASSERT_TRUE(lines.count("dns")) << r.out;
  EXPECT_EQ(lines["dns"]["result"], "failed") << "no DNS inside the namespace";
  EXPECT_EQ(loopback.stop_and_count(), 0) << "the host's 127.0.0.1 was reached from the sandbox";
  if (outside) {
    EXPECT_EQ(outside->stop_and_count(), 0) << "the host's " << addr << " was reached from the sandbox";
  }
}

TEST(NetnsSandboxTest, EgressProxyLetsOnlyTheAllowlistOut) {
  IDP_REQUIRE_SANDBOX();
  HostListener allowed;
  HostListener denied;
  std::string y = std::to_string(allowed.port());
  std::string x = std::to_string(denied.port());
  const std::string script = R"PY(
import json, os, socket, sys
y, x = sys.argv[1], sys.argv[2]
proxy = os.environ["HTTPS_PROXY"]
port = int(proxy.rsplit(":", 1)[1])
def exchange(name, request, payload=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(65536)
        if not c:
            break
        data += c
    head, _, rest = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode()
    if payload and " 200 " in status:
        s.sendall(payload)
    while True:
        c = s.recv(65536)
        if not c:
            break
        rest += c
    s.close()
    print(json.dumps({"name": name, "status": status, "body": rest.decode()}))
exchange("connect_allowed", b"CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n\r\n" % (y.encode(), y.encode()), b"ping\n")
exchange("connect_denied", b"CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n" % x.encode(), b"ping\n")
exchange("connect_by_name", b"CONNECT localhost:%s HTTP/1.1\r\n\r\n" % x.encode(), b"ping\n")
exchange("get_allowed", b"GET http://127.0.0.1:%s/some/path?q=1 HTTP/1.1\r\nHost: evil.example\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n" % y.encode())
exchange("get_denied", b"GET http://127.0.0.1:%s/ HTTP/1.1\r\n\r\n" % x.encode())
print(json.dumps({"name": "env", "HTTPS_PROXY": proxy, "http_proxy": os.environ.get("http_proxy"),
                  "npm_config_https_proxy": os.environ.get("npm_config_https_proxy"), "NO_PROXY": os.environ.get("NO_PROXY")}))
)PY";
  NetnsArgs a = python_args(script, {y, x});
  // localhost:X is allowed by name, but a name that resolves to a loopback address is not
  // followed: only an IP literal in the allowlist reaches the host's own services.
  a.allow = {"127.0.0.1:" + y, "localhost:" + x, "*.example.org"};
  a.proxy_port = 3129;
  auto r = run_wrapper(wrapper_command(a));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto lines = json_lines(r.out);
  for (const char* name :
       {"connect_allowed", "connect_denied", "connect_by_name", "get_allowed", "get_denied", "env"}) {
    ASSERT_TRUE(lines.count(name)) << name << " missing; stdout: " << r.out << "\nstderr: " << r.err;
  }
  EXPECT_EQ(lines["connect_allowed"]["status"], "HTTP/1.1 200 Connection established");
  EXPECT_EQ(lines["connect_allowed"]["body"], "pong:ping\n") << "bytes flow both ways through the tunnel";

  EXPECT_EQ(lines["connect_denied"]["status"], "HTTP/1.1 403 Forbidden");
  std::string body = lines["connect_denied"]["body"];
  EXPECT_NE(body.find("\"127.0.0.1:" + x + "\" is not in the untrusted profile's egress allowlist"), std::string::npos)
      << body;
  EXPECT_NE(body.find("forks.egress_allow"), std::string::npos) << body;
  EXPECT_NE(r.err.find("egress to \"127.0.0.1:" + x + "\" denied"), std::string::npos) << r.err;

  EXPECT_EQ(lines["connect_by_name"]["status"], "HTTP/1.1 403 Forbidden");
  EXPECT_NE(lines["connect_by_name"]["body"].get<std::string>().find("resolves to a loopback"), std::string::npos)
      << lines["connect_by_name"];

  EXPECT_EQ(lines["get_allowed"]["status"], "HTTP/1.1 200 OK");
  std::string seen = lines["get_allowed"]["body"];
  EXPECT_TRUE(util::starts_with(seen, "GET /some/path?q=1 HTTP/1.1\r\n")) << seen;
  EXPECT_NE(seen.find("Host: 127.0.0.1:" + y + "\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Connection: close\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Accept: */*\r\n"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("evil.example"), std::string::npos) << "the Host is the target's: " << seen;
  EXPECT_EQ(seen.find("Proxy-Connection"), std::string::npos) << seen;

  EXPECT_EQ(lines["get_denied"]["status"], "HTTP/1.1 403 Forbidden");

  std::string proxy = "http://127.0.0.1:3129";
  EXPECT_EQ(lines["env"]["HTTPS_PROXY"], proxy);
  EXPECT_EQ(lines["env"]["http_proxy"], proxy);
  EXPECT_EQ(lines["env"]["npm_config_https_proxy"], proxy);
  EXPECT_EQ(lines["env"]["NO_PROXY"], "localhost,127.0.0.1");

  EXPECT_EQ(denied.stop_and_count(), 0) << "a denied host saw a connection";
  EXPECT_EQ(allowed.stop_and_count(), 2) << "the CONNECT and the GET";
}

TEST(NetnsSandboxTest, ForwardedPortReachesTheHostService) {
  IDP_REQUIRE_SANDBOX();
  HostListener db;
  const std::string script = R"PY(
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"ping\n")
data = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    data += c
print(data.decode(), end="")
)PY";
  NetnsArgs a = python_args(script, {std::to_string(db.port())});
  a.forward = {db.port()};
  auto r = run_wrapper(wrapper_command(a));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pong:ping\n");
  EXPECT_EQ(db.stop_and_count(), 1);
}

TEST(NetnsSandboxTest, RunsAsTheGivenUidAndTermEndsTheApp) {
  IDP_REQUIRE_SANDBOX();
  TempDir dir;
  const std::string script = R"PY(
import os, signal, sys
print("uid=%d gid=%d pid=%d" % (os.getuid(), os.getgid(), os.getpid()), flush=True)
while True:
    signal.pause()
)PY";
  RunningWrapper w(dir, wrapper_command(python_args(script)));
  ASSERT_TRUE(wait_until([&] { return w.out().find('\n') != std::string::npos; }, 20000)) << w.err();
  std::string line = w.out();
  EXPECT_TRUE(util::starts_with(line, "uid=65534 gid=65534 pid=")) << line;
  pid_t app = static_cast<pid_t>(std::atoi(line.substr(line.find("pid=") + 4).c_str()));
  ASSERT_GT(app, 0);
  EXPECT_TRUE(util::process_alive(app));
  ASSERT_EQ(::kill(w.pid, SIGTERM), 0);
  auto code = util::wait_child(w.pid, 20000);
  w.pid = 0;
  ASSERT_TRUE(code.has_value()) << "the wrapper did not exit after SIGTERM";
  EXPECT_EQ(*code, 128 + SIGTERM) << "the app was killed by the forwarded SIGTERM";
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(app); }, 10000));
  if (util::process_alive(app)) {
    ::kill(app, SIGKILL); // the test failed: leave nothing behind
  }
}

TEST(NetnsSandboxTest, AKilledWrapperTakesTheAppWithIt) {
  IDP_REQUIRE_SANDBOX();
  TempDir dir;
  const std::string script = R"PY(
import os, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("pid=%d" % os.getpid(), flush=True)
while True:
    signal.pause()
)PY";
  RunningWrapper w(dir, wrapper_command(python_args(script)));
  ASSERT_TRUE(wait_until([&] { return w.out().find('\n') != std::string::npos; }, 20000)) << w.err();
  pid_t app = static_cast<pid_t>(std::atoi(w.out().substr(4).c_str()));
  ASSERT_GT(app, 0);
  ASSERT_EQ(::kill(w.pid, SIGKILL), 0); // the wrapper alone, not its group
  EXPECT_EQ(util::wait_child(w.pid, 10000), 128 + SIGKILL);
  w.pid = 0;
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(app); }, 10000))
      << "the sandboxed app outlived its wrapper (it ignores SIGTERM; PR_SET_PDEATHSIG must SIGKILL it)";
  if (util::process_alive(app)) {
    ::kill(app, SIGKILL); // the test failed: leave nothing behind
  }
}

} // namespace
} // namespace idp::drivers::local

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "__netns") {
    return idp::drivers::local::run_netns(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
