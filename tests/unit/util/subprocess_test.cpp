// util::run: deadline and cancel hold also after the child closed its output, nothing of
// the process group outlives a timeout, output is bounded, no fd leaks.
#include "util/subprocess.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <thread>

#include "util/fs.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

using namespace idp;

namespace {

util::Command sh(const std::string& script) {
  util::Command c;
  c.argv = {"/bin/sh", "-c", script};
  return c;
}

size_t open_fd_count() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) {
    return 0;
  }
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] != '.') {
      ++n;
    }
  }
  ::closedir(d);
  return n - 1; // the directory stream's own fd
}

// A temporary directory, removed at the end of the test.
struct TempDir {
  std::string path = *util::make_temp_dir("idp-subprocess-test");
  ~TempDir() { (void)util::remove_all(path); } // best effort: a leftover temp dir harms nothing
};

pid_t read_pid(const std::string& file) {
  auto text = util::read_file(file);
  if (!text) {
    return -1;
  }
  auto pid = util::parse_int<pid_t>(util::trim(*text), 1);
  return pid ? *pid : -1;
}

// Sets `cancel` once `file` exists (the child creates it after closing its output), so the
// cancel arrives after EOF. Polls until a deadline; joined on destruction.
class CancelWhenFileAppears {
public:
  CancelWhenFileAppears(std::string file, std::atomic<bool>& cancel)
      : m_thread([file = std::move(file), &cancel, this] {
          for (int i = 0; i < 3000 && !m_stop; ++i) {
            if (util::path_exists(file)) {
              cancel = true;
              return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }) {}
  ~CancelWhenFileAppears() {
    m_stop = true;
    m_thread.join();
  }

private:
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

} // namespace

TEST(SubprocessTest, CapturesOutputAndExitCode) {
  auto r = util::run(sh("echo out; echo err >&2; exit 3"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->ok());
}

TEST(SubprocessTest, StdinIsWrittenToTheChild) {
  util::RunOptions o;
  o.stdin_data = "hello\nworld\n";
  auto r = util::run(sh("cat"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out, "hello\nworld\n");
  EXPECT_TRUE(r->ok());
}

TEST(SubprocessTest, TimeoutTerminatesTheChild) {
  util::RunOptions o;
  o.timeout_ms = 200;
  auto r = util::run(sh("exec sleep 600"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->cancelled);
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_FALSE(r->ok());
}

TEST(SubprocessTest, CancelStopsTheChild) {
  std::atomic<bool> cancel{false};
  util::RunOptions o;
  o.cancel = &cancel;
  o.on_line = [&](std::string_view line, bool) {
    if (line == "started") {
      cancel = true;
    }
  };
  auto r = util::run(sh("echo started; exec sleep 600"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->signal, SIGTERM);
}

// The reproduction of the hang: the child closes its output and lingers, and the cancel
// comes after EOF. Before the fix, run blocked in waitpid until the child ended on its own
// (here: never within the test's ctest timeout).
TEST(SubprocessTest, CancelHoldsAfterTheChildClosedItsOutput) {
  TempDir dir;
  std::string ready = dir.path + "/closed";
  std::atomic<bool> cancel{false};
  util::RunOptions o;
  o.cancel = &cancel;
  util::Command c = sh("exec >/dev/null 2>&1; touch \"$READY\"; exec sleep 600");
  c.env["READY"] = ready;
  CancelWhenFileAppears canceller(ready, cancel);
  auto r = util::run(c, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->cancelled);
}

// The child leaves a grandchild that closed its pipes and ignores TERM, then waits. Once
// both closed their output, the file PID_FILE.closed appears.
util::Command lingering_grandchild(const std::string& pid_file) {
  util::Command c = sh("sh -c 'exec >/dev/null 2>&1; trap \"\" TERM; touch \"$PID_FILE.gc\"; exec sleep 600' & "
                       "echo $! > \"$PID_FILE\"; exec >/dev/null 2>&1; "
                       "while [ ! -e \"$PID_FILE.gc\" ]; do sleep 0.01; done; touch \"$PID_FILE.closed\"; wait");
  c.env["PID_FILE"] = pid_file;
  return c;
}

void expect_gone(pid_t pid) {
  ASSERT_GT(pid, 0) << "the child did not write its grandchild's pid";
  EXPECT_FALSE(util::process_alive(pid)) << "pid " << pid << " still runs";
  if (util::process_alive(pid)) {
    ::kill(pid, SIGKILL);
  }
}

// Cancel after EOF: the whole group is stopped (KILL after the grace for what ignores TERM)
// and run returns with nothing left running.
TEST(SubprocessTest, CancelAfterEofKillsTheLingeringGrandchild) {
  TempDir dir;
  std::string pid_file = dir.path + "/grandchild.pid";
  std::atomic<bool> cancel{false};
  util::RunOptions o;
  o.cancel = &cancel;
  o.term_grace_ms = 200;
  CancelWhenFileAppears canceller(pid_file + ".closed", cancel);
  auto r = util::run(lingering_grandchild(pid_file), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->cancelled);
  expect_gone(read_pid(pid_file));
}

// The same at a deadline (long enough for the script to write the pid file first).
TEST(SubprocessTest, TimeoutAfterEofKillsTheLingeringGrandchild) {
  TempDir dir;
  std::string pid_file = dir.path + "/grandchild.pid";
  util::RunOptions o;
  o.timeout_ms = 2000;
  o.term_grace_ms = 200;
  auto r = util::run(lingering_grandchild(pid_file), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timed_out);
  expect_gone(read_pid(pid_file));
}

// The exact command from the issue: after EOF the deadline still holds.
TEST(SubprocessTest, TimeoutHoldsAfterEof) {
  util::RunOptions o;
  o.timeout_ms = 200;
  auto r = util::run(sh("exec >/dev/null 2>&1; sleep 600"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->ok());
}

TEST(SubprocessTest, HugeOutputIsCappedAndKeepsTheTail) {
  util::RunOptions o;
  o.max_capture = 64 * 1024;
  size_t lines = 0;
  o.on_line = [&](std::string_view, bool) { ++lines; };
  // ~10 MB of output, then a last line.
  auto r = util::run(sh("yes line | head -n 2000000; echo last-line"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->out.size(), o.max_capture);
  EXPECT_TRUE(util::ends_with(r->out, "line\nlast-line\n")) << r->out.substr(r->out.size() - 40);
  EXPECT_EQ(lines, 2000001u);
}

// A program that prints 24 * 4096 bytes with no newline and keeps running: its output
// reaches on_line in pieces of at most max_line bytes while it runs (before the fix: nothing
// until EOF, and a buffer growing without bound). The test cancels once all of it arrived.
TEST(SubprocessTest, OutputWithoutNewlineIsDeliveredInBoundedPieces) {
  std::atomic<bool> cancel{false};
  util::RunOptions o;
  o.max_line = 4096;
  o.timeout_ms = 30000; // only if the output never arrives
  o.cancel = &cancel;
  size_t total = 0;
  size_t longest = 0;
  o.on_line = [&](std::string_view piece, bool) {
    total += piece.size();
    longest = std::max(longest, piece.size());
    EXPECT_EQ(piece.find_first_not_of('x'), std::string_view::npos);
    if (total >= 24 * 4096) {
      cancel = true;
    }
  };
  auto r = util::run(sh("head -c 98304 /dev/zero | tr '\\0' x; exec sleep 600"), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_LE(longest, o.max_line);
  EXPECT_EQ(total, 24u * 4096u);
}

TEST(SubprocessTest, LongLinesAreSplitAndShortOnesKept) {
  util::RunOptions o;
  o.max_line = 10;
  std::vector<std::string> got;
  o.on_line = [&](std::string_view line, bool) { got.emplace_back(line); };
  auto r = util::run(sh("printf 'abc\\n0123456789ABCDE\\n0123456789\\ntail'"), o);
  ASSERT_TRUE(r) << r.error().message;
  std::vector<std::string> want = {"abc", "0123456789", "ABCDE", "0123456789", "tail"};
  EXPECT_EQ(got, want);
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  util::Command c;
  c.argv = {"idp-no-such-program-anywhere"};
  auto r = util::run(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_NE(r.error().message.find("idp-no-such-program-anywhere"), std::string::npos) << r.error().message;

  util::Command in_missing_dir = sh("true");
  in_missing_dir.cwd = "/nonexistent/dir";
  auto d = util::run(in_missing_dir);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, ErrorCode::not_found);
  EXPECT_NE(d.error().message.find("/nonexistent/dir"), std::string::npos) << d.error().message;
}

TEST(SubprocessTest, ExecFailureIsAnError) {
  TempDir dir;
  std::string bogus = dir.path + "/not-a-program";
  ASSERT_TRUE(util::write_file_atomic(bogus,
                                      "\x7f"
                                      "ELF garbage",
                                      0755));
  util::Command c;
  c.argv = {bogus};
  auto r = util::run(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::io_error);
  EXPECT_NE(r.error().message.find("cannot start"), std::string::npos) << r.error().message;
}

TEST(SubprocessTest, ManyRunsLeaveTheFdCountUnchanged) {
  size_t before = open_fd_count();
  std::atomic<bool> cancel{true};
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(util::run(sh("echo x")));
    util::RunOptions in;
    in.stdin_data = "data";
    ASSERT_TRUE(util::run(sh("cat"), in));
    util::RunOptions t;
    t.timeout_ms = 1;
    t.term_grace_ms = 0;
    ASSERT_TRUE(util::run(sh("exec sleep 600"), t));
    util::RunOptions c;
    c.cancel = &cancel;
    ASSERT_TRUE(util::run(sh("exec >/dev/null 2>&1; exec sleep 600"), c));
    util::Command missing;
    missing.argv = {"/bin/sh"};
    missing.cwd = "/nonexistent/dir";
    ASSERT_FALSE(util::run(missing));
  }
  EXPECT_EQ(open_fd_count(), before);
}

// When a pipe cannot be made (out of fds), run fails with an error and closes what it had
// opened: the limit is set so that each step of the setup fails in turn.
TEST(SubprocessTest, FailedSetupLeaksNoFd) {
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int highest = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d)) {
      if (auto fd = util::parse_int<int>(e->d_name)) {
        highest = std::max(highest, *fd);
      }
    }
    ::closedir(d);
  }
  // Fill the holes below the highest fd, so that exactly `extra` fds are free below the limit.
  std::vector<int> fillers;
  while (true) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      break;
    }
    fillers.push_back(fd);
    if (fd >= highest) {
      highest = fd;
      break;
    }
  }
  size_t before = open_fd_count();
  int failures = 0;
  for (int extra = 0; extra <= 8; ++extra) {
    struct rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(highest + 1 + extra);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
    util::RunOptions o;
    o.stdin_data = "x";
    auto r = util::run(sh("cat"), o);
    ::setrlimit(RLIMIT_NOFILE, &saved);
    if (!r) {
      ++failures;
      EXPECT_EQ(r.error().code, ErrorCode::io_error) << r.error().message;
    }
    EXPECT_EQ(open_fd_count(), before) << "with " << extra << " free fds";
  }
  for (int fd : fillers) {
    ::close(fd);
  }
  EXPECT_GT(failures, 0);
}

// A child that cannot enter its cgroup is not started: it would run outside the limits
// (pids.max) its caller counts on. The move was once ignored and the child ran anyway.
TEST(SubprocessTest, FailedCgroupMoveFailsTheStartUnlessBestEffort) {
  TempDir tmp;
  std::string missing = tmp.path + "/no-such-group/cgroup.procs";
  util::RunOptions o;
  o.placement.cgroup_proc_files = {missing};
  auto r = util::run(sh("echo ran"), o);
  ASSERT_FALSE(r.has_value()) << "it ran: " << r->out;
  EXPECT_EQ(r.error().code, ErrorCode::io_error);
  EXPECT_NE(r.error().message.find("cannot enter cgroup \"" + missing + "\""), std::string::npos) << r.error().message;
  util::SpawnOptions so;
  so.detach = false;
  so.placement.cgroup_proc_files = {missing};
  auto pid = util::spawn(sh("true"), so);
  ASSERT_FALSE(pid.has_value());
  EXPECT_NE(pid.error().message.find("cannot enter cgroup"), std::string::npos) << pid.error().message;
  // Best effort (the local driver's isolation "off"): it runs outside the group.
  o.placement.cgroups_best_effort = true;
  auto best = util::run(sh("echo ran"), o);
  ASSERT_TRUE(best.has_value()) << best.error().message;
  EXPECT_EQ(best->out, "ran\n");
}

// The child enters a group as itself ("0"), by the group's `tasks` file where there is one
// (cgroup v1: a thread moved by itself skips the kernel's global threadgroup lock, whose
// write waits out an RCU grace period), else by cgroup.procs (v2). Plain files stand in
// for the groups here; local_driver_test checks real ones.
TEST(SubprocessTest, AChildEntersAGroupByItsTasksFileWhereThereIsOneElseByCgroupProcs) {
  TempDir tmp;
  std::string v1 = tmp.path + "/v1", v2 = tmp.path + "/v2";
  ASSERT_TRUE(util::ensure_dir(v1) && util::ensure_dir(v2));
  for (const auto& f : {v1 + "/tasks", v1 + "/cgroup.procs", v2 + "/cgroup.procs"}) {
    ASSERT_TRUE(util::write_file_atomic(f, ""));
  }
  util::RunOptions o;
  o.placement.cgroup_proc_files = {v1 + "/cgroup.procs", v2 + "/cgroup.procs"};
  auto r = util::run(sh("echo ran"), o);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->out, "ran\n");
  EXPECT_EQ(*util::read_file(v1 + "/tasks"), "0");
  EXPECT_EQ(*util::read_file(v1 + "/cgroup.procs"), "") << "not by cgroup.procs where `tasks` is";
  EXPECT_EQ(*util::read_file(v2 + "/cgroup.procs"), "0");
}

namespace {

// The pids of processes whose real uid is `uid`.
std::vector<pid_t> subprocess_test_pids_of_uid(uid_t uid) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (d != nullptr) {
    auto* e = ::readdir(d);
    if (e == nullptr) {
      break;
    }
    auto pid = util::parse_int<pid_t>(e->d_name, 1);
    if (!pid) {
      continue;
    }
    auto status = util::read_file("/proc/" + std::to_string(*pid) + "/status");
    if (!status) {
      continue; // gone meanwhile
    }
    auto at = status->find("\nUid:\t");
    if (at != std::string::npos && util::parse_int<uid_t>(util::split(status->substr(at + 6), '\t')[0]) == uid) {
      out.push_back(*pid);
    }
  }
  if (d != nullptr) {
    ::closedir(d);
  }
  return out;
}

} // namespace

// Where no pids cgroup can be had, RLIMIT_NPROC bounds a fork loop: the kernel counts it
// per real uid (and ignores it for root), so the loop runs as a uid of its own that runs
// nothing else, as an isolated environment does. It stops at the limit and the test ends.
TEST(SubprocessTest, NprocLimitStopsAForkLoopOfAnUnprivilegedUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run the loop as a uid of its own (RLIMIT_NPROC counts per uid)";
  }
  uid_t uid = 0;
  for (uid_t candidate = 1'999'000'000u + static_cast<uid_t>(::getpid() % 100000); uid == 0; ++candidate) {
    if (subprocess_test_pids_of_uid(candidate).empty()) {
      uid = candidate;
    }
  }
  constexpr int k_limit = 12;
  util::RunOptions o;
  o.uid = static_cast<int>(uid);
  o.gid = static_cast<int>(uid);
  o.timeout_ms = 120000;
  o.placement.nproc_limit = k_limit;
  // Each started child prints its pid; a failed fork ends the shell ("Cannot fork").
  auto r = util::run(sh("i=0; while [ $i -lt 500 ]; do sleep 600 </dev/null >/dev/null 2>&1 & echo $!; "
                        "i=$((i+1)); done; echo done"),
                     o);
  auto left = subprocess_test_pids_of_uid(uid);
  for (pid_t p : left) {
    ::kill(p, SIGKILL); // the sleeps this test started, as their uid is its own
  }
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto started = util::split(util::trim(r->out), '\n');
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->out.find("done"), std::string::npos) << "the loop ran to its end: no limit held";
  EXPECT_NE(r->exit_code, 0);
  EXPECT_GE(started.size(), 1u);
  EXPECT_LT(started.size(), static_cast<size_t>(k_limit)) << "the shell counts too";
  EXPECT_LE(left.size(), static_cast<size_t>(k_limit));
}
