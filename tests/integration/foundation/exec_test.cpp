// Issue 16 point 7, `idp exec` like kubectl/docker exec: output streamed as it comes, stdin
// forwarded, -t for a terminal, --timeout, no command left running, and the same token and
// owner rules as every other route. Real idp serve, real CLI, real processes.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/interactive_process.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

// The idp CLI running against the test's daemon, its output read as it comes (on pipes,
// or on a terminal the test holds the other side of).
class ExecTestCli {
public:
  ExecTestCli(const DaemonProcess& d, std::vector<std::string> argv, bool tty = false) {
    util::Command c;
    c.argv = std::move(argv);
    c.env = {{"IDP_SERVER", d.api_url()}, {"NO_COLOR", "1"}, {"IDP_TOKEN", d.admin_token()}};
    util::InteractiveOptions o;
    o.tty = tty;
    o.rows = 30;
    o.cols = 90;
    auto p = util::InteractiveProcess::start(c, o);
    if (!p) {
      throw std::runtime_error("cannot start the idp CLI: " + p.error().message);
    }
    m_p = std::move(*p);
  }

  // Reads output until `text` has appeared on stdout (or the terminal), at most timeout_ms.
  bool read_until(const std::string& text, int64_t timeout_ms = 60000) {
    int64_t deadline = util::steady_ms() + timeout_ms;
    while (out.find(text) == std::string::npos) {
      if (util::steady_ms() >= deadline || (m_p->poll_exit() && m_p->output_done())) {
        return false;
      }
      pump(100);
    }
    return true;
  }
  // Reads output until it holds n lines.
  bool read_lines(size_t n, int64_t timeout_ms = 60000) {
    int64_t deadline = util::steady_ms() + timeout_ms;
    while (static_cast<size_t>(std::count(out.begin(), out.end(), '\n')) < n) {
      if (util::steady_ms() >= deadline || (m_p->poll_exit() && m_p->output_done())) {
        return false;
      }
      pump(100);
    }
    return true;
  }
  // Reads everything until the CLI exits; its exit code (128+N for signal N), -1 on timeout.
  int wait(int64_t timeout_ms = 120000) {
    int64_t deadline = util::steady_ms() + timeout_ms;
    while (!(m_p->poll_exit() && m_p->output_done())) {
      if (util::steady_ms() >= deadline) {
        return -1;
      }
      pump(100);
    }
    auto s = m_p->poll_exit();
    return s->exit_code >= 0 ? s->exit_code : 128 + s->signal;
  }
  bool running() { return !m_p->poll_exit(); }
  util::InteractiveProcess& process() { return *m_p; }
  void type(const std::string& keys) { ASSERT_TRUE(m_p->write_input(keys, 10000)) << "cannot type into the CLI"; }

  std::string out;
  std::string err;

private:
  void pump(int64_t ms) {
    for (auto& c : m_p->read(ms)) {
      (c.is_stderr ? err : out) += c.data;
    }
  }
  std::unique_ptr<util::InteractiveProcess> m_p;
};

// Outside the anonymous namespace: in a unity build the TEST_F classes deriving from it
// would otherwise trip -Wsubobject-linkage.
class ExecTest : public ::testing::Test {
protected:
  ExecTest() : tmp("idp-exec") {
    (void)util::ensure_dir(tmp.sub("home"));
    d = std::make_unique<DaemonProcess>(tmp.sub("home"));
    d->start();
    repo = std::make_unique<GitRepo>(make_example_repo(tmp.sub("app"), "api-service", "feature/exec"));
  }

  // Creates the environment of the example app and returns its name.
  std::string create_env() {
    auto created = d->cli({"create", "--repo", repo->path(), "--branch", "feature/exec"});
    EXPECT_EQ(created.exit_code, 0) << created.err << d->log();
    EXPECT_TRUE(d->env(env).is_object()) << "expected environment " << env;
    return env;
  }

  std::vector<std::string> exec_argv(std::vector<std::string> args) const {
    std::vector<std::string> v = {idp_binary(), "exec"};
    v.insert(v.end(), args.begin(), args.end());
    return v;
  }

  std::string token(const std::string& name, const std::string& role) {
    auto [status, t] = d->api("POST", "/api/v1/tokens", json{{"name", name}, {"role", role}}.dump());
    EXPECT_EQ(status, 201) << t.dump();
    return t.value("token", "");
  }

  static bool gone(pid_t pid) {
    return wait_until([pid] { return !util::process_alive(pid); }, 30000);
  }

  TempDir tmp;
  std::unique_ptr<DaemonProcess> d;
  std::unique_ptr<GitRepo> repo;
  std::string env = "preview-exec";
};

namespace {

pid_t first_pid(const std::string& text) {
  std::string line = util::trim(text.substr(0, text.find('\n')));
  return static_cast<pid_t>(std::atoi(line.c_str()));
}

} // namespace

// The command prints a line and then waits for the test, which answers only once it has
// read that line through the CLI: the output must arrive while the command still runs.
TEST_F(ExecTest, OutputArrivesWhileTheCommandRuns) {
  create_env();
  std::string fifo = tmp.shared("go.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(fifo.c_str(), 0666), 0); // the command runs as the environment's own uid
  ExecTestCli cli(
      *d, exec_argv({env, "--", "sh", "-c", "echo first; echo to-stderr >&2; read x < " + fifo + "; echo second:$x"}));
  ASSERT_TRUE(cli.read_until("first\n")) << "no output before the command ended: " << cli.out << cli.err;
  EXPECT_TRUE(cli.running());
  // The command is at `read x < fifo`: opening the write end succeeds once it has opened it.
  int fd = -1;
  ASSERT_TRUE(wait_until([&] { return (fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK)) >= 0; }, 30000));
  ASSERT_EQ(::write(fd, "go\n", 3), 3);
  ::close(fd);
  EXPECT_EQ(cli.wait(), 0) << cli.err;
  EXPECT_EQ(cli.out, "first\nsecond:go\n");
  EXPECT_EQ(cli.err, "to-stderr\n") << "stderr stays apart from stdout";
}

TEST_F(ExecTest, StdinIsForwardedAndTheExitCodeIsTheCommands) {
  create_env();
  auto cat = d->cli({"exec", env, "--", "cat"}, "x\n");
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_EQ(cat.out, "x\n") << "echo x | idp exec NAME -- cat";

  // More than one chunk, every byte value: what goes in comes out.
  std::string big;
  for (int i = 0; i < 300000; ++i) {
    big += static_cast<char>(i * 7 % 256);
  }
  auto wc = d->cli({"exec", env, "--", "wc", "-c"}, big);
  EXPECT_EQ(util::trim(wc.out), "300000") << wc.err;
  auto sum_in = d->cli({"exec", env, "--", "sha256sum"}, big);
  util::Command local;
  local.argv = {"sha256sum"};
  util::RunOptions ro;
  ro.stdin_data = big;
  EXPECT_EQ(sum_in.out, util::run(local, ro)->out);

  auto code = d->cli({"exec", env, "--", "sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(code.exit_code, 3);
  EXPECT_EQ(code.out, "out\n");
  EXPECT_EQ(code.err, "err\n");
  auto killed = d->cli({"exec", env, "--", "sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(killed.exit_code, 128 + SIGTERM) << killed.err;

  auto js = d->cli({"exec", "--json", env, "--", "sh", "-c", "cat; echo e >&2; exit 4"}, "in");
  EXPECT_EQ(js.exit_code, 4) << js.err;
  json j = json::parse(js.out, nullptr, false);
  EXPECT_EQ(j.value("stdout", ""), "in") << js.out;
  EXPECT_EQ(j.value("stderr", ""), "e\n");
  EXPECT_EQ(j.value("exit_code", 0), 4);

  // Never through a shell: the argument reaches the program as one argv element.
  auto literal = d->cli({"exec", env, "--", "printf", "%s|", "a b; echo injected", "$HOME"});
  EXPECT_EQ(literal.out, "a b; echo injected|$HOME|");
}

// --timeout stops the command and everything it started; the CLI says so and exits 124.
TEST_F(ExecTest, TimeoutStopsTheCommandAndWhatItStarted) {
  create_env();
  auto bad = d->cli({"exec", "--timeout", "soon", env, "--", "true"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--timeout: expected a duration"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("\"soon\""), std::string::npos) << bad.err;
  auto zero = d->cli({"exec", "--timeout", "0s", env, "--", "true"});
  EXPECT_EQ(zero.exit_code, 2) << zero.err;
  auto [st, body] = d->api("POST", "/api/v1/environments/" + env + "/exec/sessions",
                           json{{"argv", {"true"}}, {"timeout", "forever"}}.dump());
  EXPECT_EQ(st, 400) << body.dump();
  EXPECT_NE(body.value("message", "").find("timeout"), std::string::npos) << body.dump();

  ExecTestCli cli(
      *d, exec_argv({"--timeout", "2s", env, "--", "sh", "-c", "trap '' TERM; sleep 1000 & echo $!; echo $$; wait"}));
  ASSERT_TRUE(cli.read_lines(2)) << cli.out << cli.err;
  int code = cli.wait();
  EXPECT_EQ(code, 124) << cli.err;
  EXPECT_NE(cli.err.find("ran longer than --timeout 2s"), std::string::npos) << cli.err;
  pid_t background = first_pid(cli.out);
  pid_t shell = first_pid(cli.out.substr(cli.out.find('\n') + 1));
  ASSERT_GT(background, 0) << cli.out;
  ASSERT_GT(shell, 0) << cli.out;
  EXPECT_TRUE(gone(shell)) << "the command (it ignores TERM) is killed";
  EXPECT_TRUE(gone(background)) << "what it started in the background is killed too";
}

// A client that goes away (killed) takes its command with it.
TEST_F(ExecTest, ClientGoingAwayStopsTheCommand) {
  create_env();
  ExecTestCli cli(*d, exec_argv({"--timeout", "1h", env, "--", "sh", "-c", "echo $$; exec sleep 1000"}));
  ASSERT_TRUE(cli.read_until("\n")) << cli.err;
  pid_t command = first_pid(cli.out);
  ASSERT_GT(command, 0);
  ASSERT_TRUE(util::process_alive(command));
  cli.process().signal_group(SIGKILL);
  EXPECT_TRUE(gone(command)) << "the command of a client that went away still runs";
}

// -t: the command gets a terminal (the CLI's own runs in raw mode meanwhile, and gets its
// settings back at the end); ^C goes to the command, the size follows the CLI's terminal.
TEST_F(ExecTest, TtyGivesTheCommandATerminal) {
  create_env();
  auto no_tty = d->cli({"exec", "-t", env, "--", "true"});
  EXPECT_EQ(no_tty.exit_code, 2);
  EXPECT_NE(no_tty.err.find("-t needs a terminal"), std::string::npos) << no_tty.err;

  auto piped = d->cli({"exec", env, "--", "sh", "-c", "test -t 0 && echo tty || echo no-tty"});
  EXPECT_EQ(piped.out, "no-tty\n");

  {
    ExecTestCli cli(*d, exec_argv({"-t", env, "--", "sh", "-c", "test -t 0 && test -t 1 && tty; stty size"}), true);
    EXPECT_EQ(cli.wait(), 0) << cli.out;
    EXPECT_NE(cli.out.find("/dev/pts/"), std::string::npos) << cli.out;
    EXPECT_NE(cli.out.find("30 90"), std::string::npos) << "the size of the CLI's terminal: " << cli.out;
  }
  {
    // Typed keys reach the command; the remote terminal echoes and cooks them.
    ExecTestCli cli(*d, exec_argv({"-t", env, "--", "sh", "-c", "echo ready; read line; echo got:$line"}), true);
    ASSERT_TRUE(cli.read_until("ready")) << cli.out;
    cli.type("hello\r");
    EXPECT_EQ(cli.wait(), 0) << cli.out;
    EXPECT_NE(cli.out.find("got:hello"), std::string::npos) << cli.out;
  }
  {
    // ^C interrupts the command, not the CLI: the CLI exits with the command's 128+SIGINT.
    ExecTestCli cli(*d, exec_argv({"-t", env, "--", "sh", "-c", "echo $$; exec sleep 1000"}), true);
    ASSERT_TRUE(cli.read_until("\n")) << cli.out;
    pid_t command = first_pid(cli.out);
    cli.type("\x03");
    EXPECT_EQ(cli.wait(), 128 + SIGINT) << cli.out;
    EXPECT_TRUE(gone(command));
  }
  {
    // A resize of the CLI's terminal reaches the command's.
    ExecTestCli cli(*d, exec_argv({"-t", env, "--", "sh", "-c", "echo ready; while read x; do stty size; done"}), true);
    ASSERT_TRUE(cli.read_until("ready")) << cli.out;
    ASSERT_TRUE(cli.process().resize(33, 101));
    EXPECT_TRUE(wait_until(
        [&] {
          cli.type("\r");
          return cli.read_until("33 101", 500);
        },
        60000, 1))
        << cli.out;
    cli.type("\x04");
    EXPECT_EQ(cli.wait(), 0) << cli.out;
  }
  {
    // The CLI's terminal settings are the same after -t as before.
    ExecTestCli cli(
        *d, {"sh", "-c", "stty -g; echo; \"$0\" exec -t " + env + " -- true; echo; stty -g; echo end", idp_binary()},
        true);
    EXPECT_EQ(cli.wait(), 0) << cli.out;
    auto lines = util::split(cli.out, '\n');
    std::vector<std::string> settings;
    for (auto& l : lines) {
      std::string t = util::trim(l);
      if (t.find(':') != std::string::npos && t.size() > 20) {
        settings.push_back(t);
      }
    }
    ASSERT_EQ(settings.size(), 2u) << cli.out;
    EXPECT_EQ(settings[0], settings[1]) << "the terminal was not restored";
  }
}

// Exec sessions need a token, and the environment's owner (or an admin), on every route.
TEST_F(ExecTest, SessionsNeedATokenAndTheOwner) {
  std::string alice = token("alice", "developer");
  std::string bob = token("bob", "developer");
  std::string viewer = token("vera", "viewer");
  auto [created, cb] =
      d->api_as(alice, "POST", "/api/v1/environments", json{{"repo", repo->path()}, {"branch", "feature/exec"}}.dump());
  ASSERT_EQ(created, 202) << cb.dump(); // accepted: the clone and deploy run in the engine
  ASSERT_TRUE(d->wait_phase(env, "ready", 120000)) << d->env(env).dump();
  std::string sessions = "/api/v1/environments/" + env + "/exec/sessions";
  std::string start = json{{"argv", {"cat"}}}.dump();

  EXPECT_EQ(d->api_as("", "POST", sessions, start).first, 401);
  EXPECT_EQ(d->api_as(viewer, "POST", sessions, start).first, 403);
  auto [bs, bb] = d->api_as(bob, "POST", sessions, start);
  EXPECT_EQ(bs, 403) << bb.dump();
  EXPECT_NE(bb.value("message", "").find("alice"), std::string::npos) << bb.dump();
  EXPECT_EQ(d->api_as(alice, "POST", sessions, start, {{"Origin", "http://evil.example"}}).first, 403);

  auto [as, ab] = d->api_as(alice, "POST", sessions, start);
  ASSERT_EQ(as, 201) << ab.dump();
  std::string s = sessions + "/" + ab.value("id", "");
  std::string input = json{{"data", "eA=="}}.dump();
  for (const std::string& tok : {std::string(), bob, viewer}) {
    long want = tok.empty() ? 401 : 403;
    EXPECT_EQ(d->api_as(tok, "GET", s + "/stream").first, want) << tok;
    EXPECT_EQ(d->api_as(tok, "POST", s + "/stdin", input).first, want) << tok;
    EXPECT_EQ(d->api_as(tok, "POST", s + "/resize", json{{"rows", 5}, {"cols", 5}}.dump()).first, want) << tok;
    EXPECT_EQ(d->api_as(tok, "DELETE", s).first, want) << tok;
  }
  EXPECT_EQ(d->api_as(alice, "POST", s + "/stdin", input).first, 200);
  EXPECT_EQ(d->api_as(d->admin_token(), "POST", s + "/stdin", json{{"eof", true}}.dump()).first, 200);
  EXPECT_EQ(d->api_as(alice, "POST", s + "/stdin", json{{"data", "not base64!"}}.dump()).first, 400);
  EXPECT_EQ(d->api_as(alice, "DELETE", s).first, 200);
  EXPECT_EQ(d->api_as(alice, "DELETE", s).first, 404) << "a stopped session is gone";
}

// At most 16 exec sessions run at once on a server; the next is refused with a clear 503.
TEST_F(ExecTest, ConcurrentSessionsAreCapped) {
  create_env();
  std::string sessions = "/api/v1/environments/" + env + "/exec/sessions";
  std::string start = json{{"argv", {"sleep", "1000"}}}.dump();
  std::vector<std::string> ids;
  for (int i = 0; i < 16; ++i) {
    auto [st, b] = d->api("POST", sessions, start);
    ASSERT_EQ(st, 201) << i << " " << b.dump();
    ids.push_back(b.value("id", ""));
  }
  auto [full, fb] = d->api("POST", sessions, start);
  EXPECT_EQ(full, 503) << fb.dump();
  EXPECT_NE(fb.value("message", "").find("too many exec sessions"), std::string::npos) << fb.dump();
  for (const auto& id : ids) {
    EXPECT_EQ(d->api("DELETE", sessions + "/" + id).first, 200);
  }
  EXPECT_EQ(d->api("POST", sessions, start).first, 201) << "a slot is free again once a session ended";
}

// Stopping the server stops every exec command: the streamed ones and those nobody reads.
TEST_F(ExecTest, StoppingTheServerStopsEveryCommand) {
  create_env();
  ExecTestCli cli(*d, exec_argv({"--timeout", "1h", env, "--", "sh", "-c", "echo $$; exec sleep 1000"}));
  ASSERT_TRUE(cli.read_until("\n")) << cli.err;
  pid_t streamed = first_pid(cli.out);
  std::string pid_file = tmp.shared("unread.pid");
  auto [st, b] = d->api("POST", "/api/v1/environments/" + env + "/exec/sessions",
                        json{{"argv", {"sh", "-c", "echo $$ > " + pid_file + "; exec sleep 1000"}}}.dump());
  ASSERT_EQ(st, 201) << b.dump();
  ASSERT_TRUE(
      wait_until([&] { return util::read_file(pid_file).value_or("").find('\n') != std::string::npos; }, 30000));
  pid_t unread = first_pid(*util::read_file(pid_file));
  ASSERT_GT(streamed, 0);
  ASSERT_GT(unread, 0);
  ASSERT_TRUE(util::process_alive(unread));
  d->stop();
  EXPECT_TRUE(gone(streamed));
  EXPECT_TRUE(gone(unread));
  EXPECT_NE(cli.wait(), 0) << "the CLI reports the stop: " << cli.out << cli.err;
  EXPECT_NE(cli.err.find("server is stopping"), std::string::npos) << cli.err;
}
