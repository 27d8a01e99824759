// pick_cause_lines on real outputs of failing npm, node and Python commands
// (tests/data/failure-output/, see its README.md).
#include <gtest/gtest.h>

#include "drivers/common/failure_cause.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using idp::drivers::common::pick_cause_lines;
using idp::drivers::common::with_cause;
using Lines = std::vector<std::string>;

namespace {

Lines failure_output(const std::string& name) {
  auto text = idp::util::read_file(idp::testing::source_dir() + "/tests/data/failure-output/" + name);
  EXPECT_TRUE(text.has_value()) << name;
  Lines lines = idp::util::split(text.value_or(""), '\n');
  if (!lines.empty() && lines.back().empty()) {
    lines.pop_back();
  }
  return lines;
}

// The last `n` lines, as a driver keeps them.
Lines last_lines(const Lines& all, size_t n) {
  return Lines(all.end() - static_cast<std::ptrdiff_t>(std::min(n, all.size())), all.end());
}

} // namespace

TEST(FailureCauseTest, NpmCiWithoutLockfileNamesTheLockfileNotTheHelpText) {
  Lines out = failure_output("npm-ci-without-lockfile.txt");
  ASSERT_GT(out.size(), 60u) << "the reason is buried before a long help text";
  auto cause = pick_cause_lines(out);
  ASSERT_EQ(cause.size(), 1u) << idp::util::join(cause, "\n");
  EXPECT_EQ(cause[0], "npm error The `npm ci` command can only install with an existing package-lock.json or "
                      "npm-shrinkwrap.json with lockfileVersion >= 1. Run an install with npm@5 or later to "
                      "generate a package-lock.json file, then try again.");
}

TEST(FailureCauseTest, NodeCrashKeepsTheErrorLineNotTheStackFrames) {
  auto cause = pick_cause_lines(failure_output("node-throw-at-startup.txt"));
  EXPECT_EQ(cause, (Lines{"Error: boom at startup"}));
}

TEST(FailureCauseTest, NodeMissingModule) {
  auto cause = pick_cause_lines(failure_output("node-cannot-find-module.txt"));
  EXPECT_EQ(cause, (Lines{"Error: Cannot find module 'express'"}));
}

TEST(FailureCauseTest, NodeAddressInUseSkipsTheErrorObjectDump) {
  auto cause = pick_cause_lines(failure_output("node-eaddrinuse.txt"));
  EXPECT_EQ(cause, (Lines{"Error: listen EADDRINUSE: address already in use :::3000"}));
}

TEST(FailureCauseTest, NpmMissingScriptDropsNpmsAdvice) {
  auto cause = pick_cause_lines(failure_output("npm-missing-script.txt"));
  EXPECT_EQ(cause, (Lines{"npm error Missing script: \"build\""}));
}

TEST(FailureCauseTest, CompilerErrorOfABuildScript) {
  auto cause = pick_cause_lines(failure_output("npm-run-build-failed.txt"));
  EXPECT_EQ(cause, (Lines{"src/index.ts(3,7): error TS2322: Type 'string' is not assignable to type 'number'."}));
}

TEST(FailureCauseTest, PythonTracebackKeepsItsLastLine) {
  auto cause = pick_cause_lines(failure_output("python-traceback.txt"));
  EXPECT_EQ(cause, (Lines{"ValueError: DATABASE_URL is not set"}));
}

TEST(FailureCauseTest, FirstErrorAndALaterErrorAtTheEnd) {
  auto cause = pick_cause_lines({"compiling", "error: cannot open config.json", "retrying", "   at frame (x.js:1:1)",
                                 "build failed after 2 attempts", ""});
  EXPECT_EQ(cause, (Lines{"error: cannot open config.json", "build failed after 2 attempts"}));
}

TEST(FailureCauseTest, WithoutAnErrorLineTheLastLinesAreTheCause) {
  auto cause = pick_cause_lines({"step 1", "step 2", "", "step 3", "3 of 10 checks passed", "   "}, 2);
  EXPECT_EQ(cause, (Lines{"step 3", "3 of 10 checks passed"}));
  EXPECT_TRUE(pick_cause_lines({}).empty());
  EXPECT_TRUE(pick_cause_lines({"", "  ", "}"}).empty());
}

TEST(FailureCauseTest, ColoursAndCarriageReturnsAreRemovedAndLinesBounded) {
  auto cause = pick_cause_lines({"\x1b[31mError: red\x1b[0m\r"});
  EXPECT_EQ(cause, (Lines{"Error: red"}));
  auto longer = pick_cause_lines({"Error: " + std::string(1000, 'x')});
  ASSERT_EQ(longer.size(), 1u);
  EXPECT_LE(longer[0].size(), 304u);
}

TEST(FailureCauseTest, OnlyWhatADriverKeepsIsNeededWhenItKeepsEnough) {
  // The local driver keeps the last 200 lines of a build: npm's reason is still in them.
  Lines out = failure_output("npm-ci-without-lockfile.txt");
  auto cause = pick_cause_lines(last_lines(out, 200));
  ASSERT_FALSE(cause.empty());
  EXPECT_NE(cause[0].find("can only install with an existing package-lock.json"), std::string::npos);
}

TEST(FailureCauseTest, WithCauseMakesTheFirstLineTheReason) {
  EXPECT_EQ(with_cause("local.build failed with exit code 1", {}), "local.build failed with exit code 1");
  EXPECT_EQ(with_cause("the app exited with code 1", {"Error: boom", "later: failed"}),
            "the app exited with code 1: Error: boom\nlater: failed");
}
