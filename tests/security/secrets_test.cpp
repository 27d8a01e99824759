// Issue 9, secrets: repository config names secrets of the server's store and nothing else
// (env:/file: are config errors with file:line:col), a secret scoped to one repository is
// refused to another, and after a whole create/logs/exec/destroy cycle no secret value is
// in the logs, events, API answers or the state store's files.
#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// An app that prints its secrets to stdout at start (what a careless app does) and serves
// /health, so the platform has every chance to copy them somewhere.
const char* k_leaky_app = R"js('use strict';
const http = require('http');
console.log('store secret is ' + process.env.APP_STORE_SECRET);
console.log('config secret is ' + process.env.APP_CONFIG_SECRET);
console.error('stderr too: ' + process.env.APP_STORE_SECRET);
http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'application/json'});
  res.end(JSON.stringify({status: 'ok'}));
}).listen(Number(process.env.PORT));
)js";

std::string leaky_config(const std::string& secrets_yaml) {
  return "template: api-service\nhealth_check_path: /health\nlocal:\n  start: \"node server.js\"\n" + secrets_yaml;
}

} // namespace

// Outside the anonymous namespace: unity builds (see tests/security/auth_test.cpp).
class SecuritySecretsTest : public ::testing::Test {
protected:
  SecuritySecretsTest() : tmp("idp-sec-secrets") {
    (void)util::ensure_dir(tmp.sub("home"));
    repo_a = std::make_unique<GitRepo>(tmp.sub("repo-a"));
    repo_b = std::make_unique<GitRepo>(tmp.sub("repo-b"));
    // The configured secret comes from the daemon's environment, for repo A only.
    config_value = "cfg-" + util::random_hex(12);
    ::setenv("IDP_SECRETS_TEST_CONFIG_VALUE", config_value.c_str(), 1);
    (void)util::write_file_atomic(tmp.sub("server.yml"),
                                  "secrets:\n  config-secret:\n    from: env:IDP_SECRETS_TEST_CONFIG_VALUE\n"
                                  "    repos: [\"" +
                                      repo_a->path() + "\"]\n");
    d = std::make_unique<DaemonProcess>(tmp.sub("home"), std::vector<std::string>{"--config", tmp.sub("server.yml")});
    d->start();
    ::unsetenv("IDP_SECRETS_TEST_CONFIG_VALUE");
  }

  void commit_app(GitRepo& repo, const std::string& config) {
    repo.write_file("server.js", k_leaky_app);
    repo.write_file(".idp/config.yml", config);
    repo.commit("app");
  }

  // Every place a value could end up, as text.
  std::string everything_the_server_tells(const std::string& env) {
    std::string all;
    for (const std::string& path : std::vector<std::string>{
             "/api/v1/environments?all=true", "/api/v1/environments/" + env, "/api/v1/environments/" + env + "/events",
             "/api/v1/events", "/api/v1/environments/" + env + "/logs", "/api/v1/secrets"}) {
      auto [status, body] = d->api("GET", path);
      all += path + " " + std::to_string(status) + " " + body.dump() + "\n";
    }
    for (const std::vector<std::string>& args : {std::vector<std::string>{"status", env},
                                                 {"status", env, "--json"},
                                                 {"events", env, "--json"},
                                                 {"logs", env},
                                                 {"list", "--all"},
                                                 {"secret", "list"}}) {
      auto r = d->cli(args);
      all += util::join(args, " ") + "\n" + r.out + r.err + "\n";
    }
    return all;
  }

  TempDir tmp;
  std::unique_ptr<GitRepo> repo_a;
  std::unique_ptr<GitRepo> repo_b;
  std::string config_value;
  std::unique_ptr<DaemonProcess> d;
};

// Must show 4a: env: and file: in .idp/config.yml are config errors with file:line:col,
// from `idp config validate` and from a create, which fails without reading anything.
TEST_F(SecuritySecretsTest, EnvAndFileReferencesInRepoConfigAreConfigErrors) {
  struct Case {
    std::string yaml;
    std::string branch;
    int line;
    std::string want;
  };
  const Case cases[] = {
      {"secrets:\n  T: env:IDP_GITHUB_TOKEN\n", "env-ref", 6, "env: references are not allowed in repository config"},
      {"secrets:\n  K: file:/etc/shadow\n", "file-ref", 6, "file: references are not allowed in repository config"},
  };
  commit_app(*repo_a, leaky_config(""));
  for (const auto& c : cases) {
    repo_a->checkout("main");
    repo_a->checkout_new_branch(c.branch);
    repo_a->write_file(".idp/config.yml", leaky_config(c.yaml));
    repo_a->commit(c.branch);
    std::string file = repo_a->path() + "/.idp/config.yml";
    auto v = d->cli({"config", "validate", file});
    EXPECT_EQ(v.exit_code, 1) << v.out << v.err;
    std::string pos = file + ":" + std::to_string(c.line) + ":3: key \"secrets\": ";
    EXPECT_NE(v.err.find(pos + "secret "), std::string::npos) << v.err;
    EXPECT_NE(v.err.find(c.want), std::string::npos) << v.err;
    EXPECT_NE(v.err.find("expected the name of a secret in the server's secret store"), std::string::npos) << v.err;

    auto r = d->cli({"create", "--repo", repo_a->path(), "--branch", c.branch, "--name", c.branch});
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(".idp/config.yml:" + std::to_string(c.line) + ":3: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
    auto env = d->env(c.branch);
    EXPECT_EQ(env.value("phase", ""), "failed") << env.dump();
    EXPECT_NE(env.value("message", "").find(c.want), std::string::npos) << env.dump();
  }
}

// Must show 4b: a store secret scoped to repository A is refused to repository B, naming
// the secret and the repository, never the value; A gets it.
TEST_F(SecuritySecretsTest, SecretScopedToOneRepoIsRefusedToAnother) {
  std::string value = "only-for-a-" + util::random_hex(12);
  auto set = d->cli({"secret", "set", "--repo", repo_a->path(), "team-a-key"}, value + "\n");
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  EXPECT_EQ(set.out.find(value), std::string::npos);

  commit_app(*repo_b, leaky_config("secrets:\n  APP_STORE_SECRET: team-a-key\n"));
  auto r = d->cli({"create", "--repo", repo_b->path(), "--branch", "main", "--name", "repo-b"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto env = d->env("repo-b");
  ASSERT_EQ(env.value("phase", ""), "failed") << env.dump();
  std::string why = env.value("message", "");
  EXPECT_NE(why.find("secret \"team-a-key\""), std::string::npos) << why;
  EXPECT_NE(why.find("not available to repository \"" + repo_b->path() + "\""), std::string::npos) << why;
  EXPECT_NE(r.err.find("not available to repository"), std::string::npos) << r.err;
  EXPECT_EQ((r.out + r.err + env.dump()).find(value), std::string::npos);

  // The configured secret is scoped to A too.
  commit_app(*repo_b, leaky_config("secrets:\n  APP_CONFIG_SECRET: config-secret\n"));
  auto r2 = d->cli({"create", "--repo", repo_b->path(), "--branch", "main", "--name", "repo-b2"});
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_NE(d->env("repo-b2").value("message", "").find("secret \"config-secret\""), std::string::npos)
      << d->env("repo-b2").dump();

  // Repository A gets both.
  commit_app(*repo_a, leaky_config("secrets:\n  APP_STORE_SECRET: team-a-key\n  APP_CONFIG_SECRET: config-secret\n"));
  auto ok = d->cli({"create", "--repo", repo_a->path(), "--branch", "main", "--name", "repo-a"});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  auto ex = d->api("POST", "/api/v1/environments/repo-a/exec", json{{"argv", {"printenv", "APP_STORE_SECRET"}}}.dump());
  ASSERT_EQ(ex.first, 200) << ex.second.dump();
  EXPECT_EQ(ex.second.value("stdout", ""), "***\n") << "the app has it; exec output shows it redacted";
}

// The CLI: a value comes from stdin (never argv), bad names are refused before any request,
// list shows names and scopes but no value, rm removes; only admins reach the routes.
TEST_F(SecuritySecretsTest, SecretCliSetListRmNeverShowValues) {
  std::string value = "cli-value-" + util::random_hex(12);
  auto bad = d->cli({"secret", "set", "env:X"}, value);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("secret name: expected"), std::string::npos) << bad.err;
  auto empty = d->cli({"secret", "set", "ok-name"}, "");
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_NE(empty.err.find("the value is empty"), std::string::npos) << empty.err;

  ASSERT_EQ(d->cli({"secret", "set", "shared-key"}, value + "\n").exit_code, 0);
  ASSERT_EQ(d->cli({"secret", "set", "--repo", "acme/shop", "shop-key"}, value).exit_code, 0);
  auto list = d->cli({"secret", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out.find(value), std::string::npos);
  auto listed = json::parse(list.out);
  std::map<std::string, json> by_name;
  for (const auto& s : listed) {
    by_name[s["name"].get<std::string>()] = s;
  }
  ASSERT_EQ(by_name.size(), 3u) << list.out;
  EXPECT_EQ(by_name["shared-key"]["repos"], json::array({"*"}));
  EXPECT_EQ(by_name["shop-key"]["repos"], json::array({"acme/shop"}));
  EXPECT_TRUE(by_name["shop-key"]["updated_at"].is_string());
  EXPECT_EQ(by_name["config-secret"]["source"], "config");
  auto for_shop = json::parse(d->cli({"secret", "list", "--repo", "https://github.com/acme/shop.git", "--json"}).out);
  EXPECT_EQ(for_shop.size(), 2u) << for_shop.dump() << ": shared-key and shop-key";

  // Admin only.
  auto [st, tok] = d->api("POST", "/api/v1/tokens", json{{"name", "dev"}, {"role", "developer"}}.dump());
  ASSERT_EQ(st, 201);
  EXPECT_EQ(d->api_as(tok["token"], "GET", "/api/v1/secrets").first, 403);
  EXPECT_EQ(d->api_as(tok["token"], "POST", "/api/v1/secrets/x", json{{"value", "abcd"}}.dump()).first, 403);

  ASSERT_EQ(d->cli({"secret", "rm", "--repo", "acme/shop", "shop-key"}).exit_code, 0);
  auto again = d->cli({"secret", "rm", "--repo", "acme/shop", "shop-key"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("not found"), std::string::npos) << again.err;
  EXPECT_EQ(d->cli({"secret", "rm", "config-secret"}).exit_code, 1) << "configured secrets live in the config";
  // Recorded, without the value.
  auto events = d->cli({"events", "--json"});
  EXPECT_NE(events.out.find("secret-set"), std::string::npos);
  EXPECT_EQ(events.out.find(value), std::string::npos);
}

// Must show 4c: a whole create/logs/exec/destroy cycle with secrets; no value anywhere.
TEST_F(SecuritySecretsTest, NoSecretValueInLogsEventsApiAnswersOrTheStore) {
  std::string store_value = "store-" + util::random_hex(12);
  ASSERT_EQ(d->cli({"secret", "set", "--repo", repo_a->path(), "store-secret"}, store_value).exit_code, 0);
  commit_app(*repo_a, leaky_config("secrets:\n  APP_STORE_SECRET: store-secret\n  APP_CONFIG_SECRET: config-secret\n"));
  auto created = d->cli({"create", "--repo", repo_a->path(), "--branch", "main", "--name", "leaky"});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err;

  // The app printed both values at start: the logs show *** in their place.
  std::string logs;
  for (int i = 0; i < 200 && logs.find("config secret is") == std::string::npos; ++i) {
    logs = d->cli({"logs", "leaky"}).out; // the app's first lines may still be on their way
  }
  EXPECT_NE(logs.find("store secret is ***"), std::string::npos) << logs;
  EXPECT_NE(logs.find("config secret is ***"), std::string::npos) << logs;
  EXPECT_NE(logs.find("stderr too: ***"), std::string::npos) << logs;

  // exec, one-shot and a session (the CLI streams), with the value as all of the output.
  auto one_shot =
      d->api("POST", "/api/v1/environments/leaky/exec", json{{"argv", {"printenv", "APP_STORE_SECRET"}}}.dump());
  ASSERT_EQ(one_shot.first, 200) << one_shot.second.dump();
  EXPECT_EQ(one_shot.second.value("stdout", ""), "***\n");
  auto session = d->cli({"exec", "leaky", "--", "printenv", "APP_CONFIG_SECRET"});
  EXPECT_EQ(session.exit_code, 0) << session.err;
  EXPECT_EQ(session.out, "***\n");
  // A value written in small pieces is still caught across the chunks.
  auto pieces = d->cli({"exec", "leaky", "--", "node", "-e",
                        "const v = process.env.APP_STORE_SECRET; let i = 0;"
                        "const t = setInterval(() => { process.stdout.write(v.slice(i, i + 3)); i += 3;"
                        " if (i >= v.length) { clearInterval(t); process.stdout.write('\\n'); } }, 1);"});
  EXPECT_EQ(pieces.out.find(store_value), std::string::npos) << pieces.out;

  std::string told = everything_the_server_tells("leaky");
  EXPECT_EQ(told.find(store_value), std::string::npos) << told;
  EXPECT_EQ(told.find(config_value), std::string::npos) << told;

  auto destroyed = d->cli({"destroy", "leaky", "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err;
  told = everything_the_server_tells("leaky");
  EXPECT_EQ(told.find(store_value), std::string::npos) << told;
  EXPECT_EQ(told.find(config_value), std::string::npos) << told;
  std::string daemon_log = d->log();
  EXPECT_EQ(daemon_log.find(store_value), std::string::npos);
  EXPECT_EQ(daemon_log.find(config_value), std::string::npos);
  d->stop();
  // The state store's files, byte for byte (the stored secret is sealed).
  for (const char* f : {"state.db", "state.db-wal"}) {
    auto bytes = util::read_file(util::path_join(tmp.sub("home"), f));
    if (!bytes) {
      continue; // no WAL left after a clean stop
    }
    EXPECT_EQ(bytes->find(store_value), std::string::npos) << f;
    EXPECT_EQ(bytes->find(config_value), std::string::npos) << f;
  }
}

// The server config's secrets: each needs from: env:/file: and the repositories allowed;
// mistakes are config errors with file:line:col from `idp serve --check-config`.
TEST_F(SecuritySecretsTest, ServerConfigSecretsAreChecked) {
  std::string file = tmp.sub("bad-server.yml");
  ASSERT_TRUE(util::write_file_atomic(file, "secrets:\n  db-password:\n    from: env:DB_PASSWORD\n"
                                            "  other:\n    from: literal-value\n    repos: [acme/shop]\n"));
  auto r = d->cli({"serve", "--check-config", "--config", file, "--home", tmp.sub("check-home")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(file + ":3:5: key \"secrets.db-password.repos\": required"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(file + ":5:11: key \"secrets.other.from\": expected env:VAR or file:/absolute/path"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("literal-value"), std::string::npos) << "it may be a value: not echoed";
}
