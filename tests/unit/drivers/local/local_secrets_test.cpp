#include "drivers/local/local_secrets.hpp"

#include <gtest/gtest.h>

#include "util/strings.hpp"

namespace idp::drivers::local {
namespace {

SecretHooks fake_store(std::vector<std::string>* asked) {
  SecretHooks h;
  h.resolve = [asked](const std::string& repo, const std::string& name) -> Expected<std::string> {
    asked->push_back(repo + " " + name);
    if (name == "db-password") {
      return std::string("s3cr3t-store");
    }
    return make_error(ErrorCode::invalid_config,
                      "secret " + util::quote(name) + " is not available to repository " + util::quote(repo));
  };
  return h;
}

TEST(LocalSecretsTest, ResolvesStoreNamesForTheRepoAndWarnsForArns) {
  std::vector<std::string> asked;
  auto r =
      resolve_secrets({{"A", "db-password"}, {"C", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"}},
                      "/repos/app", fake_store(&asked));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->env.at("A"), "s3cr3t-store");
  EXPECT_FALSE(r->env.count("C"));
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("\"C\""), std::string::npos);
  EXPECT_EQ(asked, std::vector<std::string>{"/repos/app db-password"});
}

TEST(LocalSecretsTest, RefusalNamesTheVariableTheSecretAndTheRepo) {
  std::vector<std::string> asked;
  auto r = resolve_secrets({{"A", "other-team-key"}}, "/repos/b", fake_store(&asked));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  std::string msg = r.error().full_message();
  EXPECT_NE(msg.find("secret \"A\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"other-team-key\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"/repos/b\""), std::string::npos) << msg;
}

TEST(LocalSecretsTest, WithoutAStoreNamesAreRefused) {
  auto r = resolve_secrets({{"A", "db-password"}}, "/repos/a", SecretHooks{});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("no secret store"), std::string::npos);
}

TEST(LocalSecretsTest, EnvAndFileReferencesAreRefusedWithoutReadingThem) {
  ::setenv("IDP_TEST_SECRET_FROM_ENV", "s3cr3t-env", 1);
  std::vector<std::string> asked;
  for (const char* ref : {"env:IDP_TEST_SECRET_FROM_ENV", "file:/etc/hostname", "file:relative", "vault:thing"}) {
    auto r = resolve_secrets({{"A", ref}}, "/repos/a", fake_store(&asked));
    ASSERT_FALSE(r.has_value()) << ref;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
    EXPECT_EQ(r.error().message.find("s3cr3t"), std::string::npos);
    EXPECT_NE(r.error().message.find("expected the name of a secret in the server's secret store"), std::string::npos);
  }
  EXPECT_TRUE(asked.empty());
  EXPECT_TRUE(check_secret_references({{"B", "db-password"}, {"C", "arn:aws:ssm:x"}}).has_value());
  ::unsetenv("IDP_TEST_SECRET_FROM_ENV");
}

TEST(LocalSecretsTest, ValuesForRedactionSkipWhatDoesNotResolve) {
  std::vector<std::string> asked;
  auto v = secret_values({{"A", "db-password"}, {"B", "missing"}, {"C", "arn:aws:ssm:x"}}, "/r", fake_store(&asked));
  EXPECT_EQ(v, std::vector<std::string>{"s3cr3t-store"});
}

} // namespace
} // namespace idp::drivers::local
