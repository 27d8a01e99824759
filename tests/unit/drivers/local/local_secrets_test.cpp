#include "drivers/local/local_secrets.hpp"

#include <cstdlib>
#include <gtest/gtest.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;

TEST(LocalSecretsTest, ResolvesEnvAndFileAndWarnsForArns) {
  TempDir dir;
  ::setenv("IDP_TEST_SECRET_FROM_ENV", "s3cr3t-env", 1);
  ASSERT_TRUE(util::write_file_atomic(dir.sub("token"), "  s3cr3t-file\n"));
  auto r = resolve_secrets({{"A", "env:IDP_TEST_SECRET_FROM_ENV"},
                            {"B", "file:" + dir.sub("token")},
                            {"C", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf"}});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->env.at("A"), "s3cr3t-env");
  EXPECT_EQ(r->env.at("B"), "s3cr3t-file");
  EXPECT_FALSE(r->env.count("C"));
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("\"C\""), std::string::npos);
  EXPECT_EQ(r->warnings[0].find("secretsmanager"), std::string::npos) << "the reference is not repeated";
}

TEST(LocalSecretsTest, UnsetVariableIsPermanentAndDoesNotLeak) {
  ::unsetenv("IDP_TEST_SECRET_UNSET");
  auto r = resolve_secrets({{"A", "env:IDP_TEST_SECRET_UNSET"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_NE(r.error().message.find("IDP_TEST_SECRET_UNSET"), std::string::npos);
}

TEST(LocalSecretsTest, MissingFileIsPermanent) {
  auto r = resolve_secrets({{"A", "file:/nonexistent/secret"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
}

TEST(LocalSecretsTest, UnknownReferenceIsInvalidConfig) {
  auto r = check_secret_references({{"A", "vault:thing"}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_FALSE(check_secret_references({{"A", "file:relative"}}).has_value());
  EXPECT_TRUE(check_secret_references({{"A", "env:X"}, {"B", "file:/x"}, {"C", "arn:aws:ssm:x"}}).has_value());
}

} // namespace
} // namespace idp::drivers::local
