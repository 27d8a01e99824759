#include "drivers/local/local_options.hpp"

#include <gtest/gtest.h>

namespace idp::drivers::local {
namespace {

TEST(LocalOptionsTest, DefaultsWhenEmpty) {
  auto o = LocalOptions::parse(nlohmann::json::object());
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->health_timeout_ms, 60000);
  EXPECT_EQ(o->stop_grace_ms, 5000);
  EXPECT_EQ(o->drain_ms, 1000);
  EXPECT_EQ(o->build_timeout_ms, 600000);
  EXPECT_EQ(o->log_max_bytes, 10 * 1024 * 1024);
  EXPECT_EQ(o->log_keep, 5);
  EXPECT_EQ(o->cgroup_root, "/sys/fs/cgroup");
  EXPECT_EQ(o->caddy_binary, "caddy");
  EXPECT_TRUE(LocalOptions::parse(nullptr).has_value());
}

TEST(LocalOptionsTest, ParsesEveryOption) {
  auto o = LocalOptions::parse({{"health_timeout_ms", 1500},
                                {"stop_grace_ms", 0},
                                {"build_timeout_ms", 2000},
                                {"drain_ms", 250},
                                {"log_max_bytes", 4096},
                                {"log_keep", 2},
                                {"cgroup_root", "/tmp/cg"},
                                {"caddy_binary", "/usr/bin/caddy"}});
  ASSERT_TRUE(o.has_value()) << o.error().message;
  EXPECT_EQ(o->health_timeout_ms, 1500);
  EXPECT_EQ(o->stop_grace_ms, 0);
  EXPECT_EQ(o->build_timeout_ms, 2000);
  EXPECT_EQ(o->drain_ms, 250);
  EXPECT_EQ(o->log_max_bytes, 4096);
  EXPECT_EQ(o->log_keep, 2);
  EXPECT_EQ(o->cgroup_root, "/tmp/cg");
  EXPECT_EQ(o->caddy_binary, "/usr/bin/caddy");
}

TEST(LocalOptionsTest, UnknownKeySuggestsTheClosest) {
  auto o = LocalOptions::parse({{"health_timeout", 5}});
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code, ErrorCode::invalid_config);
  EXPECT_NE(o.error().message.find("did you mean \"health_timeout_ms\""), std::string::npos) << o.error().message;
}

TEST(LocalOptionsTest, WrongTypeSaysWhatWasExpected) {
  auto o = LocalOptions::parse({{"stop_grace_ms", "5s"}});
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code, ErrorCode::invalid_config);
  EXPECT_NE(o.error().message.find("expected a number of milliseconds"), std::string::npos) << o.error().message;
  EXPECT_FALSE(LocalOptions::parse({{"cgroup_root", "relative"}}).has_value());
  EXPECT_FALSE(LocalOptions::parse(nlohmann::json::array()).has_value());
}

} // namespace
} // namespace idp::drivers::local
