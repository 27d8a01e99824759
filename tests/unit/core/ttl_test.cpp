#include <gtest/gtest.h>

#include "core/ttl.hpp"

using namespace idp::core;

TEST(TtlTest, ParsesUnits) {
  EXPECT_EQ(*parse_duration("30m"), 30 * 60 * 1000);
  EXPECT_EQ(*parse_duration("4h"), 4 * 3600 * 1000);
  EXPECT_EQ(*parse_duration("7d"), 7LL * 86400 * 1000);
  EXPECT_EQ(*parse_duration("2w"), 14LL * 86400 * 1000);
  EXPECT_EQ(*parse_duration("24h"), 86400LL * 1000);
  EXPECT_EQ(*parse_duration("45s"), 45 * 1000);
}

TEST(TtlTest, RejectsMalformed) {
  for (std::string bad : {"", "7", "d", "7x", "-1d", "1.5h", "7 d", "2 days", "7D", "1h30m", "99999999999999d"}) {
    auto r = parse_duration(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, idp::ErrorCode::invalid_argument);
    }
  }
  auto r = parse_duration("2 days");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "expected a duration like 30m, 4h, 7d or 2w, got \"2 days\"");
}

TEST(TtlTest, PolicyEnforcesMinAndMax) {
  TtlPolicy p; // 10m .. 30d
  EXPECT_TRUE(p.parse("10m"));
  EXPECT_TRUE(p.parse("30d"));
  auto low = p.parse("5m");
  ASSERT_FALSE(low);
  EXPECT_NE(low.error().message.find("shorter than the minimum of 10m"), std::string::npos);
  auto high = p.parse("31d");
  ASSERT_FALSE(high);
  EXPECT_NE(high.error().message.find("longer than the maximum of 30d"), std::string::npos);
  TtlPolicy test_policy;
  test_policy.min = 1000;
  EXPECT_TRUE(test_policy.parse("2s")) << "tests may lower the minimum";
}

TEST(TtlTest, FormatsShortestExactUnit) {
  EXPECT_EQ(format_ttl(7LL * 86400 * 1000), "1w");
  EXPECT_EQ(format_ttl(86400LL * 1000), "1d");
  EXPECT_EQ(format_ttl(90 * 60 * 1000), "90m");
  EXPECT_EQ(format_ttl(30 * 86400LL * 1000), "30d");
}
