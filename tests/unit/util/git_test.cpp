// Issue 16: git failures say which git command failed on which repository and what git
// said, never the credentials of the url.
#include <gtest/gtest.h>

#include "support/test_support.hpp"
#include "util/git.hpp"

using namespace idp;

TEST(GitTest, RedactUrlHidesCredentialsOnly) {
  EXPECT_EQ(util::redact_url("https://user:s3cret@example.com/team/app.git"), "https://***@example.com/team/app.git");
  EXPECT_EQ(util::redact_url("https://x-access-token:ghs_abc@github.com/a/b"), "https://***@github.com/a/b");
  EXPECT_EQ(util::redact_url("https://example.com/team/app.git"), "https://example.com/team/app.git");
  EXPECT_EQ(util::redact_url("git@github.com:team/app.git"), "git@github.com:team/app.git");
  EXPECT_EQ(util::redact_url("/srv/git/app"), "/srv/git/app");
  EXPECT_EQ(util::redact_url("https://example.com/path@v2"), "https://example.com/path@v2");
}

TEST(GitTest, CloneFailureSaysGitCloneUrlFailedWithGitsMessage) {
  idp::testing::TempDir tmp("idp-git-test");
  std::string missing = tmp.sub("no-such-repo");
  util::GitMirror mirror(tmp.sub("cache"), missing);
  auto r = mirror.fetch(30000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
  EXPECT_EQ(r.error().message.rfind("git clone " + missing + " failed: fatal: ", 0), 0u) << r.error().message;
  EXPECT_EQ(r.error().message.find("git -c"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("exited with code"), std::string::npos) << r.error().message;
}

TEST(GitTest, FailuresNeverShowTheUrlsCredentials) {
  idp::testing::TempDir tmp("idp-git-test");
  // Nothing listens on port 1: git fails at once, and says so with the url.
  const std::string url = "http://deploy:s3cret-token@127.0.0.1:1/team/app.git";
  util::GitMirror mirror(tmp.sub("cache"), url);
  auto r = mirror.fetch(30000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("git clone http://***@127.0.0.1:1/team/app.git failed: ", 0), 0u)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("s3cret-token"), std::string::npos) << r.error().message;
  auto heads = util::git_ls_remote_heads(url, 30000);
  ASSERT_FALSE(heads.has_value());
  EXPECT_EQ(heads.error().message.rfind("git ls-remote http://***@127.0.0.1:1/team/app.git failed: ", 0), 0u)
      << heads.error().message;
  EXPECT_EQ(heads.error().message.find("s3cret-token"), std::string::npos) << heads.error().message;
}
