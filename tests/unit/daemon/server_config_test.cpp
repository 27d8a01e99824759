// The server config's option table: retention keys, environment aliases validated like
// file keys, text that is not UTF-8, and docs/configuration.md listing every key.
#include "daemon/server_config.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace idp::daemon {
namespace {

std::string server_config_errors_text(const std::vector<core::ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

// Sets environment variables for one test and restores them after.
class ScopedServerEnv {
public:
  explicit ScopedServerEnv(std::map<std::string, std::string> vars) : m_vars(std::move(vars)) {
    for (const auto& [k, v] : m_vars) {
      const char* old = std::getenv(k.c_str());
      m_old[k] = old ? std::optional<std::string>(old) : std::nullopt;
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedServerEnv() {
    for (const auto& [k, old] : m_old) {
      if (old) {
        ::setenv(k.c_str(), old->c_str(), 1);
      } else {
        ::unsetenv(k.c_str());
      }
    }
  }

private:
  std::map<std::string, std::string> m_vars;
  std::map<std::string, std::optional<std::string>> m_old;
};

TEST(ServerConfigTest, RetentionDefaultsAreTheEngines) {
  ServerConfig cfg;
  ASSERT_TRUE(apply_server_config_file(cfg, "listen: 127.0.0.1:8787\n", "server.yml").empty());
  EXPECT_EQ(cfg.engine.event_retention, 90LL * 86'400'000);
  EXPECT_EQ(cfg.engine.destroyed_retention, 30LL * 86'400'000);
  EXPECT_EQ(cfg.engine.mirror_retention, 7LL * 86'400'000);
  EXPECT_EQ(cfg.engine.retention_interval, 3'600'000);
}

TEST(ServerConfigTest, RetentionKeysReachTheEngineOptions) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(
      cfg, "retention:\n  events: 14d\n  destroyed: 0\n  mirrors: 2w\n  interval: 10m\n", "server.yml");
  ASSERT_TRUE(errors.empty()) << server_config_errors_text(errors);
  EXPECT_EQ(cfg.engine.event_retention, 14LL * 86'400'000);
  EXPECT_EQ(cfg.engine.destroyed_retention, 0) << "0 keeps them forever";
  EXPECT_EQ(cfg.engine.mirror_retention, 14LL * 86'400'000);
  EXPECT_EQ(cfg.engine.retention_interval, 600'000);
  EXPECT_EQ(cfg.origins["retention.events"], "server.yml");
  EXPECT_EQ(cfg.origins["retention.interval"], "server.yml");
}

TEST(ServerConfigTest, BadRetentionIsAPositionedErrorAndNothingIsApplied) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(
      cfg, "workers: 8\nretention:\n  events: 3 months\n  mirorrs: 1d\n  interval: -1h\n", "server.yml");
  ASSERT_EQ(errors.size(), 3u) << server_config_errors_text(errors);
  EXPECT_EQ(errors[0].to_string(), "server.yml:3:11: key \"retention.events\": expected a duration like 90d, or 0 to "
                                   "keep them forever, got \"3 months\"");
  EXPECT_EQ(errors[1].to_string(),
            "server.yml:4:3: key \"retention.mirorrs\": unknown key, did you mean \"retention.mirrors\"?");
  EXPECT_EQ(
      errors[2].to_string(),
      "server.yml:5:13: key \"retention.interval\": expected a duration like 1h, or 0 to never prune, got \"-1h\"");
  EXPECT_EQ(cfg.engine.workers, 4u) << "nothing of an invalid file is applied";
  EXPECT_EQ(cfg.engine.event_retention, 90LL * 86'400'000);
}

// forks.egress_cidrs: networks in CIDR notation (IPv4, IPv6); anything else, a host name
// included, is a positioned error and nothing is applied.
TEST(ServerConfigTest, ForkEgressCidrsAreNetworks) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(cfg, "forks:\n  egress_cidrs: [10.20.0.0/16, \"2001:db8::/32\"]\n", "s.yml");
  ASSERT_TRUE(errors.empty()) << server_config_errors_text(errors);
  EXPECT_EQ(cfg.untrusted.egress_cidrs, (std::vector<std::string>{"10.20.0.0/16", "2001:db8::/32"}));
  for (const char* bad : {"registry.npmjs.org", "10.0.0.0/33", "10.0.0.0", "2001:db8::/129", "10.0.0.0/x"}) {
    ServerConfig c;
    auto e = apply_server_config_file(c, std::string("forks:\n  egress_cidrs: [\"") + bad + "\"]\n", "s.yml");
    ASSERT_EQ(e.size(), 1u) << bad;
    EXPECT_EQ(e[0].to_string(), std::string("s.yml:2:17: key \"forks.egress_cidrs\": expected networks in CIDR "
                                            "notation like 10.0.0.0/16 or 2001:db8::/32, got \"") +
                                    bad + "\"");
    EXPECT_TRUE(c.untrusted.egress_cidrs.empty());
  }
}

// budgets: each entry's keys checked, name and monthly required, names unique; teams:
// one team per member.
TEST(ServerConfigTest, BudgetsAndTeamsAreCheckedWithPositions) {
  ServerConfig cfg;
  auto ok =
      apply_server_config_file(cfg,
                               "teams:\n  payments:\n    members: [alice, bob]\n"
                               "budgets:\n  - name: payments\n    match: {team: payments}\n    monthly: 200\n"
                               "    alert_at: [50, 80]\n    notify: [{webhook: \"https://hooks.example.com/x\"}]\n"
                               "    on_exhausted: block\n",
                               "s.yml");
  ASSERT_TRUE(ok.empty()) << server_config_errors_text(ok);
  ASSERT_EQ(cfg.budgets.size(), 1u);
  EXPECT_EQ(cfg.budgets[0].team, "payments");
  EXPECT_DOUBLE_EQ(cfg.budgets[0].monthly, 200);
  EXPECT_EQ(cfg.budgets[0].alert_at, (std::vector<int>{50, 80}));
  EXPECT_EQ(cfg.budgets[0].webhooks, std::vector<std::string>{"https://hooks.example.com/x"});
  EXPECT_EQ(cfg.budgets[0].on_exhausted, "block");
  EXPECT_EQ(cfg.team_of.at("bob"), "payments");

  ServerConfig bad;
  auto errors = apply_server_config_file(bad,
                                         "teams:\n  a:\n    members: [alice]\n  b:\n    members: [alice]\n"
                                         "budgets:\n  - name: x\n    monthly: 0\n    on_exhausted: nap\n"
                                         "  - monthly: 5\n    alert_at: [150%]\n  - name: x\n    monthly: 1\n",
                                         "s.yml");
  std::string text = server_config_errors_text(errors);
  EXPECT_NE(text.find("s.yml:5:14: key \"teams.b.members\": \"alice\" is already a member of team \"a\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("key \"budgets[0].monthly\": expected a limit above 0 like 200, got \"0\""), std::string::npos)
      << text;
  EXPECT_NE(text.find("key \"budgets[0].on_exhausted\": expected none, block, sleep or destroy_oldest, got \"nap\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("key \"budgets[1].name\": required: the budget's name"), std::string::npos) << text;
  EXPECT_NE(text.find("key \"budgets[1].alert_at\": expected percentages from 1 to 1000"), std::string::npos) << text;
  EXPECT_NE(text.find("another budget is called \"x\""), std::string::npos) << text;
  EXPECT_TRUE(bad.budgets.empty()) << "nothing of an invalid file is applied";
}

// cost.export: an s3:// URL with a bucket (the key is a prefix), a grouping and a format,
// each checked with its position; by or format without `to` is an error too.
TEST(ServerConfigTest, TheCostExportIsCheckedWithPositions) {
  ServerConfig cfg;
  auto ok = apply_server_config_file(
      cfg, "cost:\n  export:\n    to: \"s3://acme-costs/chargeback/\"\n    by: team\n    format: json\n", "s.yml");
  ASSERT_TRUE(ok.empty()) << server_config_errors_text(ok);
  EXPECT_TRUE(cfg.cost_export.enabled());
  EXPECT_EQ(cfg.cost_export.to.bucket, "acme-costs");
  EXPECT_EQ(cfg.cost_export.to.key, "chargeback/");
  EXPECT_EQ(cfg.cost_export.by, "team");
  EXPECT_EQ(cfg.cost_export.format, "json");
  ServerConfig defaults;
  EXPECT_FALSE(defaults.cost_export.enabled());
  EXPECT_EQ(defaults.cost_export.format, "csv");

  ServerConfig bad;
  auto errors = apply_server_config_file(
      bad, "cost:\n  export:\n    to: \"https://acme-costs/x/\"\n    by: planet\n    format: xlsx\n", "s.yml");
  std::string text = server_config_errors_text(errors);
  EXPECT_NE(text.find("s.yml:3:9: key \"cost.export.to\": expected an S3 URL like s3://bucket/prefix/, got "
                      "\"https://acme-costs/x/\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("s.yml:4:9: key \"cost.export.by\": expected team, owner, repo or template, got \"planet\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("s.yml:5:13: key \"cost.export.format\": expected csv or json, got \"xlsx\""), std::string::npos)
      << text;
  EXPECT_FALSE(bad.cost_export.enabled()) << "nothing of an invalid file is applied";

  ServerConfig no_bucket;
  text =
      server_config_errors_text(apply_server_config_file(no_bucket, "cost:\n  export: {to: \"s3:///x/\"}\n", "s.yml"));
  EXPECT_NE(text.find("key \"cost.export.to\": no bucket in \"s3:///x/\""), std::string::npos) << text;
  ServerConfig no_to;
  text = server_config_errors_text(apply_server_config_file(no_to, "cost:\n  export:\n    by: team\n", "s.yml"));
  EXPECT_NE(text.find("s.yml:3:5: key \"cost.export.to\": required with cost.export: where to upload, like "
                      "s3://bucket/chargeback/"),
            std::string::npos)
      << text;
}

// notify: [{github_comment: true}] (issue 12) next to webhooks; a bad item or value is an
// error at its own position.
TEST(ServerConfigTest, BudgetNotifyTakesGithubCommentAndChecksEachItem) {
  ServerConfig cfg;
  auto ok =
      apply_server_config_file(cfg,
                               "budgets:\n  - name: payments\n    monthly: 200\n"
                               "    notify: [{github_comment: true}, {webhook: \"https://hooks.example.com/x\"}]\n"
                               "  - name: quiet\n    monthly: 5\n    notify:\n      - github_comment: \"false\"\n",
                               "s.yml");
  ASSERT_TRUE(ok.empty()) << server_config_errors_text(ok);
  ASSERT_EQ(cfg.budgets.size(), 2u);
  EXPECT_TRUE(cfg.budgets[0].github_comment);
  EXPECT_EQ(cfg.budgets[0].webhooks, std::vector<std::string>{"https://hooks.example.com/x"});
  EXPECT_FALSE(cfg.budgets[1].github_comment);
  EXPECT_TRUE(cfg.budgets[1].webhooks.empty());

  ServerConfig bad;
  auto errors = apply_server_config_file(bad,
                                         "budgets:\n  - name: a\n    monthly: 1\n    notify:\n"
                                         "      - github_comment: maybe\n"
                                         "      - {slack: \"#alerts\"}\n"
                                         "      - webhook: \"not a url\"\n"
                                         "  - name: b\n    monthly: 1\n    notify: {github_comment: true}\n",
                                         "s.yml");
  std::string text = server_config_errors_text(errors);
  EXPECT_NE(text.find("s.yml:5:25: key \"budgets[0].notify[0].github_comment\": expected true or false, got "
                      "\"maybe\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("s.yml:6:9: key \"budgets[0].notify[1]\": expected {webhook: https://...} or "
                      "{github_comment: true}, got a map"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("s.yml:7:18: key \"budgets[0].notify[2].webhook\": "), std::string::npos) << text;
  EXPECT_NE(text.find("s.yml:10:13: key \"budgets[1].notify\": expected a list like"), std::string::npos) << text;
  EXPECT_TRUE(bad.budgets.empty()) << "nothing of an invalid file is applied";
}

TEST(ServerConfigTest, EnvironmentAliasesAreCheckedLikeTheFilesKeys) {
  {
    ScopedServerEnv env({{"IDP_RETENTION_EVENTS", "30d"}, {"IDP_WORKERS", "12"}});
    ServerConfig cfg;
    ASSERT_TRUE(apply_server_env(cfg));
    EXPECT_EQ(cfg.engine.event_retention, 30LL * 86'400'000);
    EXPECT_EQ(cfg.engine.workers, 12u);
    EXPECT_EQ(cfg.origins["retention.events"], "env IDP_RETENTION_EVENTS");
  }
  struct Case {
    const char* var;
    const char* value;
    const char* file;
  };
  // Each variable's error is its key's, naming the variable: the same parser reads both.
  for (const Case& c :
       {Case{"IDP_RETENTION_EVENTS", "forever", "retention:\n  events: forever\n"},
        Case{"IDP_WORKERS", "-1", "workers: -1\n"}, Case{"IDP_MAX_STREAMS", "5000", "max_streams: 5000\n"},
        Case{"IDP_LISTEN", "127.0.0.1:99999", "listen: 127.0.0.1:99999\n"},
        Case{"IDP_DOMAIN", "Not A Domain", "router:\n  domain: Not A Domain\n"},
        Case{"IDP_TTL_MIN", "0m", "ttl:\n  min: 0m\n"}}) {
    ServerConfig file_cfg;
    auto errors = apply_server_config_file(file_cfg, c.file, "server.yml");
    ASSERT_EQ(errors.size(), 1u) << c.var << ": " << server_config_errors_text(errors);
    ScopedServerEnv env(std::map<std::string, std::string>{{c.var, c.value}});
    ServerConfig cfg;
    auto r = apply_server_env(cfg);
    ASSERT_FALSE(r) << c.var << " accepted " << c.value;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
    EXPECT_EQ(r.error().message, "environment variable " + std::string(c.var) + ": " + errors[0].message);
  }
}

TEST(ServerConfigTest, TextThatIsNotUtf8IsRefusedWithItsPosition) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(
      cfg, "workers: 8\ndrivers:\n  local:\n    \xfe\xff: 1\nrepositories:\n  - url: \"/srv/r\xe9po\"\n", "server.yml");
  std::string text = server_config_errors_text(errors);
  ASSERT_EQ(errors.size(), 2u) << text << "(a url left out is not also reported as missing)";
  EXPECT_EQ(errors[0].to_string(), "server.yml:4:5: key \"drivers.local\": the key \"\\xfe\\xff\" is not valid UTF-8");
  EXPECT_EQ(errors[1].to_string(), "server.yml:6:10: key \"repositories[0].url\": the value is not valid UTF-8");
  EXPECT_EQ(cfg.engine.workers, 4u) << "nothing applied";
  EXPECT_TRUE(cfg.repositories.empty());
}

TEST(ServerConfigTest, DocsListEveryKeyAndAlias) {
  std::ifstream in(testing::source_dir() + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md";
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string docs = buf.str();
  for (const auto& k : server_config_keys()) {
    EXPECT_NE(docs.find("`" + k.key + "`"), std::string::npos)
        << "docs/configuration.md does not list `" << k.key << "`";
    if (!k.env.empty()) {
      EXPECT_NE(docs.find("`" + k.env + "`"), std::string::npos)
          << "docs/configuration.md does not list `" << k.env << "`";
    }
  }
}

} // namespace
} // namespace idp::daemon
