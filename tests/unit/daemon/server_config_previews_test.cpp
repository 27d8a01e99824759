// The server config's `previews:` keys (issue 15): values, the default that follows
// github.oauth, per-repository overrides, and positioned errors.
#include "daemon/server_config.hpp"

#include <gtest/gtest.h>

namespace idp::daemon {
namespace {

std::string previews_errors_text(const std::vector<core::ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

TEST(ServerConfigPreviewsTest, DefaultFollowsSignIn) {
  ServerConfig cfg;
  EXPECT_EQ(cfg.preview_protect(), "none") << "no sign-in method: previews stay reachable";
  cfg.github_oauth.client_id = "abc";
  EXPECT_EQ(cfg.preview_protect(), "signin");
  cfg.previews.protect = "none";
  EXPECT_EQ(cfg.preview_protect(), "none") << "an explicit value wins";
}

TEST(ServerConfigPreviewsTest, KeysAndRepositoryOverridesAreRead) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(cfg,
                                         "previews:\n  protect: signin\n  allow_public: false\n"
                                         "repositories:\n"
                                         "  - url: /srv/docs\n    previews: {allow_public: true}\n"
                                         "  - url: /srv/app\n",
                                         "server.yml");
  ASSERT_TRUE(errors.empty()) << previews_errors_text(errors);
  EXPECT_EQ(cfg.preview_protect(), "signin");
  EXPECT_FALSE(cfg.previews.allow_public);
  ASSERT_EQ(cfg.repositories.size(), 2u);
  ASSERT_EQ(cfg.repository_previews.size(), 1u);
  EXPECT_EQ(cfg.repository_previews[0].repo_url, "/srv/docs");
  EXPECT_EQ(cfg.repository_previews[0].allow_public, std::optional<bool>(true));
  EXPECT_FALSE(cfg.repository_previews[0].protect.has_value());
}

TEST(ServerConfigPreviewsTest, BadValuesArePositioned) {
  ServerConfig cfg;
  auto errors = apply_server_config_file(cfg,
                                         "previews:\n  protect: sign-in\n  allow_public: maybe\n"
                                         "repositories:\n  - url: /srv/docs\n    previews: {protect: open}\n",
                                         "server.yml");
  std::string text = previews_errors_text(errors);
  ASSERT_EQ(errors.size(), 3u) << text;
  EXPECT_NE(text.find("server.yml:2:12: key \"previews.protect\": expected signin or none, got \"sign-in\" (did you "
                      "mean \"signin\"?)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("server.yml:3:17: key \"previews.allow_public\": expected true or false"), std::string::npos)
      << text;
  EXPECT_NE(text.find("key \"repositories[0].previews.protect\": expected signin or none, got \"open\""),
            std::string::npos)
      << text;
  EXPECT_TRUE(cfg.previews.protect.empty()) << "nothing applied";
}

} // namespace
} // namespace idp::daemon
