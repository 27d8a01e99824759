#include "core/api_types.hpp"

#include <gtest/gtest.h>

namespace idp::core {
namespace {

TEST(ParseJsonObjectTest, ANumberPastDoublesRangeIsInvalidArgumentNotAThrow) {
  // Found by fuzz/api_body: nlohmann throws out_of_range.406 (not parse_error) here, which
  // reached the API's exception handler as a 500.
  auto r = parse_json_object(R"({"ttl": 1e999})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("invalid JSON"), std::string::npos) << r.error().message;
}

TEST(ParseJsonObjectTest, MalformedAndNonObjectBodiesAreInvalidArgument) {
  EXPECT_EQ(parse_json_object("{\"a\":").error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(parse_json_object("[1]").error().code, ErrorCode::invalid_argument);
  ASSERT_TRUE(parse_json_object(R"({"ttl": "4h"})").has_value());
}

} // namespace
} // namespace idp::core
