// Issue 9, listeners and the home: webhooks on their own address, no plain HTTP API on
// the network by accident, files under the home private to the daemon's user.
#include <gtest/gtest.h>

#include <csignal>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

long status_of(const std::string& method, const std::string& url, const std::string& token = "",
               const std::string& body = "") {
  util::HttpRequest r;
  r.method = method;
  r.url = url;
  r.body = body;
  if (!body.empty()) {
    r.headers.emplace_back("Content-Type", "application/json");
  }
  if (!token.empty()) {
    r.headers.emplace_back("Authorization", "Bearer " + token);
  }
  auto resp = util::http_request(r);
  return resp ? resp->status : 0;
}

} // namespace

TEST(SecurityListenerTest, WebhookListenServesHooksAlone) {
  TempDir tmp("idp-sec-hooks");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "webhook_listen: 127.0.0.1:0\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  std::string hook_url = d.webhook_url();
  ASSERT_FALSE(hook_url.empty()) << util::read_file(d.home() + "/daemon.json").value_or("no daemon.json");
  std::string base = hook_url.substr(0, hook_url.size() - std::string("/hooks/github").size());
  ASSERT_NE(base, d.api_url()) << "a listener of its own";

  EXPECT_EQ(status_of("POST", hook_url, "", "{}"), 401) << "the hook answers there (unsigned: refused)";
  std::string admin = d.admin_token();
  EXPECT_EQ(status_of("GET", base + "/api/v1/environments", admin), 404);
  EXPECT_EQ(status_of("POST", base + "/api/v1/environments", admin, "{\"repo\":\"/x\",\"branch\":\"main\"}"), 404);
  EXPECT_EQ(status_of("GET", base + "/", admin), 404);
  EXPECT_EQ(status_of("GET", base + "/metrics", admin), 404);
  EXPECT_EQ(status_of("GET", d.api_url() + "/api/v1/environments", admin), 200) << "the API is where it was";
}

TEST(SecurityListenerTest, NonLoopbackListenWithoutTlsIsRefused) {
  TempDir tmp("idp-sec-listen");
  (void)util::ensure_dir(tmp.sub("home"));
  auto serve = [&](std::vector<std::string> extra) {
    util::Command c;
    c.argv = {idp_binary(), "serve", "--home", tmp.sub("home"), "--check-config"};
    c.argv.insert(c.argv.end(), extra.begin(), extra.end());
    auto r = util::run(c);
    return r ? *r : util::RunResult{};
  };
  auto refused = serve({"--listen", "0.0.0.0:8787"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--insecure-http"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("0.0.0.0:8787"), std::string::npos) << refused.err;
  EXPECT_EQ(serve({"--listen", "0.0.0.0:8787", "--insecure-http"}).exit_code, 0);
  EXPECT_EQ(serve({"--listen", "127.0.0.1:8787"}).exit_code, 0);
  EXPECT_EQ(serve({"--listen", "localhost:8787"}).exit_code, 0);
}

// Nothing the daemon writes under its home is readable by other users: not the state,
// the tokens, the git mirrors, nor an environment's files.
TEST(SecurityHomeTest, FilesUnderTheHomeArePrivate) {
  TempDir tmp("idp-sec-home");
  (void)util::ensure_dir(tmp.sub("home"));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/private");
  ASSERT_EQ(d.cli({"create", "--repo", repo.path(), "--branch", "feature/private"}).exit_code, 0) << d.log();
  std::vector<std::string> open_files = find_files(d.home(), [&](const std::filesystem::directory_entry& e) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || S_ISLNK(st.st_mode) || S_ISSOCK(st.st_mode)) {
      return false;
    }
    if (e.path().string() == d.home() + "/serve.out") {
      return false; // the test's own capture of the daemon's output
    }
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      return false; // git objects a local clone hard-linked from the test's repository
    }
    // A directory may carry search-only ACL entries (isolation: an environment's uid walks
    // down to its own directory), which show as group x; nothing may be readable or writable.
    return (st.st_mode & (S_ISDIR(st.st_mode) ? 066 : 077)) != 0;
  });
  EXPECT_TRUE(open_files.empty()) << open_files.size() << " readable by others, e.g. "
                                  << (open_files.empty() ? "" : open_files.front());
  for (const char* f : {"state.db", "admin.token", "daemon.json"}) {
    struct stat st {};
    ASSERT_EQ(::stat((d.home() + "/" + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 077, 0u) << f;
  }
}

// A repository URL with credentials is refused, through the API and in the server config,
// without the secret being echoed anywhere; nothing is stored.
// A repository URL with a credential ("https://user:token@host/…", as people paste them):
// the credential reaches git through askpass only, and nothing the server stores, shows or
// logs carries it; it survives a restart (a redeploy fetches again). The git server is a
// real smart-HTTP server (git http-backend) that answers 401 without the credential.
TEST(SecurityHomeTest, RepositoryUrlCredentialsReachGitOnlyThroughAskpass) {
  TempDir tmp("idp-sec-userinfo");
  (void)util::ensure_dir(tmp.sub("home"));
  (void)util::ensure_dir(tmp.sub("served"));
  const std::string secret = "ghp_s3cretS3cret";
  auto app = make_example_repo(tmp.sub("app"), "api-service", "main");
  BareRepo bare(tmp.sub("served/app.git"));
  bare.push(app, "main");

  util::Command server;
  server.argv = {"python3", IDP_GIT_HTTP_SERVER, tmp.sub("served"), "x-access-token", secret, tmp.sub("port")};
  util::SpawnOptions so;
  so.detach = false;
  so.stderr_fd = 2;
  auto server_pid = util::spawn(server, so);
  ASSERT_TRUE(server_pid.has_value()) << server_pid.error().message;
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      (void)util::wait_child(pid, 5000);
    }
  } reap{*server_pid};
  ASSERT_TRUE(wait_until([&] { return util::path_exists(tmp.sub("port")); }, 20000));
  std::string host = "127.0.0.1:" + util::read_file(tmp.sub("port")).value_or("0");
  std::string plain = "http://" + host + "/app.git";

  // Without the credential git gets a 401 (so the server really checks).
  auto anon = util::git_ls_remote_heads(plain, 20000);
  ASSERT_FALSE(anon.has_value());
  EXPECT_EQ(anon.error().message.find(secret), std::string::npos);

  DaemonProcess d(tmp.sub("home"));
  d.start();
  auto [status, created] =
      d.api("POST", "/api/v1/environments",
            json{{"repo", "http://x-access-token:" + secret + "@" + host + "/app.git"}, {"branch", "main"}}.dump());
  ASSERT_EQ(status, 202) << created.dump();
  EXPECT_EQ(created.dump().find(secret), std::string::npos) << created.dump();
  std::string name = created.value("name", "");
  ASSERT_TRUE(d.wait_phase(name, "ready", 120000)) << d.env(name).dump() << d.log();
  EXPECT_EQ(d.env(name).value("repo", ""), plain);
  EXPECT_NE(util::read_file(tmp.sub("port.log")).value_or("").find("200 /app.git/info/refs"), std::string::npos);

  // The credential file is private; restart and redeploy: the fetch still authenticates.
  struct stat st {};
  ASSERT_EQ(::stat(tmp.sub("home/git-credentials.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  d.stop();
  d.start();
  app.write_file("CHANGELOG.md", "second\n");
  std::string second = app.commit("second");
  bare.push(app, "main");
  auto redeploy = d.cli({"redeploy", name});
  EXPECT_EQ(redeploy.exit_code, 0) << redeploy.out << redeploy.err;
  ASSERT_TRUE(wait_until([&] { return d.env(name).value("commit", "") == second; }, 120000)) << d.env(name).dump();

  // Nothing the server keeps or shows carries the secret: API answers, events, the log,
  // the state store, the mirrors' git config, the checkout.
  auto [es, envs] = d.api("GET", "/api/v1/environments?all=true");
  EXPECT_EQ(envs.dump().find(secret), std::string::npos) << envs.dump();
  auto [vs, events] = d.api("GET", "/api/v1/events");
  EXPECT_EQ(events.dump().find(secret), std::string::npos) << events.dump();
  EXPECT_EQ(d.log().find(secret), std::string::npos) << "never logged";
  auto status_cli = d.cli({"status", name});
  EXPECT_EQ(status_cli.out.find(secret), std::string::npos) << status_cli.out;
  for (const auto& f : find_files(tmp.sub("home"), [](const std::filesystem::directory_entry& e) {
         return e.is_regular_file() && e.path().filename() != "git-credentials.json" &&
                e.file_size() < 64 * 1024 * 1024;
       })) {
    EXPECT_EQ(util::read_file(f).value_or("").find(secret), std::string::npos) << f;
  }

  // In the server config the same URL is accepted, and --show-config prints it stripped.
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "repositories:\n  - url: https://x-access-token:" +
                                                                 secret + "@github.com/acme/app.git\n"));
  util::Command show;
  show.argv = {idp_binary(), "serve", "--home", tmp.sub("home2"), "--config", tmp.sub("server.yml"), "--show-config"};
  auto shown = util::run(show);
  ASSERT_TRUE(shown);
  EXPECT_EQ(shown->exit_code, 0) << shown->err;
  EXPECT_NE(shown->out.find("https://github.com/acme/app.git"), std::string::npos) << shown->out;
  EXPECT_EQ(shown->out.find(secret), std::string::npos) << shown->out;
  EXPECT_EQ(shown->err.find(secret), std::string::npos) << shown->err;
}
