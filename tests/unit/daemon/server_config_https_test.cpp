// The server config's `https:` key: values, defaults, and errors that name file:line:col,
// the key and what was expected.
#include "daemon/server_config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "util/fs.hpp"

namespace idp::daemon {
namespace {

std::vector<core::ConfigError> parse_https_config(ServerConfig& cfg, const std::string& text) {
  return apply_server_config_file(cfg, text, "server.yml");
}

std::string https_errors_text(const std::vector<core::ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

TEST(ServerConfigHttpsTest, OffByDefault) {
  ServerConfig cfg;
  ASSERT_TRUE(parse_https_config(cfg, "listen: 127.0.0.1:8787\n").empty());
  EXPECT_EQ(cfg.https.mode, "off");
  EXPECT_FALSE(cfg.https.on());
  EXPECT_EQ(cfg.https.port, 443);
}

TEST(ServerConfigHttpsTest, InternalAndAcmeAreRead) {
  ServerConfig internal;
  auto errors = parse_https_config(internal, "https: {mode: internal, port: 0}\n");
  ASSERT_TRUE(errors.empty()) << https_errors_text(errors);
  EXPECT_EQ(internal.https.mode, "internal");
  EXPECT_TRUE(internal.https.on());
  EXPECT_EQ(internal.https.port, 0);
  EXPECT_EQ(internal.origins["https.mode"], "server.yml");

  ServerConfig acme;
  errors =
      parse_https_config(acme, "https:\n  mode: acme\n  email: ops@example.com\n  ask: http://127.0.0.1:9000/ok\n");
  ASSERT_TRUE(errors.empty()) << https_errors_text(errors);
  EXPECT_EQ(acme.https.mode, "acme");
  EXPECT_EQ(acme.https.email, "ops@example.com");
  EXPECT_EQ(acme.https.ask, "http://127.0.0.1:9000/ok");

  ServerConfig off;
  errors = parse_https_config(off, "https: {mode: off}\n");
  ASSERT_TRUE(errors.empty()) << https_errors_text(errors);
  EXPECT_FALSE(off.https.on());
}

TEST(ServerConfigHttpsTest, BadModeNamesLineColumnAndTheAllowedValues) {
  ServerConfig cfg;
  auto errors = parse_https_config(cfg, "listen: 127.0.0.1:8787\nhttps:\n  mode: interal\n");
  ASSERT_EQ(errors.size(), 1u) << https_errors_text(errors);
  EXPECT_EQ(errors[0].to_string(),
            "server.yml:3:9: key \"https.mode\": expected off, internal or acme, got \"interal\" (did you mean "
            "\"internal\"?)");
  EXPECT_EQ(cfg.https.mode, "off") << "nothing applied";
}

TEST(ServerConfigHttpsTest, AcmeWithoutEmailIsAnError) {
  ServerConfig cfg;
  auto errors = parse_https_config(cfg, "https:\n  mode: acme\n");
  ASSERT_EQ(errors.size(), 1u) << https_errors_text(errors);
  EXPECT_EQ(errors[0].line, 2);
  EXPECT_EQ(errors[0].key, "https.email");
  EXPECT_NE(errors[0].message.find("required when mode is acme"), std::string::npos) << errors[0].message;
  EXPECT_EQ(cfg.https.mode, "off");
}

TEST(ServerConfigHttpsTest, BadValuesAndUnknownKeysAreErrors) {
  ServerConfig cfg;
  auto errors = parse_https_config(cfg, "https:\n  mode: acme\n  email: not-an-address\n  port: 70000\n  ask: "
                                        "127.0.0.1:9000\n  emial: x\n");
  std::string text = https_errors_text(errors);
  ASSERT_EQ(errors.size(), 4u) << text;
  EXPECT_NE(text.find("server.yml:3:10: key \"https.email\": expected an email address like ops@example.com, got "
                      "\"not-an-address\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("server.yml:4:9: key \"https.port\": expected a port number 0-65535, got \"70000\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("server.yml:5:8: key \"https.ask\": expected a URL"), std::string::npos) << text;
  EXPECT_NE(text.find("server.yml:6:3: key \"https.emial\": unknown key, did you mean \"https.email\"?"),
            std::string::npos)
      << text;

  ServerConfig scalar;
  errors = parse_https_config(scalar, "https: internal\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].to_string(), "server.yml:1:8: key \"https\": expected a map of settings, got \"internal\"");
}

TEST(ServerConfigHttpsTest, AcmeCaAndItsRootAreReadAndChecked) {
  char dir_template[] = "/tmp/idp-https-cfg.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string pem = dir + "/ca.pem";
  const std::string not_pem = dir + "/ca.txt";
  ASSERT_TRUE(util::write_file_atomic(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"));
  ASSERT_TRUE(util::write_file_atomic(not_pem, "hello\n"));

  ServerConfig acme;
  auto errors = parse_https_config(acme, "https:\n  mode: acme\n  email: ops@example.com\n  acme_ca: "
                                         "https://127.0.0.1:14000/dir\n  acme_ca_root: " +
                                             pem + "\n");
  ASSERT_TRUE(errors.empty()) << https_errors_text(errors);
  EXPECT_EQ(acme.https.acme_ca, "https://127.0.0.1:14000/dir");
  EXPECT_EQ(acme.https.acme_ca_root, pem);

  ServerConfig defaults;
  ASSERT_TRUE(parse_https_config(defaults, "https: {mode: acme, email: ops@example.com}\n").empty());
  EXPECT_EQ(defaults.https.acme_ca, "") << "Let's Encrypt, Caddy's default";
  EXPECT_EQ(defaults.https.acme_ca_root, "");

  ServerConfig bad;
  errors = parse_https_config(bad, "https:\n  mode: acme\n  email: ops@example.com\n  acme_ca: "
                                   "http://ca.example.com/dir\n  acme_ca_root: " +
                                       not_pem + "\n");
  std::string text = https_errors_text(errors);
  ASSERT_EQ(errors.size(), 2u) << text;
  EXPECT_NE(text.find("server.yml:4:12: key \"https.acme_ca\": expected an https:// ACME directory URL"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("server.yml:5:17: key \"https.acme_ca_root\": expected a PEM certificate file"),
            std::string::npos)
      << text;
  EXPECT_EQ(bad.https.mode, "off") << "nothing applied";

  ServerConfig missing;
  errors =
      parse_https_config(missing, "https: {mode: acme, email: ops@example.com, acme_ca_root: " + dir + "/none.pem}\n");
  ASSERT_EQ(errors.size(), 1u) << https_errors_text(errors);
  EXPECT_EQ(errors[0].key, "https.acme_ca_root");
  EXPECT_NE(errors[0].message.find("cannot read"), std::string::npos) << errors[0].message;

  ServerConfig internal;
  errors = parse_https_config(internal, "https:\n  mode: internal\n  acme_ca: https://127.0.0.1:14000/dir\n");
  ASSERT_EQ(errors.size(), 1u) << https_errors_text(errors);
  EXPECT_EQ(errors[0].to_string(), "server.yml:3:12: key \"https.acme_ca\": only with mode acme (mode is internal)");
  std::filesystem::remove_all(dir);
}

} // namespace
} // namespace idp::daemon
