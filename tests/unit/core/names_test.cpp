#include <gtest/gtest.h>

#include <regex>

#include "core/names.hpp"

using namespace idp::core;

namespace {
bool is_dns_label(const std::string& s) {
  static const std::regex k_re("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  return std::regex_match(s, k_re);
}
} // namespace

// The original's vectors (reference spec §5.2).
TEST(NamesTest, SanitizesLikeTheOriginal) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"feature/payment-api", "preview-payment-api"},
      {"bugfix/auth-token", "preview-auth-token"},
      {"hotfix/Critical_Issue", "preview-critical-issue"},
      {"HOTFIX/Critical_Issue", "preview-hotfix-critical-issue"},
      {"Feature/Foo", "preview-feature-foo"},
      {"release/v2.0", "preview-v2-0"},
      {"feature/fix/x", "preview-fix-x"},
      {"feature/--x--", "preview-x"},
      {"a_very_long_branch_name_that_exceeds_limits", "preview-a-very-long-branch-name"},
      {"feature/abcdefghijklmnopqrstuvw-xyz", "preview-abcdefghijklmnopqrstuvw"},
      {"dependabot/npm_and_yarn/lodash-4.17.21", "preview-dependabot-npm-and-yarn"},
      {"feat/\xc3\xbc"
       "n\xc3\xaf"
       "code",
       "preview-feat-n-code"},
  };
  for (const auto& [branch, want] : vectors) {
    EXPECT_EQ(env_name_for_branch(branch), want) << branch;
  }
}

// [DEFECT] fixed: "feature/" and "__" gave "preview-" in the original.
TEST(NamesTest, NeverEmptyNeverEndsInDash) {
  for (std::string b : {"feature/", "__", "-", "---", "///", "\xc3\xbc\xc3\xbc", "chore/__"}) {
    std::string n = env_name_for_branch(b);
    EXPECT_TRUE(is_dns_label(n)) << b << " -> " << n;
    EXPECT_GT(n.size(), std::string("preview-").size()) << b;
    EXPECT_NE(n.back(), '-') << b;
    EXPECT_LE(n.size(), 32u);
  }
  EXPECT_NE(env_name_for_branch("__"), env_name_for_branch("feature/")) << "different branches, different hashes";
}

TEST(NamesTest, AlwaysAValidDnsLabelOfAtMost32) {
  for (std::string b : {"$(touch pwned)", "a;b", "it's", "`id`", "x\ny", "UPPER/Case_Mixed.dots",
                        "very/long/branch/name/with/many/segments/and-more-and-more", "1.2.3"}) {
    std::string n = env_name_for_branch(b);
    EXPECT_TRUE(is_dns_label(n)) << b << " -> " << n;
    EXPECT_LE(n.size(), 32u);
  }
}

TEST(NamesTest, SuffixIsStableAndUnique) {
  std::string a = env_name_with_suffix("preview-foo", "repo-a\nfeature/foo");
  std::string b = env_name_with_suffix("preview-foo", "repo-a\nfoo");
  EXPECT_NE(a, b);
  EXPECT_EQ(a, env_name_with_suffix("preview-foo", "repo-a\nfeature/foo"));
  EXPECT_TRUE(is_dns_label(a));
  std::string long_name = env_name_with_suffix("preview-abcdefghijklmnopqrstuvw", "x");
  EXPECT_LE(long_name.size(), 32u);
  EXPECT_TRUE(is_dns_label(long_name));
  // The cut must not leave "--".
  std::string dash = env_name_with_suffix("preview-abcdefghijklmnopq-stuvwx", "y");
  EXPECT_EQ(dash.find("--"), std::string::npos) << dash;
}

TEST(NamesTest, ValidatesManualNames) {
  for (std::string ok : std::vector<std::string>{"ab", "a1", "my-env", "x--y", "0abc", std::string(32, 'a')}) {
    EXPECT_TRUE(validate_env_name(ok)) << ok;
  }
  for (std::string bad :
       std::vector<std::string>{"a", "", "-ab", "ab-", "Ab", "a_b", "a.b", "a b", std::string(33, 'a'), "ab\n"}) {
    auto r = validate_env_name(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, idp::ErrorCode::invalid_argument);
      EXPECT_NE(r.error().message.find("environment name"), std::string::npos);
    }
  }
}
