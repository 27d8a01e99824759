// Issue 9, listeners and the home: webhooks on their own address, no plain HTTP API on
// the network by accident, files under the home private to the daemon's user.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
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
  auto info = json::parse(util::read_file(d.home() + "/daemon.json").value_or("{}"));
  std::string hook_url = info.value("webhook_url", "");
  ASSERT_FALSE(hook_url.empty()) << info.dump();
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
    return (st.st_mode & 077) != 0;
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
TEST(SecurityHomeTest, RepositoryUrlsWithCredentialsAreRefusedAndNeverEchoed) {
  TempDir tmp("idp-sec-userinfo");
  (void)util::ensure_dir(tmp.sub("home"));
  const std::string secret = "ghp_s3cretS3cret";
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "repositories:\n  - url: https://x-access-token:" + secret +
                                                                 "@github.com/acme/app.git\n"));
  util::Command check;
  check.argv = {idp_binary(), "serve", "--home", tmp.sub("home"), "--config", tmp.sub("server.yml"), "--check-config"};
  auto r = util::run(check);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_NE(r->err.find("credentials"), std::string::npos) << r->err;
  EXPECT_EQ(r->err.find(secret), std::string::npos) << r->err;

  DaemonProcess d(tmp.sub("home"));
  d.start();
  for (const std::string& url : {"https://alice:" + secret + "@example.invalid/app.git",
                                 "https://" + secret + "@example.invalid/app.git"}) {
    auto [status, body] = d.api("POST", "/api/v1/environments", json{{"repo", url}, {"branch", "main"}}.dump());
    EXPECT_EQ(status, 400) << body.dump();
    EXPECT_EQ(body.dump().find(secret), std::string::npos) << body.dump();
  }
  auto cli = d.cli({"create", "--repo", "https://bob:" + secret + "@example.invalid/app.git", "--branch", "main"});
  EXPECT_NE(cli.exit_code, 0);
  EXPECT_EQ(cli.err.find(secret), std::string::npos) << cli.err;
  auto [es, envs] = d.api("GET", "/api/v1/environments?all=true");
  EXPECT_TRUE(envs["environments"].empty()) << envs.dump();
  auto [vs, events] = d.api("GET", "/api/v1/events");
  EXPECT_EQ(events.dump().find(secret), std::string::npos) << events.dump();
  EXPECT_EQ(d.log().find(secret), std::string::npos) << "never logged";
}
