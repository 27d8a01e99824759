#include "drivers/local/local_driver_support.hpp"
#include "drivers/local/local_options.hpp"

#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

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

// The engine hands every driver the seed's SQL; the local runtime reads the seed from its
// checkout, so it does not make a running deployment look changed (no rebuild).
TEST(LocalDriverSupportTest, TheShimIsTheIdpShimBesideIdpElseIdpItself) {
  idp::testing::TempDir dir("idp-helper-exe");
  std::string idp = dir.sub("idp");
  std::string shim = dir.sub(k_helper_program);
  EXPECT_EQ(helper_exe_for(idp), idp); // no idp-shim beside idp: `idp __shim`
  std::ofstream(shim) << "#!/bin/sh\n";
  EXPECT_EQ(helper_exe_for(idp), idp); // there but not executable
  ASSERT_EQ(::chmod(shim.c_str(), 0755), 0);
  EXPECT_EQ(helper_exe_for(idp), shim);
}

TEST(LocalDriverSupportTest, TheSeedsSqlFromTheEngineDoesNotChangeTheContentHash) {
  DeploySpec spec;
  spec.env.commit = "0123456789abcdef0123456789abcdef01234567";
  spec.components = {"web", "database"};
  spec.config.database.seed = "db/seed.sql";
  std::string before = content_hash(spec);
  spec.template_values["database_seed"] = "CREATE TABLE t (id int);";
  EXPECT_EQ(content_hash(spec), before);
  spec.template_values["other"] = "x";
  EXPECT_NE(content_hash(spec), before) << "other template values still count";
}

} // namespace
} // namespace idp::drivers::local
