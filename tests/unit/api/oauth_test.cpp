// Sign in with GitHub's decisions (api/oauth.hpp): who may sign in and with which role,
// and the PKCE challenge. The whole flow runs in tests/browser against a GitHub double.
#include "api/oauth.hpp"

#include <gtest/gtest.h>

namespace idp::api {
namespace {

GitHubOAuthSettings acme_settings() {
  GitHubOAuthSettings s;
  s.client_id = "id";
  s.allowed_orgs = {"acme"};
  s.roles = {{"admin", {"acme/ops"}}, {"developer", {"acme/dev"}}, {"viewer", {"acme"}}};
  return s;
}

TEST(GitHubOAuthTest, PkceChallengeIsBase64UrlOfSha256WithoutPadding) {
  // The value Node computes: crypto.createHash('sha256').update('abc').digest('base64url').
  EXPECT_EQ(pkce_challenge("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

TEST(GitHubOAuthTest, HighestListedRoleWins) {
  auto d = github_role({"ann", {"acme"}, {"acme/dev", "acme/ops"}}, acme_settings());
  ASSERT_TRUE(d.role);
  EXPECT_EQ(*d.role, Role::admin);
  d = github_role({"dev", {"other", "ACME"}, {"acme/dev"}}, acme_settings());
  ASSERT_TRUE(d.role) << d.refusal;
  EXPECT_EQ(*d.role, Role::developer) << "org names compare without case";
  d = github_role({"vic", {"acme"}, {}}, acme_settings());
  ASSERT_TRUE(d.role);
  EXPECT_EQ(*d.role, Role::viewer);
}

TEST(GitHubOAuthTest, OutsideTheAllowedOrgsIsRefusedWithTheReason) {
  auto d = github_role({"mallory", {"evilcorp"}, {"evilcorp/dev"}}, acme_settings());
  EXPECT_FALSE(d.role);
  EXPECT_NE(d.refusal.find("\"mallory\" is a member of none of the organisations this server allows (acme)"),
            std::string::npos)
      << d.refusal;
}

TEST(GitHubOAuthTest, TeamsOfAnOrgThatIsNotAllowedGrantNothing) {
  GitHubOAuthSettings s = acme_settings();
  s.roles["admin"].push_back("evilcorp/ops");
  s.roles.erase("viewer");
  auto d = github_role({"eve", {"acme", "evilcorp"}, {"evilcorp/ops"}}, s);
  EXPECT_FALSE(d.role) << "evilcorp is not in allowed_orgs";
  EXPECT_NE(d.refusal.find("no organisation or team that github.oauth.roles gives a role to"), std::string::npos)
      << d.refusal;
}

} // namespace
} // namespace idp::api
