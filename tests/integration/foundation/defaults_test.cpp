// Issue 16, point 10: a repository without .idp/config.yml runs with the documented
// defaults (docs/configuration.md), the server's default_template is validated, and a
// clone that fails says `git clone <url> failed: <git's message>`.
// Real idp serve, real git, real node and npm.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

class DefaultsTest : public ::testing::Test {
protected:
  DefaultsTest() : tmp("idp-defaults") { (void)util::ensure_dir(tmp.sub("home")); }
  TempDir tmp;
};

TEST_F(DefaultsTest, RepositoryWithoutConfigRunsWithTheDefaults) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  // The api-service app without its .idp/config.yml: npm start runs `node server.js`.
  GitRepo repo(tmp.sub("app"));
  repo.copy_from(source_dir() + "/examples/api-service");
  repo.remove_file(".idp/config.yml");
  repo.write_file("package.json", "{\"name\": \"no-config\", \"version\": \"1.0.0\"}\n");
  repo.commit("no idp config");
  repo.checkout_new_branch("feature/plain");
  ASSERT_FALSE(util::path_exists(repo.path() + "/.idp/config.yml"));

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/plain", "--timeout", "120s"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  json env = d.env("preview-plain");
  EXPECT_EQ(env["template"], "api-service");
  EXPECT_EQ(env["phase"], "ready");
  auto [status, body] = d.get_via_router("preview-plain", "/");
  EXPECT_EQ(status, 200) << body;
}

TEST_F(DefaultsTest, UnknownDefaultTemplateIsRefusedAtStart) {
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "default_template: api-servise\n").has_value());
  util::Command c;
  c.argv = {idp_binary(), "serve", "--home", tmp.sub("home"), "--config", tmp.sub("server.yml"), "--check-config"};
  c.unset_env = {"IDP_SERVER", "IDP_HOME"};
  auto r = util::run(c);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("default_template: "), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("api-servise"), std::string::npos) << r->err;
  EXPECT_NE(r->err.find("api-service"), std::string::npos) << "did you mean: " << r->err;

  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "default_template: static-site\n").has_value());
  c.argv.back() = "--show-config";
  auto shown = util::run(c);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->exit_code, 0) << shown->err;
  EXPECT_NE(shown->out.find(") default_template = static-site\n"), std::string::npos) << shown->out;
}

TEST_F(DefaultsTest, ServerDefaultTemplateAppliesToARepositoryWithoutConfig) {
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "default_template: static-site\n").has_value());
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  GitRepo repo(tmp.sub("site"));
  repo.write_file("index.html", "<h1>plain</h1>\n");
  repo.commit("a page");
  repo.checkout_new_branch("feature/site");
  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/site", "--timeout", "120s"});
  // The server's template applies (static-site requires static.dir, which no default
  // gives), not the built-in api-service.
  EXPECT_NE(created.exit_code, 0);
  EXPECT_NE(created.err.find("static.dir"), std::string::npos) << created.err;
  // With the directory named, it serves: the failed environment tracks the branch, so it
  // is redeployed at the new commit (what create's "already tracks" error says to run).
  repo.write_file(".idp/config.yml", "static:\n  dir: .\n");
  repo.commit("static.dir");
  auto again = d.cli({"redeploy", "preview-site", "--timeout", "120s"});
  ASSERT_EQ(again.exit_code, 0) << again.err << d.log();
  EXPECT_EQ(d.env("preview-site")["template"], "static-site");
}

TEST_F(DefaultsTest, CloneFailureNamesGitCloneAndGitsMessage) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  std::string missing = tmp.sub("no-such-repo");
  auto r = d.cli({"create", "--repo", missing, "--branch", "main"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("git clone " + missing + " failed: fatal: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("git -c"), std::string::npos) << r.err;
}
