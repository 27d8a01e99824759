#include "util/json.hpp"

#include <gtest/gtest.h>

using namespace idp;
using nlohmann::json;

TEST(JsonDumpTest, ReplacesInvalidUtf8InValuesAndKeysInsteadOfThrowing) {
  json j = {{"branch", "feat/\xff"}, {"k\xfe", 1}};
  std::string text;
  ASSERT_NO_THROW(text = util::json_dump(j));
  EXPECT_EQ(text, "{\"branch\":\"feat/\xef\xbf\xbd\",\"k\xef\xbf\xbd\":1}");
  // What json_dump writes always parses back (strict parsing checks UTF-8).
  EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded());
}

TEST(JsonDumpTest, KeepsValidUtf8AndIndents) {
  json j = {{"name", "ünïcode ✓ 𝄞"}};
  EXPECT_EQ(util::json_dump(j), j.dump());
  EXPECT_EQ(util::json_dump(j, 2), j.dump(2));
}

TEST(Utf8Test, ValidityFollowsTheRfc) {
  EXPECT_TRUE(util::is_valid_utf8(""));
  EXPECT_TRUE(util::is_valid_utf8("plain ascii"));
  EXPECT_TRUE(util::is_valid_utf8("ü \xe2\x9c\x93 \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(util::is_valid_utf8("\xff"));
  EXPECT_FALSE(util::is_valid_utf8("\x80"));             // lone continuation byte
  EXPECT_FALSE(util::is_valid_utf8("\xc3"));             // truncated
  EXPECT_FALSE(util::is_valid_utf8("\xc0\xaf"));         // overlong '/'
  EXPECT_FALSE(util::is_valid_utf8("\xe0\x80\xaf"));     // overlong, 3 bytes
  EXPECT_FALSE(util::is_valid_utf8("\xed\xa0\x80"));     // UTF-16 surrogate
  EXPECT_FALSE(util::is_valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
  EXPECT_FALSE(util::is_valid_utf8("\xf5\x80\x80\x80"));
}

TEST(Utf8Test, ValidExactlyWhenTheStrictSerialiserAccepts) {
  for (std::string s :
       {"a", "\xff", "\xc3\xbc", "\xc3", "\xed\xa0\x80", "\xf0\x9d\x84\x9e", "\xe0\x80\xaf", "x\xf4\x90\x80\x80"}) {
    bool strict_ok = true;
    try {
      (void)json(s).dump();
    } catch (const json::type_error&) {
      strict_ok = false;
    }
    EXPECT_EQ(util::is_valid_utf8(s), strict_ok) << util::escape_invalid_utf8(s);
  }
}

TEST(Utf8Test, EscapesOnlyTheInvalidBytes) {
  EXPECT_EQ(util::escape_invalid_utf8("feat/\xff"), "feat/\\xff");
  EXPECT_EQ(util::escape_invalid_utf8("\xc3\xbc\xc3"), "\xc3\xbc\\xc3");
  EXPECT_EQ(util::escape_invalid_utf8("ok"), "ok");
}
