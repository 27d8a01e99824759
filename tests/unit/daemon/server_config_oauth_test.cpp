// The server config's `github.oauth:` keys (Sign in with GitHub on the dashboard): values,
// the secret read from the environment, and errors that name the key and what was expected.
#include <cstdlib>

#include "daemon/server_config.hpp"

#include <gtest/gtest.h>

namespace idp::daemon {
namespace {

std::string oauth_errors_text(const std::vector<core::ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

TEST(ServerConfigOAuthTest, EveryKeyIsRead) {
  ::setenv("IDP_OAUTH_TEST_SECRET", "s3cr3t", 1);
  ServerConfig cfg;
  auto errors = apply_server_config_file(cfg,
                                         "github:\n"
                                         "  oauth:\n"
                                         "    client_id: abc\n"
                                         "    client_secret: env:IDP_OAUTH_TEST_SECRET\n"
                                         "    allowed_orgs: [acme, beta]\n"
                                         "    roles: {admin: [acme/ops], viewer: [acme]}\n"
                                         "    web_url: https://ghe.example.com/\n"
                                         "    api_url: https://ghe.example.com/api/v3\n",
                                         "server.yml");
  ASSERT_TRUE(errors.empty()) << oauth_errors_text(errors);
  EXPECT_TRUE(cfg.github_oauth.enabled());
  EXPECT_EQ(cfg.github_oauth.client_secret, "s3cr3t");
  EXPECT_EQ(cfg.github_oauth.allowed_orgs, (std::vector<std::string>{"acme", "beta"}));
  EXPECT_EQ(cfg.github_oauth.roles["admin"], (std::vector<std::string>{"acme/ops"}));
  EXPECT_EQ(cfg.github_oauth.web_url, "https://ghe.example.com");
  EXPECT_EQ(cfg.github_oauth.api_url, "https://ghe.example.com/api/v3");
}

TEST(ServerConfigOAuthTest, OffWithoutTheSection) {
  ServerConfig cfg;
  ASSERT_TRUE(apply_server_config_file(cfg, "listen: 127.0.0.1:8787\n", "server.yml").empty());
  EXPECT_FALSE(cfg.github_oauth.enabled());
  EXPECT_EQ(cfg.github_oauth.web_url, "https://github.com");
}

TEST(ServerConfigOAuthTest, MissingAllowedOrgsIsAnError) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(cfg, "github:\n  oauth: {client_id: abc, client_secret: x}\n", "server.yml");
  ASSERT_EQ(errors.size(), 1u) << oauth_errors_text(errors);
  EXPECT_EQ(errors[0].key, "github.oauth.allowed_orgs");
  EXPECT_NE(errors[0].message.find("allowed_orgs (the organisations whose members may sign in)"), std::string::npos)
      << errors[0].message;
  EXPECT_FALSE(cfg.github_oauth.enabled()) << "nothing applied";
}

TEST(ServerConfigOAuthTest, BadRoleAndEntryAreNamed) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(
      cfg, "github:\n  oauth: {client_id: a, client_secret: b, allowed_orgs: [acme], roles: {admn: [acme]}}\n",
      "server.yml");
  ASSERT_EQ(errors.size(), 1u) << oauth_errors_text(errors);
  EXPECT_NE(errors[0].message.find("got \"admn\" (did you mean \"admin\"?)"), std::string::npos) << errors[0].message;
  errors = apply_server_config_file(
      cfg, "github:\n  oauth: {client_id: a, client_secret: b, allowed_orgs: [acme], roles: {viewer: [a/b/c]}}\n",
      "server.yml");
  ASSERT_EQ(errors.size(), 1u) << oauth_errors_text(errors);
  EXPECT_NE(errors[0].message.find("expected an organisation like acme or a team like acme/dev, got \"a/b/c\""),
            std::string::npos)
      << errors[0].message;
}

} // namespace
} // namespace idp::daemon
