// Issue 16, point 5: failure messages name their cause. A build (`npm ci` without a
// lockfile) whose reason comes before ~90 lines of npm's help text, and an app that throws
// `Error: boom at startup`: `idp create`, `status` and `events` show the line that says why,
// and table cells hold one line. Real idp serve, real npm and node.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

class FailureCauseTest : public ::testing::Test {
protected:
  FailureCauseTest() : tmp("idp-failure-cause") { (void)util::ensure_dir(tmp.sub("home")); }

  // A repository with the api-service example and `config` as its .idp/config.yml, on `branch`.
  GitRepo repo_with(const std::string& config, const std::string& branch,
                    const std::vector<std::pair<std::string, std::string>>& files = {}) {
    GitRepo repo(tmp.sub("app-" + branch.substr(branch.find('/') + 1)));
    repo.copy_from(source_dir() + "/examples/api-service");
    repo.write_file(".idp/config.yml", config);
    for (const auto& [path, content] : files) {
      repo.write_file(path, content);
    }
    repo.commit("app");
    repo.checkout_new_branch(branch);
    return repo;
  }

  // The REASON cell of each phase event of `env` in `idp events`, and the whole output.
  static std::pair<std::vector<std::string>, std::string> event_reasons(const DaemonProcess& d,
                                                                        const std::string& env) {
    auto r = d.cli({"events", env});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> rows;
    for (const auto& line : util::split(r.out, '\n')) {
      if (line.find(env) != std::string::npos) {
        rows.push_back(line);
      }
    }
    return {rows, r.out};
  }

  TempDir tmp;
};

TEST_F(FailureCauseTest, BuildReasonBeforeAHelpTextIsShown) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = repo_with("template: api-service\nlocal:\n  build: \"npm ci\"\n  start: \"node server.js\"\n",
                           "feature/npm-ci", {{"package.json", "{\"name\": \"demo\", \"version\": \"1.0.0\"}\n"}});
  const std::string why = "can only install with an existing package-lock.json";
  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/npm-ci", "--timeout", "120s"});
  EXPECT_EQ(created.exit_code, 1);
  EXPECT_NE(created.err.find("local.build failed with exit code 1: npm error The `npm ci` command " + why),
            std::string::npos)
      << created.err;

  json env = d.env("preview-npm-ci");
  ASSERT_TRUE(env.is_object());
  std::string message = env.value("message", "");
  EXPECT_NE(util::split(message, '\n')[0].find(why), std::string::npos) << "the first line says why: " << message;
  EXPECT_EQ(message.find("--install-strategy"), std::string::npos) << "no help text in the reason: " << message;

  auto status = d.cli({"status", "preview-npm-ci"});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("message:     local.build failed with exit code 1: npm error The `npm ci` command " + why),
            std::string::npos)
      << status.out;

  auto [rows, out] = event_reasons(d, "preview-npm-ci");
  bool shown = false;
  for (const auto& row : rows) {
    shown = shown || row.find(why) != std::string::npos;
  }
  EXPECT_TRUE(shown) << "the events' reason names the cause:\n" << out;
  EXPECT_EQ(out.find("--install-strategy"), std::string::npos) << out;
}

TEST_F(FailureCauseTest, CrashingAppShowsItsErrorLine) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = repo_with("template: api-service\nlocal:\n  start: \"node crash.js\"\n", "feature/crash",
                           {{"crash.js", "console.log('starting the app');\n"
                                         "function load() { throw new Error('boom at startup'); }\n"
                                         "load();\n"}});
  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/crash", "--timeout", "120s"});
  EXPECT_EQ(created.exit_code, 1);
  const std::string reason = "the app exited with code 1 before its health check on / passed: "
                             "Error: boom at startup";
  EXPECT_NE(created.err.find(reason), std::string::npos) << created.err;

  json env = d.env("preview-crash");
  ASSERT_TRUE(env.is_object());
  EXPECT_EQ(util::split(env.value("message", ""), '\n')[0].find(reason), 0u) << env.value("message", "");
  EXPECT_EQ(env.value("message", "").find("    at "), std::string::npos) << "no stack frames";

  auto status = d.cli({"status", "preview-crash"});
  EXPECT_NE(status.out.find("message:     " + reason), std::string::npos) << status.out;
  auto [rows, out] = event_reasons(d, "preview-crash");
  bool shown = false;
  for (const auto& row : rows) {
    shown = shown || row.find(reason) != std::string::npos;
  }
  EXPECT_TRUE(shown) << out;
}

TEST_F(FailureCauseTest, TableCellsHoldOneLine) {
  DaemonProcess d(tmp.sub("home"));
  d.start();
  // A build that fails with an error line and a later failure line: a two-line reason.
  GitRepo repo = repo_with("template: api-service\nlocal:\n  build: \"sh build.sh\"\n  start: \"node server.js\"\n",
                           "feature/two-lines",
                           {{"build.sh", "echo 'error: config.json is missing'\necho 'still going'\n"
                                         "echo 'build failed after 1 step'\nexit 3\n"}});
  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/two-lines", "--timeout", "120s"});
  EXPECT_EQ(created.exit_code, 1);
  json env = d.env("preview-two-lines");
  std::string message = env.value("message", "");
  ASSERT_NE(message.find("local.build failed with exit code 3: error: config.json is missing"), std::string::npos)
      << message;
  ASSERT_NE(message.find("\nbuild failed after 1 step"), std::string::npos) << message;

  auto [rows, out] = event_reasons(d, "preview-two-lines");
  EXPECT_EQ(out.find("\nbuild failed after 1 step"), std::string::npos) << "one line per event row:\n" << out;
  bool cut = false;
  for (const auto& row : rows) {
    cut = cut || row.find("error: config.json is missing …") != std::string::npos;
  }
  EXPECT_TRUE(cut) << out;
  auto status = d.cli({"status", "preview-two-lines"});
  EXPECT_NE(status.out.find("\n             build failed after 1 step"), std::string::npos)
      << "status shows the whole reason, indented:\n"
      << status.out;
}
