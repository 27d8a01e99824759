// The server's secret store (issue 9): scoping, sources, and values only ever sealed.
#include "engine/secret_store.hpp"

#include <cstdlib>
#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/secretbox.hpp"

namespace idp::engine {
namespace {

std::string secret_test_key() { return *util::derive_subkey(std::string(32, 'k'), "secrets1"); }

TEST(SecretStoreTest, RepoPatternsMatchUrlsPathsAndOwnerName) {
  EXPECT_TRUE(repo_matches("acme/shop", "https://github.com/acme/shop.git"));
  EXPECT_TRUE(repo_matches("acme/shop", "git@github.com:acme/shop.git"));
  EXPECT_TRUE(repo_matches("acme/*", "https://github.com/acme/shop"));
  EXPECT_TRUE(repo_matches("https://github.com/acme/shop", "https://github.com/acme/shop.git/"));
  EXPECT_TRUE(repo_matches("/srv/git/*", "/srv/git/shop"));
  EXPECT_TRUE(repo_matches("*", "/anything"));
  EXPECT_FALSE(repo_matches("acme/shop", "https://github.com/acme/shop-fork"));
  EXPECT_FALSE(repo_matches("acme/shop", "https://github.com/evil/acme/shop-x"));
  EXPECT_FALSE(repo_matches("acme/shop", "/srv/git/acme/shop")) << "owner/name is for URLs, not local paths";
  EXPECT_FALSE(repo_matches("/srv/git/a", "/srv/git/b"));
  EXPECT_FALSE(check_repo_pattern("https://user:token@github.com/acme/shop"));
  EXPECT_FALSE(check_repo_pattern("acme shop"));
  EXPECT_TRUE(check_repo_pattern("acme/shop"));
}

TEST(SecretStoreTest, ScopedSecretResolvesForItsRepoOnlyAndIsSealed) {
  idp::testing::InMemoryStore st;
  idp::testing::FakeClock clock;
  SecretStore secrets(st, secret_test_key(), {}, clock);
  ASSERT_TRUE(secrets.set("/repos/a", "db-password", "s3cr3t-for-a", "admin"));
  auto a = secrets.resolve("/repos/a", "db-password");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(*a, "s3cr3t-for-a");
  auto b = secrets.resolve("/repos/b", "db-password");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::invalid_config);
  EXPECT_NE(b.error().message.find("secret \"db-password\""), std::string::npos) << b.error().message;
  EXPECT_NE(b.error().message.find("repository \"/repos/b\""), std::string::npos) << b.error().message;
  EXPECT_EQ(b.error().message.find("s3cr3t"), std::string::npos);
  auto unknown = secrets.resolve("/repos/a", "nope");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("no secret \"nope\""), std::string::npos);
  // Stored only sealed; listed without a value.
  auto stored = st.list_secrets();
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->at(0).sealed.find("s3cr3t"), std::string::npos);
  auto listed = secrets.list(std::nullopt);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->at(0).repos, std::vector<std::string>{"/repos/a"});
  EXPECT_EQ(listed->at(0).updated_at, clock.now_ms());
  EXPECT_TRUE(secrets.list(std::string("/repos/b"))->empty());
  // Another key cannot open it.
  SecretStore other(st, *util::derive_subkey(std::string(32, 'x'), "secrets1"), {}, clock);
  auto wrong = other.resolve("/repos/a", "db-password");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ErrorCode::permanent);
}

TEST(SecretStoreTest, SpecificScopeWinsOverEveryRepository) {
  idp::testing::InMemoryStore st;
  idp::testing::FakeClock clock;
  SecretStore secrets(st, secret_test_key(), {}, clock);
  ASSERT_TRUE(secrets.set("", "api-key", "global-value", "admin"));
  ASSERT_TRUE(secrets.set("acme/shop", "api-key", "shop-value", "admin"));
  EXPECT_EQ(*secrets.resolve("https://github.com/acme/shop.git", "api-key"), "shop-value");
  EXPECT_EQ(*secrets.resolve("/repos/other", "api-key"), "global-value");
  ASSERT_TRUE(secrets.remove("acme/shop", "api-key"));
  EXPECT_EQ(*secrets.resolve("https://github.com/acme/shop.git", "api-key"), "global-value");
  EXPECT_EQ(secrets.remove("acme/shop", "api-key").error().code, ErrorCode::not_found);
}

TEST(SecretStoreTest, ConfiguredSecretsReadTheirSourceForTheirReposOnly) {
  idp::testing::InMemoryStore st;
  idp::testing::FakeClock clock;
  ::setenv("IDP_SECRET_STORE_TEST_VAR", "from-the-env", 1);
  idp::testing::TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("v"), "from-a-file\n"));
  SecretStore secrets(
      st, secret_test_key(),
      {{"env-one", "env:IDP_SECRET_STORE_TEST_VAR", {"acme/*"}}, {"file-one", "file:" + dir.sub("v"), {"/repos/a"}}},
      clock);
  EXPECT_EQ(*secrets.resolve("https://github.com/acme/x", "env-one"), "from-the-env");
  EXPECT_FALSE(secrets.resolve("https://github.com/other/x", "env-one"));
  EXPECT_EQ(*secrets.resolve("/repos/a", "file-one"), "from-a-file");
  EXPECT_FALSE(secrets.resolve("/repos/b", "file-one"));
  EXPECT_EQ(secrets.set("", "env-one", "x", "admin").error().code, ErrorCode::conflict);
  EXPECT_EQ(secrets.remove("", "env-one").error().code, ErrorCode::conflict);
  ::unsetenv("IDP_SECRET_STORE_TEST_VAR");
}

TEST(SecretStoreTest, BadNamesScopesAndValuesAreRefused) {
  idp::testing::InMemoryStore st;
  idp::testing::FakeClock clock;
  SecretStore secrets(st, secret_test_key(), {}, clock);
  for (const char* bad : {"", "env:X", "-x", "a b", "über"}) {
    auto r = secrets.set("", bad, "value", "admin");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  }
  EXPECT_FALSE(secrets.set("", "ok", "", "admin"));
  EXPECT_FALSE(secrets.set("https://u:p@host/a/b", "ok", "v", "admin"));
  EXPECT_TRUE(st.list_secrets()->empty());
}

TEST(SecretStoreTest, ValuesForAnEnvironmentAreThoseItsConfigNames) {
  idp::testing::InMemoryStore st;
  idp::testing::FakeClock clock;
  SecretStore secrets(st, secret_test_key(), {}, clock);
  ASSERT_TRUE(secrets.set("/repos/a", "db-password", "s3cr3t-for-a", "admin"));
  ASSERT_TRUE(secrets.set("", "unused", "not-named", "admin"));
  core::Environment env;
  env.repo = "/repos/a";
  env.config_json = R"({"secrets": {"DB_PASSWORD": "db-password", "AWS": "arn:aws:ssm:x", "GONE": "missing"}})";
  EXPECT_EQ(secrets.values_for(env), std::vector<std::string>{"s3cr3t-for-a"});
}

TEST(SecretStoreTest, MasterKeyIsCreatedOnceAndMalformedOnesRefused) {
  idp::testing::TempDir dir;
  auto k1 = load_secret_key(dir.sub("db/master.key"));
  ASSERT_TRUE(k1) << k1.error().message;
  auto k2 = load_secret_key(dir.sub("db/master.key"));
  ASSERT_TRUE(k2);
  EXPECT_EQ(*k1, *k2);
  ASSERT_TRUE(util::write_file_atomic(dir.sub("bad.key"), "not hex\n"));
  EXPECT_FALSE(load_secret_key(dir.sub("bad.key")));
}

} // namespace
} // namespace idp::engine
