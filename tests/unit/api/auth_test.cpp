// Authenticator: token records are served from memory after the first store read, and a
// create or revoke (forget_all) makes the next request read the store again.
#include <gtest/gtest.h>

#include "api/auth.hpp"
#include "fakes/failing_store.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

struct AuthRig {
  InMemoryStore inner;
  FailingStore store{inner};
  FakeClock clock;
  api::Authenticator auth{store, clock};

  std::string add_token(const std::string& name, api::Role role, util::Millis expires_at = 0) {
    api::NewToken t = api::mint_token(name, role, name, "test", clock.now_ms(), expires_at);
    EXPECT_TRUE(inner.insert_api_token(t.record).has_value());
    ids[t.secret] = t.record.id;
    return t.secret;
  }
  std::map<std::string, std::string> ids;
};

} // namespace

TEST(AuthenticatorTest, AKnownTokenIsCheckedFromMemoryAfterItsFirstUse) {
  AuthRig rig;
  std::string secret = rig.add_token("ci", api::Role::developer);
  auto first = rig.auth.authenticate("Bearer " + secret);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->identity, "ci");
  EXPECT_EQ(first->role, api::Role::developer);
  // The store is down now: the token's record is in memory, so the request still passes.
  rig.store.fail_next("find_api_token", 100);
  auto again = rig.auth.authenticate("Bearer " + secret);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->token_id, first->token_id);
  EXPECT_EQ(rig.store.injected("find_api_token"), 0) << "the store was asked again";
}

TEST(AuthenticatorTest, ARevokedTokenIsRefusedFromTheNextRequestOn) {
  AuthRig rig;
  std::string secret = rig.add_token("ci", api::Role::admin);
  ASSERT_TRUE(rig.auth.authenticate("Bearer " + secret).has_value());
  ASSERT_TRUE(rig.inner.revoke_api_token(rig.ids[secret], rig.clock.now_ms()).has_value());
  rig.auth.forget_all(); // what the revoke route does after the store write
  auto r = rig.auth.authenticate("Bearer " + secret);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::unauthorized);
}

TEST(AuthenticatorTest, ACachedTokenStillExpiresOnTime) {
  AuthRig rig;
  std::string secret = rig.add_token("brief", api::Role::viewer, rig.clock.now_ms() + 60'000);
  ASSERT_TRUE(rig.auth.authenticate("Bearer " + secret).has_value());
  rig.clock.advance(60'000);
  auto r = rig.auth.authenticate("Bearer " + secret);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::unauthorized);
}

TEST(AuthenticatorTest, UnknownTokensAreAskedOfTheStoreEveryTimeAndNeverKept) {
  AuthRig rig;
  std::string unknown = "idp_" + std::string(64, '0');
  EXPECT_FALSE(rig.auth.authenticate("Bearer " + unknown).has_value());
  // A token created after a refusal works at once: the refusal was not cached.
  api::NewToken t = api::mint_token("late", api::Role::viewer, "late", "test", rig.clock.now_ms(), 0);
  t.secret = unknown;
  t.record.hash = api::token_hash(unknown);
  ASSERT_TRUE(rig.inner.insert_api_token(t.record).has_value());
  EXPECT_TRUE(rig.auth.authenticate("Bearer " + unknown).has_value());
}

TEST(AuthenticatorTest, AStoreFailureIsTransientNotARefusal) {
  AuthRig rig;
  std::string secret = rig.add_token("ci", api::Role::viewer);
  rig.store.fail_next("find_api_token", 1);
  auto r = rig.auth.authenticate("Bearer " + secret);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
}
