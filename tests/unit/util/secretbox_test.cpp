// Secrets at rest (issue 9): round trip, and every way a sealed value must fail to open.
#include <gtest/gtest.h>

#include "util/redact.hpp"
#include "util/secretbox.hpp"

namespace idp::util {
namespace {

std::string master_of(char fill) { return std::string(32, fill); }

TEST(SecretboxTest, RoundTrip) {
  auto key = derive_subkey(master_of('a'), "secrets1");
  ASSERT_TRUE(key) << key.error().message;
  ASSERT_EQ(key->size(), k_secretbox_key_bytes);
  auto sealed = seal_secret(*key, "s3cr3t-value", "scope\nNAME");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(sealed->find("s3cr3t-value"), std::string::npos) << "the plaintext shows in the sealed bytes";
  auto opened = open_secret(*key, *sealed, "scope\nNAME");
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(*opened, "s3cr3t-value");
  // A fresh nonce each time: equal values do not seal to equal bytes.
  EXPECT_NE(*sealed, *seal_secret(*key, "s3cr3t-value", "scope\nNAME"));
}

TEST(SecretboxTest, WrongKeyFails) {
  auto key = derive_subkey(master_of('a'), "secrets1");
  auto other = derive_subkey(master_of('b'), "secrets1");
  ASSERT_TRUE(key && other);
  ASSERT_NE(*key, *other);
  auto sealed = seal_secret(*key, "s3cr3t-value", "aad");
  auto opened = open_secret(*other, *sealed, "aad");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, ErrorCode::permanent);
  EXPECT_EQ(opened.error().message.find("s3cr3t"), std::string::npos);
  // Another purpose of the same master key is another key too.
  EXPECT_NE(*key, *derive_subkey(master_of('a'), "another1"));
}

TEST(SecretboxTest, TamperedCiphertextFails) {
  auto key = derive_subkey(master_of('a'), "secrets1");
  auto sealed = seal_secret(*key, "s3cr3t-value", "aad");
  ASSERT_TRUE(sealed);
  for (size_t i : {size_t{0}, size_t{30}, sealed->size() - 1}) {
    std::string bad = *sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(open_secret(*key, bad, "aad")) << "a flipped bit at byte " << i << " went unnoticed";
  }
  EXPECT_FALSE(open_secret(*key, sealed->substr(0, 10), "aad"));
  // Bound to where it is stored: moved to another name, it does not open.
  EXPECT_FALSE(open_secret(*key, *sealed, "other"));
}

TEST(SecretboxTest, BadKeysAreRefused) {
  EXPECT_FALSE(derive_subkey("short", "secrets1"));
  EXPECT_FALSE(derive_subkey(master_of('a'), "toolongpurpose"));
  EXPECT_FALSE(seal_secret("short", "x", ""));
}

TEST(RedactorTest, ReplacesEveryValueAndLeavesShortOnes) {
  Redactor r({"hunter22", "abc", "hunter2233"});
  EXPECT_EQ(r.redact("pw=hunter2233 and hunter22, abc"), "pw=*** and ***, abc");
  EXPECT_EQ(Redactor().redact("anything"), "anything");
}

TEST(RedactorTest, StreamCatchesAValueSplitAcrossChunks) {
  Redactor r({"s3cr3t-value"});
  StreamRedactor s(r);
  std::string out = s.feed("before s3cr");
  EXPECT_EQ(out, "before ");
  out += s.feed("3t-val");
  out += s.feed("ue after s");
  out += s.flush();
  EXPECT_EQ(out, "before *** after s");
  // Nothing is held back when the tail cannot start a value.
  StreamRedactor t(r);
  EXPECT_EQ(t.feed("plain text\n"), "plain text\n");
}

} // namespace
} // namespace idp::util
