#include "drivers/local/shim.hpp"

#include <csignal>
#include <gtest/gtest.h>

#include "drivers/common/log_files.hpp"
#include "drivers/local/processes.hpp"
#include "local_test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;
using idp::testing::wait_until;

// Starts `<test binary> __shim … -- argv` the way the driver does.
pid_t start_shim(const TempDir& dir, const std::vector<std::string>& argv,
                 std::map<std::string, std::string> env = {}) {
  ShimArgs a;
  a.dir = dir.sub("rev");
  a.log_dir = dir.sub("logs");
  a.argv = argv;
  EXPECT_TRUE(util::ensure_dir(a.dir));
  util::Command cmd;
  cmd.argv = {testing::self_exe()};
  for (auto& s : shim_command_arguments(a)) {
    cmd.argv.push_back(s);
  }
  cmd.env = std::move(env);
  cmd.cwd = a.dir;
  auto pid = util::spawn(cmd, {});
  EXPECT_TRUE(pid.has_value()) << (pid ? "" : pid.error().message);
  return pid ? *pid : 0;
}

nlohmann::json wait_exit_json(const TempDir& dir) {
  std::string path = dir.sub("rev/exit.json");
  EXPECT_TRUE(wait_until([&] { return util::path_exists(path); }, 20000));
  auto text = util::read_file(path);
  return text ? nlohmann::json::parse(*text) : nlohmann::json();
}

std::vector<LogLine> log_lines(const TempDir& dir) {
  auto c = common::LogReader(dir.sub("logs")).read({});
  return c ? c->lines : std::vector<LogLine>{};
}

bool has_line(const std::vector<LogLine>& lines, const std::string& stream, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const LogLine& l) { return l.stream == stream && l.text == text; });
}

TEST(ShimTest, LogsBothStreamsAndRecordsExitCode) {
  TempDir dir;
  pid_t shim = start_shim(dir, {"sh", "-c", "echo out; echo 'with\ttab' ; echo err >&2; printf partial; exit 3"});
  auto exit = wait_exit_json(dir);
  EXPECT_EQ(exit.value("code", 0), 3);
  EXPECT_EQ(exit.value("signal", -1), 0);
  EXPECT_GT(exit.value("at", int64_t{0}), 0);
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(shim); }, 10000));
  auto lines = log_lines(dir);
  EXPECT_TRUE(has_line(lines, "stdout", "out"));
  EXPECT_TRUE(has_line(lines, "stdout", "with\ttab"));
  EXPECT_TRUE(has_line(lines, "stderr", "err"));
  EXPECT_TRUE(has_line(lines, "stdout", "partial")) << "an unterminated last line is flushed at exit";
  EXPECT_TRUE(has_line(lines, "system", "process exited with code 3"));
  for (const auto& l : lines) {
    EXPECT_GT(l.at, 0) << l.text;
  }
  EXPECT_GT(read_app_pid(dir.sub("rev")), 0);
}

TEST(ShimTest, ForwardsTermToTheAppAndIgnoresInt) {
  TempDir dir;
  pid_t shim =
      start_shim(dir, {"sh", "-c", "trap 'echo got term; exit 0' TERM; echo ready; while :; do sleep 0.02; done"});
  ASSERT_TRUE(wait_until([&] { return has_line(log_lines(dir), "stdout", "ready"); }, 10000));
  pid_t app = read_app_pid(dir.sub("rev"));
  ASSERT_GT(app, 0);
  EXPECT_EQ(util::process_group_of(app), shim) << "the app stays in the shim's process group";
  ::kill(shim, SIGINT); // a terminal's ^C must not take the shim down
  ::kill(shim, SIGHUP);
  ::kill(shim, SIGTERM);
  auto exit = wait_exit_json(dir);
  EXPECT_EQ(exit.value("code", -1), 0);
  EXPECT_TRUE(has_line(log_lines(dir), "stdout", "got term"));
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(shim) && !util::process_alive(app); }, 10000));
}

TEST(ShimTest, RecordsKillSignal) {
  TempDir dir;
  pid_t shim = start_shim(dir, {"sh", "-c", "echo ready; exec sleep 60"});
  ASSERT_TRUE(wait_until([&] { return has_line(log_lines(dir), "stdout", "ready"); }, 10000));
  pid_t app = read_app_pid(dir.sub("rev"));
  ASSERT_TRUE(wait_until([&] { return util::process_alive(app); }, 1000));
  ::kill(app, SIGKILL);
  auto exit = wait_exit_json(dir);
  EXPECT_EQ(exit.value("code", 0), -1);
  EXPECT_EQ(exit.value("signal", 0), SIGKILL);
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(shim); }, 10000));
}

TEST(ShimTest, MissingProgramIsLoggedWithCode127) {
  TempDir dir;
  start_shim(dir, {"/nonexistent/program"});
  auto exit = wait_exit_json(dir);
  EXPECT_EQ(exit.value("code", 0), 127);
  auto lines = log_lines(dir);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().stream, "system");
  EXPECT_NE(lines.back().text.find("cannot start"), std::string::npos);
}

TEST(ShimTest, AppInheritsEnvironmentAndCwd) {
  TempDir dir;
  start_shim(dir, {"sh", "-c", "echo \"$GREETING from $(pwd)\""}, {{"GREETING", "hello"}});
  wait_exit_json(dir);
  EXPECT_TRUE(has_line(log_lines(dir), "stdout", "hello from " + util::absolute_path(dir.sub("rev"))));
}

TEST(ShimTest, BadArgumentsExitWithUsage) {
  std::vector<std::string> args = {"idp", "__shim", "--dir"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  EXPECT_EQ(run_shim(static_cast<int>(argv.size()), argv.data()), 2);
  std::vector<std::string> args2 = {"idp", "__shim", "--dir", "/tmp", "--log-dir", "/tmp"};
  std::vector<char*> argv2;
  for (auto& a : args2) {
    argv2.push_back(a.data());
  }
  EXPECT_EQ(run_shim(static_cast<int>(argv2.size()), argv2.data()), 2) << "no command";
}

// Numbers are read whole and must fit their field: "--keep 4294967297" was once read as an
// int64 and narrowed to 1 (util::parse_int refuses it instead).
TEST(ShimTest, NumbersThatDoNotFitTheirOptionAreRefused) {
  TempDir dir{"idp-shim-args"};
  ASSERT_TRUE(util::ensure_dir(dir.sub("rev")));
  for (const char* bad : {"4294967297", "-1", "12abc", ""}) {
    std::vector<std::string> args = {"idp",           "__shim", "--dir", dir.sub("rev"), "--log-dir",
                                     dir.sub("logs"), "--keep", bad,     "--",           "true"};
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    EXPECT_EQ(run_shim(static_cast<int>(argv.size()), argv.data()), 2) << "--keep " << bad;
  }
  EXPECT_FALSE(util::path_exists(dir.sub("rev/exit.json"))) << "nothing ran";
}

} // namespace
} // namespace idp::drivers::local
