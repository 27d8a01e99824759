// Credentials: the file store's modes, the keychain-else-file choice, logout, and the
// precedence of tokens (IDP_TOKEN > stored login > admin.token), with a fake keychain.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "cli/credentials.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"

using namespace idp;
using namespace idp::cli;

namespace {

// A keychain in memory; `fail` makes every call fail as an unreachable Secret Service does.
class FakeKeychain : public CredentialStore {
public:
  explicit FakeKeychain(std::map<std::string, std::string>& items, bool fail = false) : m_items(items), m_fail(fail) {}
  std::string kind() const override { return "keychain"; }
  std::string describe() const override { return "the fake keyring"; }
  Expected<void> store(const std::string& server, const std::string& token) override {
    if (m_fail) {
      return make_error(ErrorCode::transient, "Secret Service: no such name");
    }
    m_items[server] = token;
    return {};
  }
  Expected<std::optional<std::string>> lookup(const std::string& server) override {
    if (m_fail) {
      return make_error(ErrorCode::transient, "Secret Service: no such name");
    }
    auto it = m_items.find(server);
    return it == m_items.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
  }
  Expected<bool> remove(const std::string& server) override {
    if (m_fail) {
      return make_error(ErrorCode::transient, "Secret Service: no such name");
    }
    return m_items.erase(server) > 0;
  }

private:
  std::map<std::string, std::string>& m_items;
  bool m_fail;
};

int mode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

const std::string k_server = "https://idp.example.com";
const std::string k_token = "idp_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

} // namespace

TEST(CredentialsTest, FileStoreKeepsTokensInAPrivateFileInAPrivateDirectory) {
  idp::testing::TempDir tmp("idp-creds");
  std::string dir = tmp.sub("config/idp");
  Credentials creds(dir, nullptr);
  ::umask(022); // the usual umask would make 0644/0755
  auto saved = creds.save(k_server, k_token);
  ASSERT_TRUE(saved) << saved.error().full_message();
  EXPECT_EQ(saved->kind, "file");
  EXPECT_TRUE(saved->keychain_problem.empty());
  EXPECT_EQ(mode_of(dir), 0700);
  EXPECT_EQ(mode_of(dir + "/credentials"), 0600);
  EXPECT_EQ(mode_of(dir + "/config.json"), 0600);
  EXPECT_EQ(util::read_file(dir + "/config.json")->find(k_token), std::string::npos) << "the state holds no token";

  auto found = creds.lookup(k_server);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->token, k_token);
  auto st = creds.state();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->default_server, k_server);
  EXPECT_EQ(st->logins.at(k_server), "file");
}

TEST(CredentialsTest, KeychainTakesTheTokenWhenItAnswersAndTheFileGetsNoCopy) {
  idp::testing::TempDir tmp("idp-creds");
  std::string dir = tmp.sub("idp");
  // An older login went to the file; the new one goes to the keyring and the file forgets it.
  ASSERT_TRUE(Credentials(dir, nullptr).save(k_server, "idp_old"));
  std::map<std::string, std::string> items;
  Credentials creds(dir, std::make_unique<FakeKeychain>(items));
  auto saved = creds.save(k_server, k_token);
  ASSERT_TRUE(saved) << saved.error().full_message();
  EXPECT_EQ(saved->kind, "keychain");
  EXPECT_EQ(items[k_server], k_token);
  EXPECT_FALSE(util::path_exists(dir + "/credentials")) << "no token left in the file";
  auto found = creds.lookup(k_server);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->token, k_token);
  EXPECT_EQ((*found)->where, "the fake keyring");
}

TEST(CredentialsTest, AFailingKeychainFallsBackToTheFileAndSaysWhy) {
  idp::testing::TempDir tmp("idp-creds");
  std::map<std::string, std::string> items;
  Credentials creds(tmp.sub("idp"), std::make_unique<FakeKeychain>(items, true));
  auto saved = creds.save(k_server, k_token);
  ASSERT_TRUE(saved) << saved.error().full_message();
  EXPECT_EQ(saved->kind, "file");
  EXPECT_NE(saved->keychain_problem.find("no such name"), std::string::npos) << saved->keychain_problem;
  EXPECT_EQ(mode_of(tmp.sub("idp/credentials")), 0600);
  auto found = creds.lookup(k_server);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->token, k_token);
}

TEST(CredentialsTest, ForgetRemovesTheTokenFromEveryStoreAndTheDefault) {
  idp::testing::TempDir tmp("idp-creds");
  std::map<std::string, std::string> items;
  Credentials creds(tmp.sub("idp"), std::make_unique<FakeKeychain>(items));
  ASSERT_TRUE(creds.save("http://other:8787", "idp_other"));
  ASSERT_TRUE(creds.save(k_server, k_token));
  auto removed = creds.forget(k_server);
  ASSERT_TRUE(removed) << removed.error().full_message();
  EXPECT_TRUE(*removed);
  EXPECT_EQ(items.count(k_server), 0u);
  EXPECT_EQ(items.count("http://other:8787"), 1u) << "other servers' logins stay";
  auto found = creds.lookup(k_server);
  ASSERT_TRUE(found);
  EXPECT_FALSE(*found);
  EXPECT_EQ(creds.state()->default_server, "");
  auto again = creds.forget(k_server);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again) << "a second logout finds nothing";
}

TEST(CredentialsTest, AKeychainLoginWithoutABusIsReportedNotSilentlyLost) {
  idp::testing::TempDir tmp("idp-creds");
  std::map<std::string, std::string> items;
  ASSERT_TRUE(Credentials(tmp.sub("idp"), std::make_unique<FakeKeychain>(items)).save(k_server, k_token));
  Credentials no_bus(tmp.sub("idp"), nullptr);
  auto found = no_bus.lookup(k_server);
  ASSERT_FALSE(found);
  EXPECT_NE(found.error().message.find("DBUS_SESSION_BUS_ADDRESS"), std::string::npos) << found.error().message;
  auto forgot = no_bus.forget(k_server);
  ASSERT_FALSE(forgot) << "logout cannot reach the keyring: it says so and changes nothing";
  EXPECT_EQ(no_bus.state()->logins.at(k_server), "keychain");
  EXPECT_EQ(items.count(k_server), 1u);
}

TEST(CredentialsTest, TokenPrecedenceIsEnvThenLoginThenAdminFile) {
  idp::testing::TempDir tmp("idp-creds");
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("admin.token"), "idp_admin\n", 0600));
  Credentials creds(tmp.sub("idp"), nullptr);

  TokenChoice c = choose_token("", creds, k_server, tmp.sub("admin.token"));
  EXPECT_EQ(c.source, TokenChoice::Source::admin_file);
  EXPECT_EQ(c.token, "idp_admin");

  ASSERT_TRUE(creds.save(k_server, k_token));
  c = choose_token("", creds, k_server + "/", tmp.sub("admin.token"));
  EXPECT_EQ(c.source, TokenChoice::Source::login) << "a trailing slash names the same server";
  EXPECT_EQ(c.token, k_token);

  c = choose_token("idp_env", creds, k_server, tmp.sub("admin.token"));
  EXPECT_EQ(c.source, TokenChoice::Source::env);
  EXPECT_EQ(c.token, "idp_env");

  c = choose_token("", creds, "http://another:8787", tmp.sub("missing.token"));
  EXPECT_EQ(c.source, TokenChoice::Source::none) << "a login is for its own server only";
  EXPECT_TRUE(c.token.empty());
}

TEST(CredentialsTest, AStateFileThatIsNotOursIsAClearError) {
  idp::testing::TempDir tmp("idp-creds");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("idp")));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("idp/config.json"), "not json"));
  Credentials creds(tmp.sub("idp"), nullptr);
  auto st = creds.state();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::invalid_config);
  EXPECT_NE(st.error().message.find("config.json"), std::string::npos) << st.error().message;
  EXPECT_FALSE(creds.save(k_server, k_token)) << "nothing is stored beside a state it cannot read";
}

TEST(CredentialsTest, ServerUrlsAreKeyedWithoutTrailingSlashes) {
  EXPECT_EQ(normalize_server(" https://idp.example.com/ "), "https://idp.example.com");
  EXPECT_EQ(normalize_server("http://127.0.0.1:8787//"), "http://127.0.0.1:8787");
}
