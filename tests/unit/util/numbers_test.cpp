#include "util/numbers.hpp"

#include <gtest/gtest.h>

using namespace idp;

TEST(NumbersTest, ParsesWholeNumbersInRange) {
  EXPECT_EQ(*util::parse_int<int>("0"), 0);
  EXPECT_EQ(*util::parse_int<int>("-42"), -42);
  EXPECT_EQ(*util::parse_int<int>("65535", 1, 65535), 65535);
  EXPECT_EQ(*util::parse_int<uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(*util::parse_int<int64_t>("-9223372036854775808"), INT64_MIN);
}

TEST(NumbersTest, RejectsWhatIsNotExactlyAWholeNumber) {
  for (const char* bad : {"", " 1", "1 ", "+1", "1.5", "12abc", "abc", "0x10", "-", "1e3", "١"}) {
    auto v = util::parse_int<int>(bad);
    ASSERT_FALSE(v) << bad;
    EXPECT_EQ(v.error().code, ErrorCode::invalid_argument);
  }
}

TEST(NumbersTest, OutOfRangeNamesTheBounds) {
  auto port = util::parse_int<int>("99999", 1, 65535);
  ASSERT_FALSE(port);
  EXPECT_EQ(port.error().message, "expected a whole number from 1 to 65535, got \"99999\"");
  // A negative number for an unsigned type is an error, never a wrap to a huge value.
  auto workers = util::parse_int<size_t>("-1", 1, 1024);
  ASSERT_FALSE(workers);
  EXPECT_EQ(workers.error().message, "expected a whole number from 1 to 1024, got \"-1\"");
  // Beyond the type itself.
  auto big = util::parse_int<int>("99999999999999999999");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("from -2147483648 to 2147483647"), std::string::npos) << big.error().message;
  auto small = util::parse_int<uint8_t>("300");
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message.find("from 0 to 255"), std::string::npos) << small.error().message;
}

TEST(NumbersTest, LongOrControlInputIsQuotedAndCut) {
  auto v = util::parse_int<int>(std::string(1000, '7') + "\n");
  ASSERT_FALSE(v);
  EXPECT_LT(v.error().message.size(), 120u) << v.error().message;
  auto ctl = util::parse_int<int>("1\n2");
  ASSERT_FALSE(ctl);
  EXPECT_NE(ctl.error().message.find("\"1\\n2\""), std::string::npos) << ctl.error().message;
}
