// Bad input gets a clear error, the right exit code or status, and changes nothing.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "store/sqlite/sqlite_store.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {
util::RunResult run_idp(const std::vector<std::string>& args, const std::string& cwd = "",
                        const std::map<std::string, std::string>& env = {}) {
  util::Command c;
  c.argv = {idp_binary()};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.cwd = cwd;
  c.env = {{"NO_COLOR", "1"}, {"IDP_SERVER", "http://127.0.0.1:9"}};
  c.env.insert(env.begin(), env.end());
  c.unset_env = {"IDP_TEMPLATES_PATH"};
  auto r = util::run(c);
  return r ? *r : util::RunResult{};
}
} // namespace

// Every file in tests/data/bad-configs: `idp config validate FILE` exits 1 and names
// file:line:col, the key and what was expected.
TEST(BadInputTest, ConfigValidateRejectsEveryBadFile) {
  std::string dir = source_dir() + "/tests/data/bad-configs";
  auto manifest = json::parse(*util::read_file(dir + "/expected.json"));
  ASSERT_GE(manifest.size(), 25u);
  for (const auto& c : manifest) {
    std::string file = dir + "/" + c["file"].get<std::string>();
    // A case may need a team's template (IDP_TEMPLATES_PATH, relative to the directory).
    std::map<std::string, std::string> env;
    if (c.contains("templates_path")) {
      env["IDP_TEMPLATES_PATH"] = dir + "/" + c["templates_path"].get<std::string>();
    }
    auto r = run_idp({"config", "validate", file}, "", env);
    EXPECT_EQ(r.exit_code, 1) << file;
    std::string want_pos =
        file + ":" + std::to_string(c["line"].get<int>()) + ":" + std::to_string(c["column"].get<int>()) + ": ";
    EXPECT_NE(r.err.find(want_pos), std::string::npos) << c["file"] << ": " << r.err;
    if (!c["key"].get<std::string>().empty()) {
      EXPECT_NE(r.err.find("key \"" + c["key"].get<std::string>() + "\""), std::string::npos) << r.err;
    }
    EXPECT_NE(r.err.find(c["message"].get<std::string>()), std::string::npos) << r.err;
    auto j = run_idp({"config", "validate", "--json", file}, "", env);
    EXPECT_EQ(j.exit_code, 1);
    auto parsed = json::parse(j.out, nullptr, false);
    ASSERT_TRUE(parsed.is_object()) << j.out;
    EXPECT_EQ(parsed["valid"], false);
    EXPECT_EQ(parsed["errors"][0]["line"], c["line"]) << c["file"] << ": " << j.out;
    // Every error of the file is reported, not the first one of a key.
    EXPECT_EQ(parsed["errors"].size(), c.value("errors", 1u)) << c["file"] << ": " << j.out;
  }
  auto good = run_idp({"config", "validate", source_dir() + "/examples/api-service/.idp/config.yml"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  auto missing = run_idp({"config", "validate", "/nonexistent/config.yml"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no config file at"), std::string::npos);
}

TEST(BadInputTest, CliUsageErrorsExitTwoWithoutContactingTheServer) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"create", "--repo", "x"}, "--branch is required"},
      {{"create", "--repo", "x", "--branch", "bad branch"}, "not a valid git branch name"},
      {{"create", "--repo", "x", "--branch", "a..b"}, "not a valid git branch name"},
      {{"create", "--repo", "x", "--branch", "ok", "--ttl", "2days"}, "expected a duration"},
      {{"create", "--repo", "x", "--branch", "ok", "--name", "Bad_Name"}, "environment name"},
      {{"create", "--repo", "x", "--branch", "ok", "--bogus"}, "bogus"},
      {{"extend", "env-a", "--ttl", "soon"}, "expected a duration"},
      {{"extend", "env-a"}, "--ttl is required"},
      {{"destroy", "env-a"}, "without --yes"},
      {{"logs", "env-a", "--since", "yesterday"}, "--since"},
      {{"creat"}, "did you mean \"create\""},
      {{"status"}, "name is required"},
  };
  for (const auto& c : cases) {
    auto r = run_idp(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << "usage errors never reach the server: " << r.err;
  }
}

// Numbers from the environment and from the state store are parsed, never thrown on or
// wrapped: IDP_WORKERS=-1 once asked for ULONG_MAX workers, an out-of-range port passed
// --check-config, a garbage stored router port aborted `idp serve` (exit 134).
TEST(BadInputTest, BadNumbersInServerSettingsAreClearErrors) {
  TempDir tmp("idp-badnumbers");
  std::string home = tmp.sub("home");
  ASSERT_TRUE(util::ensure_dir(home));
  auto serve = [&](const std::map<std::string, std::string>& env, std::vector<std::string> flags) {
    util::Command c;
    c.argv = {idp_binary(), "serve", "--home", home};
    c.argv.insert(c.argv.end(), flags.begin(), flags.end());
    c.env = env;
    c.env["NO_COLOR"] = "1";
    util::RunOptions o;
    o.timeout_ms = 60000; // a daemon that started anyway is stopped and reported below
    auto r = util::run(c, o);
    return r ? *r : util::RunResult{};
  };
  struct Case {
    std::map<std::string, std::string> env;
    std::string message;
  };
  std::vector<Case> cases = {
      {{{"IDP_WORKERS", "-1"}},
       "environment variable IDP_WORKERS: expected a number of workers from 1 to 256, got \"-1\""},
      {{{"IDP_WORKERS", "4x"}}, "IDP_WORKERS"},
      {{{"IDP_LISTEN", "127.0.0.1:99999"}},
       "environment variable IDP_LISTEN: expected an address like 127.0.0.1:8787 with a port from 0 to 65535, got "
       "\"127.0.0.1:99999\""},
      {{{"IDP_LISTEN", "127.0.0.1:99999999999"}}, "IDP_LISTEN"},
      {{{"IDP_ROUTER_PORT", "8080abc"}}, "IDP_ROUTER_PORT"},
  };
  for (const auto& c : cases) {
    auto r = serve(c.env, {"--check-config"});
    EXPECT_EQ(r.exit_code, 1) << c.env.begin()->second << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  auto flag = serve({}, {"--listen", "127.0.0.1:70000", "--check-config"});
  EXPECT_EQ(flag.exit_code, 1) << flag.out << flag.err;
  EXPECT_NE(flag.err.find("--listen: expected an address like 127.0.0.1:8787 with a port from 0 to 65535"),
            std::string::npos)
      << flag.err;

  {
    auto store = store::sqlite::SqliteStore::open(util::path_join(home, "state.db"));
    ASSERT_TRUE(store) << store.error().full_message();
    ASSERT_TRUE((*store)->set_setting("router_port", "garbage"));
  }
  auto r = serve({}, {"--listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_FALSE(r.timed_out) << "the daemon started with a garbage router port";
  EXPECT_NE(r.err.find("router port stored in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected a whole number from 1 to 65535, got \"garbage\""), std::string::npos) << r.err;
}

class BadInputServerTest : public ::testing::Test {
protected:
  BadInputServerTest() : tmp("idp-badinput") {
    (void)util::ensure_dir(tmp.sub("home"));
    daemon = std::make_unique<DaemonProcess>(tmp.sub("home"));
    daemon->start();
    repo = std::make_unique<GitRepo>(make_example_repo(tmp.sub("app"), "api-service", "feature/ok"));
  }
  TempDir tmp;
  std::unique_ptr<DaemonProcess> daemon;
  std::unique_ptr<GitRepo> repo;
};

TEST_F(BadInputServerTest, ApiAnswersClearErrorsAndCreatesNothing) {
  auto& d = *daemon;
  auto post = [&](const std::string& body) { return d.api("POST", "/api/v1/environments", body); };
  struct Case {
    std::string body;
    long status;
    std::string error;
    std::string message;
  };
  std::string repo_json = json(repo->path()).dump();
  std::vector<Case> cases = {
      {"{not json", 400, "invalid_json", "invalid JSON at byte"},
      {"[1,2]", 400, "invalid_json", "expected a JSON object"},
      {"\"text\"", 400, "invalid_json", "expected a JSON object"},
      {"{}", 400, "invalid_argument", "field \"repo\" is required"},
      {"{\"repo\": 7, \"branch\": \"b\"}", 400, "invalid_argument", "field \"repo\": expected a string"},
      {"{\"repo\": " + repo_json + "}", 400, "invalid_argument", "field \"branch\" is required"},
      {"{\"repo\": " + repo_json + ", \"branch\": \"bad branch\"}", 400, "invalid_argument", "invalid branch name"},
      {"{\"repo\": " + repo_json + ", \"branch\": \"feature/ok\", \"ttl\": \"2 days\"}", 400, "invalid_argument",
       "expected a duration"},
      {"{\"repo\": " + repo_json + ", \"branch\": \"feature/ok\", \"ttl\": \"90d\"}", 400, "invalid_argument",
       "longer than the maximum"},
      {"{\"repo\": " + repo_json + ", \"branch\": \"feature/ok\", \"name\": \"-x\"}", 400, "invalid_argument",
       "environment name"},
      {"{\"repo\": " + repo_json + ", \"branch\": \"feature/ok\", \"template\": \"api-servce\"}", 422, "invalid_config",
       "did you mean \"api-service\""},
      {"{\"repo\": \"-oProxyCommand=x\", \"branch\": \"main\"}", 400, "invalid_argument", "invalid repo"},
  };
  for (const auto& c : cases) {
    auto [status, body] = post(c.body);
    EXPECT_EQ(status, c.status) << c.body << " -> " << body.dump();
    ASSERT_TRUE(body.is_object()) << c.body;
    EXPECT_EQ(body["error"], c.error) << body.dump();
    EXPECT_NE(body["message"].get<std::string>().find(c.message), std::string::npos) << body.dump();
  }
  // Oversized body.
  auto [big_status, big_body] = post("{\"repo\": \"" + std::string(2 * 1024 * 1024, 'x') + "\", \"branch\": \"b\"}");
  EXPECT_EQ(big_status, 413);
  EXPECT_EQ(big_body["error"], "too_large");
  // Unknown environments.
  for (auto [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/environments/nope"},
                                                        {"DELETE", "/api/v1/environments/nope"},
                                                        {"GET", "/api/v1/environments/nope/logs"},
                                                        {"GET", "/api/v1/environments/nope/events"}}) {
    auto [status, body] = d.api(method, path);
    EXPECT_EQ(status, 404) << method << " " << path;
    EXPECT_EQ(body["error"], "not_found");
  }
  auto [ext_status, ext_body] = d.api("POST", "/api/v1/environments/nope/extend", "{\"ttl\": \"1d\"}");
  EXPECT_EQ(ext_status, 404);
  auto [nf_status, nf_body] = d.api("GET", "/api/v1/nothing-here");
  EXPECT_EQ(nf_status, 404);
  EXPECT_EQ(nf_body["error"], "not_found");
  auto [q_status, q_body] = d.api("GET", "/api/v1/environments?all=maybe");
  EXPECT_EQ(q_status, 400);

  // Nothing was created by any of it.
  auto [ls, list] = d.api("GET", "/api/v1/environments?all=true");
  EXPECT_EQ(ls, 200);
  EXPECT_TRUE(list["environments"].empty()) << list.dump();
  EXPECT_TRUE(d.home_processes().empty());

  // What needs the repository is checked by a worker after the answer (issue 10): a
  // missing branch fails the environment with the reason, and nothing runs.
  auto [ns, nb] = post("{\"repo\": " + repo_json + ", \"branch\": \"nope\"}");
  EXPECT_EQ(ns, 202) << nb.dump();
  ASSERT_TRUE(d.wait_phase("preview-nope", "failed", 60000)) << d.env("preview-nope").dump();
  EXPECT_NE(d.env("preview-nope").value("message", "").find("branch \"nope\" not found"), std::string::npos)
      << d.env("preview-nope").dump();
  EXPECT_TRUE(d.home_processes().empty());
}

// The config is read by a worker after the create is answered (issue 10): its errors, with
// their positions, become the environment's failed phase, which `idp create` prints (exit 1).
TEST_F(BadInputServerTest, InvalidRepoConfigFailsTheEnvironmentWithPositionsAndCliExitsOne) {
  auto& d = *daemon;
  repo->write_file(".idp/config.yml",
                   "template: api-service\ncpu: 256\nmemory: 4096\nlocal:\n  start: node server.js\n");
  repo->commit("bad memory");
  auto [status, body] =
      d.api("POST", "/api/v1/environments", json{{"repo", repo->path()}, {"branch", "feature/ok"}}.dump());
  EXPECT_EQ(status, 202) << body.dump();
  ASSERT_TRUE(d.wait_phase("preview-ok", "failed", 60000)) << d.env("preview-ok").dump();
  EXPECT_NE(d.env("preview-ok").value("message", "").find(".idp/config.yml:3:9: key \"memory\""), std::string::npos)
      << d.env("preview-ok").dump();
  auto r = d.cli({"create", "--repo", repo->path(), "--branch", "feature/ok", "--name", "bad-memory"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(".idp/config.yml:3:9"), std::string::npos) << r.err;
  auto unknown = d.cli({"status", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("not found"), std::string::npos) << unknown.err;
  // Without local.start the documented default `npm start` runs (issue 16, point 10); in a
  // repository without package.json it fails, and the message is npm's reason.
  repo->write_file(".idp/config.yml", "template: api-service\n");
  repo->commit("no start command");
  auto nostart = d.cli({"create", "--repo", repo->path(), "--branch", "feature/ok", "--name", "no-start"});
  EXPECT_EQ(nostart.exit_code, 1);
  EXPECT_NE(nostart.err.find("npm start"), std::string::npos) << nostart.err;
  EXPECT_NE(nostart.err.find("Could not read package.json"), std::string::npos) << nostart.err;
  auto gone = d.cli({"destroy", "no-start", "--yes"});
  EXPECT_EQ(gone.exit_code, 0) << gone.err;
  EXPECT_TRUE(d.home_processes().empty());
}

TEST_F(BadInputServerTest, DuplicateCreateIsConflict) {
  auto& d = *daemon;
  std::string body = json{{"repo", repo->path()}, {"branch", "feature/ok"}, {"name", "dup-env"}}.dump();
  auto [s1, b1] = d.api("POST", "/api/v1/environments", body);
  EXPECT_EQ(s1, 202) << b1.dump();
  auto [s2, b2] = d.api("POST", "/api/v1/environments", body);
  EXPECT_EQ(s2, 409);
  EXPECT_EQ(b2["error"], "already_exists");
  auto [ls, list] = d.api("GET", "/api/v1/environments?all=true");
  EXPECT_EQ(list["environments"].size(), 1u);
}
