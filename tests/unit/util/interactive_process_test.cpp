// util::InteractiveProcess: output as it comes, input, a terminal, and no process left behind.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "util/base64.hpp"
#include "util/interactive_process.hpp"
#include "util/proc.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;

namespace {

std::unique_ptr<util::InteractiveProcess> start_sh(const std::string& script, bool tty = false) {
  util::Command c;
  c.argv = {"sh", "-c", script};
  util::InteractiveOptions o;
  o.tty = tty;
  o.rows = 42;
  o.cols = 120;
  auto p = util::InteractiveProcess::start(c, o);
  EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().message);
  return p ? std::move(*p) : nullptr;
}

// Reads until `want` is in the output (stdout or the terminal) or 30 s pass.
bool read_until(util::InteractiveProcess& p, std::string& out, std::string& err, const std::string& want) {
  int64_t deadline = util::steady_ms() + 30000;
  while (out.find(want) == std::string::npos) {
    if (util::steady_ms() >= deadline || (p.poll_exit() && p.output_done())) {
      return false;
    }
    for (auto& c : p.read(100)) {
      (c.is_stderr ? err : out) += c.data;
    }
  }
  return true;
}

// Reads to the end; the exit status.
util::ExitStatus finish(util::InteractiveProcess& p, std::string& out, std::string& err) {
  int64_t deadline = util::steady_ms() + 30000;
  while (!(p.poll_exit() && p.output_done()) && util::steady_ms() < deadline) {
    for (auto& c : p.read(100)) {
      (c.is_stderr ? err : out) += c.data;
    }
  }
  auto s = p.poll_exit();
  return s ? *s : util::ExitStatus{-99, 0};
}

bool gone(pid_t pid) {
  int64_t deadline = util::steady_ms() + 10000;
  while (util::process_alive(pid)) {
    if (util::steady_ms() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20)); // polling until the deadline
  }
  return true;
}

} // namespace

TEST(InteractiveProcessTest, OutputComesBeforeTheEndAndInputIsForwarded) {
  auto p = start_sh("echo ready; echo warn >&2; read line; echo got:$line; exit 5");
  ASSERT_TRUE(p);
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, "ready\n")) << out;
  EXPECT_FALSE(p->poll_exit()) << "still waiting for its input";
  ASSERT_TRUE(p->write_input("hello\n", 5000));
  p->close_input();
  auto s = finish(*p, out, err);
  EXPECT_EQ(s.exit_code, 5);
  EXPECT_EQ(out, "ready\ngot:hello\n");
  EXPECT_EQ(err, "warn\n");
  EXPECT_FALSE(p->write_input("late", 1000)) << "the input is closed";
}

TEST(InteractiveProcessTest, EndOfInputEndsCat) {
  auto p = start_sh("exec cat");
  ASSERT_TRUE(p);
  std::string big(200000, 'x');
  ASSERT_TRUE(p->write_input(big.substr(0, 1000), 5000));
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, std::string(1000, 'x')));
  p->close_input();
  EXPECT_EQ(finish(*p, out, err).exit_code, 0);
}

TEST(InteractiveProcessTest, InputNobodyReadsTimesOut) {
  auto p = start_sh("exec sleep 1000");
  ASSERT_TRUE(p);
  auto w = p->write_input(std::string(1 << 20, 'x'), 200);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::timeout);
}

TEST(InteractiveProcessTest, TerminalIsTheControllingTtyWithItsSize) {
  auto p = start_sh("test -t 0 && test -t 1 && test -t 2 && tty && stty size && echo ready; read x; stty size", true);
  ASSERT_TRUE(p);
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, "ready")) << out;
  EXPECT_NE(out.find("/dev/pts/"), std::string::npos) << out;
  EXPECT_NE(out.find("42 120"), std::string::npos) << out;
  ASSERT_TRUE(p->resize(10, 50));
  ASSERT_TRUE(p->write_input("\r", 5000));
  EXPECT_EQ(finish(*p, out, err).exit_code, 0);
  EXPECT_NE(out.find("10 50"), std::string::npos) << out;
  EXPECT_TRUE(err.empty()) << "a terminal is one stream";
}

TEST(InteractiveProcessTest, ControlCOnTheTerminalInterruptsTheCommand) {
  auto p = start_sh("echo ready; exec sleep 1000", true);
  ASSERT_TRUE(p);
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, "ready")) << out;
  ASSERT_TRUE(p->write_input("\x03", 5000));
  auto s = finish(*p, out, err);
  EXPECT_EQ(s.signal, SIGINT) << "the terminal is the command's controlling terminal";
}

TEST(InteractiveProcessTest, EndOfInputOnATerminalIsControlD) {
  auto p = start_sh("exec cat", true);
  ASSERT_TRUE(p);
  p->close_input();
  std::string out, err;
  EXPECT_EQ(finish(*p, out, err).exit_code, 0);
}

TEST(InteractiveProcessTest, NothingOutlivesTheCommandOrTheObject) {
  // What the command left in the background goes when it exits...
  auto p = start_sh("sleep 1000 & echo $!");
  ASSERT_TRUE(p);
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, "\n"));
  pid_t background = std::atoi(out.c_str());
  ASSERT_GT(background, 0);
  finish(*p, out, err);
  EXPECT_TRUE(gone(background));

  // ...and a command still running goes with the object.
  auto q = start_sh("sleep 1000 & echo $$ $!; wait");
  ASSERT_TRUE(q);
  std::string qout;
  ASSERT_TRUE(read_until(*q, qout, err, "\n"));
  auto pids = util::split(util::trim(qout), ' ');
  ASSERT_EQ(pids.size(), 2u) << qout;
  q.reset();
  EXPECT_TRUE(gone(std::atoi(pids[0].c_str())));
  EXPECT_TRUE(gone(std::atoi(pids[1].c_str())));
}

TEST(InteractiveProcessTest, SignalGroupAndMissingProgram) {
  auto p = start_sh("echo ready; exec sleep 1000");
  ASSERT_TRUE(p);
  std::string out, err;
  ASSERT_TRUE(read_until(*p, out, err, "ready"));
  p->signal_group(SIGTERM);
  EXPECT_EQ(finish(*p, out, err).signal, SIGTERM);
  EXPECT_FALSE(p->resize(5, 5)) << "no terminal to resize";

  util::Command c;
  c.argv = {"no-such-program-idp"};
  auto missing = util::InteractiveProcess::start(c, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
}

TEST(Base64Test, RoundTripsEveryByteAndRejectsJunk) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  for (size_t n = 0; n < 7; ++n) {
    std::string s = all.substr(0, n) + all;
    EXPECT_EQ(util::base64_decode(util::base64_encode(s)), s) << n;
  }
  EXPECT_EQ(util::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(util::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(util::base64_decode("Zm8="), "fo");
  EXPECT_FALSE(util::base64_decode("Zm8"));
  EXPECT_FALSE(util::base64_decode("Zm8!"));
  EXPECT_FALSE(util::base64_decode("not base64!"));
}
