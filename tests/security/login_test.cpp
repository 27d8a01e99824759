// Issue 9, must-show 7: `idp login` stores a token in a Secret Service keyring
// (gnome-keyring in a private D-Bus session here) and the CLI works with it; without a bus
// it goes to a 0600 file with one warning; IDP_TOKEN overrides; the token never shows.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/interactive_process.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// A private session bus with no service activation (nothing starts behind the test's
// back), and an unlocked gnome-keyring on it. Everything it starts is stopped on destruction.
class LoginTestKeyring {
public:
  explicit LoginTestKeyring(std::string dir) : m_dir(std::move(dir)) {}
  ~LoginTestKeyring() {
    for (pid_t pid : {m_keyring_pid, m_bus_pid}) {
      if (pid > 0) {
        ::kill(pid, SIGTERM);
        if (!util::wait_child(pid, 5000)) {
          ::kill(pid, SIGKILL);
          (void)util::wait_child(pid, util::k_kill_wait_ms); // best effort: the test is over
        }
      }
    }
  }

  // "" when it started; else why not (for a skip or a failure message).
  std::string start() {
    for (const char* tool : {"dbus-daemon", "gnome-keyring-daemon", "secret-tool"}) {
      if (!util::find_executable(tool)) {
        return std::string(tool) + " not found (scripts/install-deps.sh installs it)";
      }
    }
    for (const char* d : {"", "/home", "/run", "/bus"}) {
      if (!util::ensure_dir(m_dir + d, 0700)) {
        return "cannot create " + m_dir + d;
      }
    }
    // The session bus config without <standard_session_servicedirs/>: a request to
    // org.freedesktop.secrets before our keyring owns it fails instead of activating another.
    std::string conf = m_dir + "/bus.conf";
    (void)util::write_file_atomic(conf,
                                  R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=)" + m_dir + R"(/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
)");
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return "pipe failed";
    }
    util::Command bus;
    bus.argv = {"dbus-daemon", "--config-file=" + conf, "--nofork", "--print-address=1"};
    util::SpawnOptions so;
    so.stdout_fd = fds[1];
    so.detach = false;
    auto pid = util::spawn(bus, so);
    ::close(fds[1]);
    if (!pid) {
      ::close(fds[0]);
      return "cannot start dbus-daemon: " + pid.error().message;
    }
    m_bus_pid = *pid;
    // dbus-daemon prints its address once it listens: read that line (bounded wait).
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      struct pollfd p {
        fds[0], POLLIN, 0
      };
      if (::poll(&p, 1, 1000) > 0) {
        char buf[512];
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) {
          break;
        }
        line.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(fds[0]);
    if (line.find('\n') == std::string::npos) {
      return "dbus-daemon printed no address: " + line;
    }
    m_address = util::trim(line.substr(0, line.find('\n')));

    // gnome-keyring headless: --unlock reads the login keyring's password on stdin (and
    // creates that keyring, unlocked, on first use).
    int in[2];
    if (::pipe2(in, O_CLOEXEC) != 0) {
      return "pipe failed";
    }
    util::Command gk;
    gk.argv = {"gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"};
    gk.env = env();
    util::SpawnOptions go;
    go.stdin_fd = in[0];
    go.detach = false;
    auto gpid = util::spawn(gk, go);
    ::close(in[0]);
    if (!gpid) {
      ::close(in[1]);
      return "cannot start gnome-keyring-daemon: " + gpid.error().message;
    }
    m_keyring_pid = *gpid;
    (void)util::write_without_sigpipe(in[1], "test-keyring-password");
    ::close(in[1]);
    // Ready once an item can be stored (before it owns its bus name, the call fails).
    util::RunResult probe;
    bool ready = wait_until(
        [&] {
          probe = secret_tool({"store", "--label=probe", "idp-login-test", "probe"}, "x");
          return probe.exit_code == 0;
        },
        30000, 100);
    return ready ? "" : "the keyring never accepted an item: " + probe.err;
  }

  // The environment that reaches this bus and keyring.
  std::map<std::string, std::string> env() const {
    return {{"DBUS_SESSION_BUS_ADDRESS", m_address},
            {"HOME", m_dir + "/home"},
            {"XDG_DATA_HOME", m_dir + "/home/.local/share"},
            {"XDG_RUNTIME_DIR", m_dir + "/run"}};
  }
  const std::string& address() const { return m_address; }

  util::RunResult secret_tool(const std::vector<std::string>& args, const std::string& stdin_data = "") const {
    util::Command c;
    c.argv = {"secret-tool"};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = env();
    util::RunOptions o;
    o.timeout_ms = 30000;
    if (!stdin_data.empty()) {
      o.stdin_data = stdin_data;
    }
    auto r = util::run(c, o);
    return r ? *r : util::RunResult{};
  }

private:
  std::string m_dir;
  std::string m_address;
  pid_t m_bus_pid = -1;
  pid_t m_keyring_pid = -1;
};

int login_test_mode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

size_t login_test_count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) {
    ++n;
  }
  return n;
}

} // namespace

// Outside the anonymous namespace: in a unity build the TEST_F classes deriving from it
// would otherwise trip -Wsubobject-linkage.
class SecurityLoginTest : public ::testing::Test {
protected:
  SecurityLoginTest() : tmp("idp-sec-login") {
    (void)util::ensure_dir(tmp.sub("home"));
    (void)util::ensure_dir(tmp.sub("user"));
    (void)util::ensure_dir(tmp.sub("elsewhere"));
    d = std::make_unique<DaemonProcess>(tmp.sub("home"));
    d->start();
  }

  ~SecurityLoginTest() override {
    // (d): whatever the CLI printed in this test, no token is in it.
    for (const auto& t : tokens) {
      EXPECT_EQ(printed.find(t), std::string::npos) << "a token appeared in the CLI's output:\n" << printed;
    }
  }

  std::string token(const std::string& name, const std::string& role) {
    auto [status, t] = d->api("POST", "/api/v1/tokens", json{{"name", name}, {"role", role}}.dump());
    EXPECT_EQ(status, 201) << t.dump();
    tokens.push_back(t.value("token", ""));
    return tokens.back();
  }

  // The CLI as a user of another machine would run it: its own HOME and XDG_CONFIG_HOME,
  // an IDP_HOME with no admin.token, no IDP_SERVER or IDP_TOKEN, and the session bus of
  // `keyring` (none when null).
  util::Command cli_command(const std::vector<std::string>& args, const LoginTestKeyring* keyring = nullptr,
                            const std::map<std::string, std::string>& extra = {}) const {
    util::Command c;
    c.argv = {idp_binary()};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.unset_env = {"IDP_TOKEN", "IDP_SERVER", "DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME"};
    c.env = {{"HOME", tmp.sub("user")},
             {"XDG_CONFIG_HOME", tmp.sub("user/.config")},
             {"IDP_HOME", tmp.sub("elsewhere")},
             {"NO_COLOR", "1"}};
    if (keyring) {
      c.env["DBUS_SESSION_BUS_ADDRESS"] = keyring->address();
    }
    for (const auto& [k, v] : extra) {
      c.env[k] = v;
    }
    return c;
  }

  util::RunResult idp(const std::vector<std::string>& args, const std::string& stdin_data = "",
                      const LoginTestKeyring* keyring = nullptr, const std::map<std::string, std::string>& extra = {}) {
    util::Command c = cli_command(args, keyring, extra);
    util::RunOptions o;
    o.timeout_ms = 60000;
    if (!stdin_data.empty()) {
      o.stdin_data = stdin_data;
    }
    auto r = util::run(c, o);
    if (!r) {
      ADD_FAILURE() << "cannot run idp: " << r.error().message;
      return {};
    }
    printed += r->out + r->err;
    return *r;
  }

  std::string config_dir() const { return tmp.sub("user/.config/idp"); }

  TempDir tmp;
  std::unique_ptr<DaemonProcess> d;
  std::vector<std::string> tokens;
  std::string printed;
};

// (a) With a Secret Service on the session bus the token goes to the keyring and nowhere
// else; `idp list` then works with nothing but the login; logout removes it.
TEST_F(SecurityLoginTest, LoginStoresTheTokenInTheKeyringAndTheCliUsesIt) {
  LoginTestKeyring keyring(tmp.sub("keyring"));
  std::string why = keyring.start();
  if (!why.empty()) {
    GTEST_SKIP() << why;
  }
  std::string alice = token("alice", "developer");
  std::string url = d->api_url();

  auto r = idp({"list", "--server", url}, "", &keyring);
  EXPECT_EQ(r.exit_code, 1) << "no token yet: " << r.out << r.err;

  r = idp({"login", "--server", url}, alice + "\n", &keyring);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "logged in to " + url + " as \"alice\" (developer)\n");
  EXPECT_EQ(r.err, "") << "no warning when the keyring takes the token";

  auto found = keyring.secret_tool({"lookup", "xdg:schema", "dev.mini-idp.token", "server", url});
  EXPECT_EQ(found.exit_code, 0) << found.err;
  EXPECT_EQ(found.out, alice) << "the keyring holds the token under server=URL";
  EXPECT_FALSE(util::path_exists(config_dir() + "/credentials")) << "no file copy of the token";
  for (const auto& f : find_files(tmp.sub("user"), [](const auto& e) { return e.is_regular_file(); })) {
    EXPECT_EQ(util::read_file(f).value_or("").find(alice), std::string::npos) << f << " holds the token";
  }

  // No --server, no IDP_SERVER, no IDP_TOKEN, no readable admin.token: the login is all.
  r = idp({"list", "--json"}, "", &keyring);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out, nullptr, false).is_array()) << r.out;

  // A stored token the server no longer accepts: 401 and what to do.
  auto [st, list] = d->api("GET", "/api/v1/tokens");
  ASSERT_EQ(st, 200);
  for (const auto& t : list["tokens"]) {
    if (t["name"] == "alice") {
      EXPECT_EQ(d->api("DELETE", "/api/v1/tokens/" + t["id"].get<std::string>()).first, 200);
    }
  }
  r = idp({"list"}, "", &keyring);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run 'idp login --server " + url + "'"), std::string::npos) << r.err;

  r = idp({"logout"}, "", &keyring);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "logged out of " + url + "\n");
  found = keyring.secret_tool({"lookup", "xdg:schema", "dev.mini-idp.token", "server", url});
  EXPECT_NE(found.exit_code, 0);
  EXPECT_EQ(found.out, "") << "logout removed the keyring item";

  r = idp({"list", "--server", url}, "", &keyring);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs an API token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("idp login --server " + url), std::string::npos) << r.err;
}

// (b) Without a session bus: a 0600 file in a 0700 directory, one warning line, and the
// CLI works with it; logout deletes it.
TEST_F(SecurityLoginTest, WithoutABusTheTokenGoesToAPrivateFileWithOneWarning) {
  std::string bob = token("bob", "viewer");
  std::string url = d->api_url();
  auto r = idp({"login", "--server", url + "/"}, bob);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "logged in to " + url + " as \"bob\" (viewer)\n");
  std::string file = config_dir() + "/credentials";
  EXPECT_EQ(login_test_count(r.err, "warning"), 1u) << r.err;
  EXPECT_EQ(login_test_count(r.err, "\n"), 1u) << "one line: " << r.err;
  EXPECT_NE(r.err.find("stored in the file " + file), std::string::npos) << r.err;
  EXPECT_EQ(login_test_mode(file), 0600);
  EXPECT_EQ(login_test_mode(config_dir()), 0700);
  EXPECT_NE(util::read_file(file).value_or("").find(bob), std::string::npos);

  r = idp({"list", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "") << "the warning is for login only";

  r = idp({"logout", "--server", url});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(util::path_exists(file));
  r = idp({"list", "--server", url});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("idp login --server " + url), std::string::npos) << r.err;
  r = idp({"logout", "--server", url});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "not logged in to " + url + ": nothing to remove\n");
}

// (c) IDP_TOKEN wins over a stored login, both ways: a bad one is refused although the
// stored one is good, and an admin one does what the stored viewer may not.
TEST_F(SecurityLoginTest, IdpTokenOverridesAStoredLogin) {
  std::string viewer = token("carol", "viewer");
  std::string url = d->api_url();
  ASSERT_EQ(idp({"login", "--server", url}, viewer).exit_code, 0);
  EXPECT_EQ(idp({"list"}).exit_code, 0);
  EXPECT_EQ(idp({"token", "list"}).exit_code, 1) << "a viewer may not list tokens";

  auto r = idp({"list"}, "", nullptr, {{"IDP_TOKEN", "idp_not_a_real_token"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("check IDP_TOKEN"), std::string::npos) << r.err;

  tokens.push_back(d->admin_token());
  r = idp({"token", "list"}, "", nullptr, {{"IDP_TOKEN", d->admin_token()}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("carol"), std::string::npos) << r.out;
}

// A token the server refuses is never stored, and the message does not repeat it.
TEST_F(SecurityLoginTest, ABadTokenIsRefusedAndNothingIsStored) {
  std::string bad = "idp_" + std::string(64, 'f');
  tokens.push_back(bad);
  auto r = idp({"login", "--server", d->api_url()}, bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("login to " + d->api_url()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not valid"), std::string::npos) << r.err;
  EXPECT_FALSE(util::path_exists(config_dir() + "/credentials"));
  EXPECT_FALSE(util::path_exists(config_dir() + "/config.json")) << "the server is not remembered either";

  r = idp({"login", "--server", d->api_url()}, "two words\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not one word"), std::string::npos) << r.err;
  r = idp({"login", "--server", d->api_url()}, "");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no token on stdin"), std::string::npos) << r.err;
  r = idp({"login", "--server", "idp.example.com"}, "idp_x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected a URL"), std::string::npos) << r.err;
}

// At a terminal the token is typed at a prompt that does not echo it.
TEST_F(SecurityLoginTest, ThePromptOnATerminalDoesNotEchoTheToken) {
  std::string dave = token("dave", "viewer");
  std::string url = d->api_url();
  util::InteractiveOptions io;
  io.tty = true;
  auto p = util::InteractiveProcess::start(cli_command({"login", "--server", url}), io);
  ASSERT_TRUE(p) << p.error().message;
  std::string screen;
  auto read_until = [&](const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done() && std::chrono::steady_clock::now() < deadline && !(*p)->output_done()) {
      for (const auto& chunk : (*p)->read(200)) {
        screen += chunk.data;
      }
    }
  };
  read_until([&] { return screen.find("token for " + url + ": ") != std::string::npos; });
  ASSERT_NE(screen.find("token for " + url + ": "), std::string::npos) << screen;
  ASSERT_TRUE((*p)->write_input(dave + "\n", 5000));
  read_until([] { return false; }); // everything, up to end of output
  // The terminal's end can be seen just before the exit is.
  std::optional<util::ExitStatus> status;
  wait_until([&] { return (status = (*p)->poll_exit()).has_value(); }, 30000);
  ASSERT_TRUE(status.has_value()) << screen;
  EXPECT_EQ(status->exit_code, 0) << screen;
  EXPECT_NE(screen.find("logged in to " + url + " as \"dave\" (viewer)"), std::string::npos) << screen;
  EXPECT_EQ(screen.find(dave), std::string::npos) << "the terminal echoed the token:\n" << screen;
}
