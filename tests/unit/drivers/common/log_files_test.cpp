#include "drivers/common/log_files.hpp"

#include <gtest/gtest.h>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <utime.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::common {
namespace {

using idp::testing::TempDir;

class FixedClock final : public util::Clock {
public:
  explicit FixedClock(util::Millis t) : now(t) {}
  util::Millis now_ms() const override { return now; }
  util::Millis now;
};

std::vector<std::string> texts(const LogChunk& c) {
  std::vector<std::string> out;
  for (const auto& l : c.lines) {
    out.push_back(l.text);
  }
  return out;
}

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) {
    out.push_back("line " + std::to_string(i));
  }
  return out;
}

LogChunk read_all(const std::string& dir, const std::string& cursor = "") {
  LogQuery q;
  q.cursor = cursor;
  auto c = LogReader(dir).read(q);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message);
  return c ? *c : LogChunk{};
}

TEST(LogFilesTest, TimestampsRoundTripWithMilliseconds) {
  EXPECT_EQ(format_log_timestamp(0), "1970-01-01T00:00:00.000Z");
  auto t = parse_log_timestamp("2026-02-16T16:22:14.123Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, util::parse_iso8601("2026-02-16T16:22:14.123Z").value());
  EXPECT_EQ(format_log_timestamp(*t), "2026-02-16T16:22:14.123Z");
  for (util::Millis m : {util::Millis{951782400000}, util::Millis{4102444799999}, util::Millis{1}}) {
    EXPECT_EQ(parse_log_timestamp(format_log_timestamp(m)), m);
  }
  EXPECT_FALSE(parse_log_timestamp("2026-13-16T16:22:14.123Z").has_value());
  EXPECT_FALSE(parse_log_timestamp("yesterday").has_value());
}

TEST(LogFilesTest, LineKeepsTabsInTextAndParsesStream) {
  std::string line = format_log_line(1000, "stdout", "a\tb\t c");
  EXPECT_EQ(line, "1970-01-01T00:00:01.000Z\tstdout\ta\tb\t c\n");
  LogLine l = parse_log_line(line.substr(0, line.size() - 1));
  EXPECT_EQ(l.at, 1000);
  EXPECT_EQ(l.stream, "stdout");
  EXPECT_EQ(l.text, "a\tb\t c");
}

TEST(LogFilesTest, MalformedLineIsText) {
  LogLine l = parse_log_line("no tabs at all");
  EXPECT_EQ(l.at, 0);
  EXPECT_EQ(l.stream, "");
  EXPECT_EQ(l.text, "no tabs at all");
  EXPECT_EQ(parse_log_line("not-a-time\tstdout\tx").text, "not-a-time\tstdout\tx");
}

TEST(LogFilesTest, AppendSplitsMultilineTextAndDropsCarriageReturns) {
  TempDir dir;
  FixedClock clock(5000);
  LogWriter w(dir.path(), "app.log", {}, &clock);
  ASSERT_TRUE(w.append("stderr", "one\r\ntwo\nthree\n"));
  ASSERT_TRUE(w.append("stdout", ""));
  auto c = read_all(dir.path());
  EXPECT_EQ(texts(c), (std::vector<std::string>{"one", "two", "three", ""}));
  EXPECT_EQ(c.lines[0].stream, "stderr");
  EXPECT_EQ(c.lines[0].at, 5000);
  EXPECT_EQ(c.lines[3].stream, "stdout");
}

TEST(LogFilesTest, MissingLogReadsEmpty) {
  TempDir dir;
  auto c = read_all(dir.sub("nothing-here"));
  EXPECT_TRUE(c.lines.empty());
  EXPECT_EQ(c.cursor, "");
  auto d = read_all(dir.path());
  EXPECT_TRUE(d.lines.empty());
}

TEST(LogFilesTest, RotatesBeforeExceedingMaxBytesAndKeepsK) {
  TempDir dir;
  FixedClock clock(0);
  std::string one = format_log_line(0, "stdout", "line 00");
  LogFileOptions o;
  o.max_bytes = static_cast<int64_t>(one.size()) * 3; // exactly three lines per file
  o.keep = 2;
  LogWriter w(dir.path(), "app.log", o, &clock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(w.append("stdout", "line 0" + std::to_string(i)));
  }
  EXPECT_EQ(util::file_size(dir.sub("app.log")), o.max_bytes) << "a full file is not rotated early";
  EXPECT_FALSE(util::path_exists(dir.sub("app.log.1")));
  ASSERT_TRUE(w.append("stdout", "line 03"));
  EXPECT_EQ(util::file_size(dir.sub("app.log.1")), o.max_bytes);
  EXPECT_EQ(util::file_size(dir.sub("app.log")), static_cast<int64_t>(one.size()));
  for (int i = 4; i < 12; ++i) {
    ASSERT_TRUE(w.append("stdout", "line " + std::string(i < 10 ? "0" : "") + std::to_string(i)));
  }
  EXPECT_TRUE(util::path_exists(dir.sub("app.log.2")));
  EXPECT_FALSE(util::path_exists(dir.sub("app.log.3")));
  // 12 lines, 3 per file, current + 2 kept: the oldest 3 are gone.
  auto c = read_all(dir.path());
  EXPECT_EQ(texts(c), (std::vector<std::string>{"line 03", "line 04", "line 05", "line 06", "line 07", "line 08",
                                                "line 09", "line 10", "line 11"}));
}

TEST(LogFilesTest, KeepZeroDropsRotatedContent) {
  TempDir dir;
  LogFileOptions o;
  o.max_bytes = 100;
  o.keep = 0;
  LogWriter w(dir.path(), "app.log", o);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(w.append("stdout", "some text " + std::to_string(i)));
  }
  EXPECT_FALSE(util::path_exists(dir.sub("app.log.1")));
  EXPECT_LE(util::file_size(dir.sub("app.log")), 100);
  EXPECT_EQ(read_all(dir.path()).lines.back().text, "some text 9");
}

TEST(LogFilesTest, RetentionDeletesOldRotatedFilesOnly) {
  TempDir dir;
  for (const char* name : {"app.log", "app.log.1", "app.log.2", "app.log.9"}) {
    ASSERT_TRUE(util::write_file_atomic(dir.sub(name), format_log_line(0, "stdout", name)));
  }
  // app.log.2 and app.log are ten days old; app.log.1 is fresh; app.log.9 is beyond keep.
  time_t old = ::time(nullptr) - 10 * 86400;
  struct utimbuf tb {
    old, old
  };
  ::utime(dir.sub("app.log.2").c_str(), &tb);
  ::utime(dir.sub("app.log").c_str(), &tb);
  LogFileOptions o;
  o.retention_days = 3;
  o.keep = 5;
  LogWriter w(dir.path(), "app.log", o);
  w.apply_retention();
  EXPECT_TRUE(util::path_exists(dir.sub("app.log"))) << "the current file is never aged out";
  EXPECT_TRUE(util::path_exists(dir.sub("app.log.1")));
  EXPECT_FALSE(util::path_exists(dir.sub("app.log.2")));
  EXPECT_FALSE(util::path_exists(dir.sub("app.log.9")));
}

TEST(LogFilesTest, TailAndSinceFilter) {
  TempDir dir;
  FixedClock clock(1000);
  LogFileOptions o;
  o.max_bytes = 200; // several files
  LogWriter w(dir.path(), "app.log", o, &clock);
  for (int i = 0; i < 10; ++i) {
    clock.now = 1000 + i * 100;
    ASSERT_TRUE(w.append("stdout", "line " + std::to_string(i)));
  }
  LogReader r(dir.path());
  LogQuery tail;
  tail.tail = 3;
  EXPECT_EQ(texts(*r.read(tail)), numbered(7, 10));
  LogQuery since;
  since.since = 1500;
  EXPECT_EQ(texts(*r.read(since)), numbered(5, 10));
  LogQuery both;
  both.since = 1500;
  both.tail = 2;
  EXPECT_EQ(texts(*r.read(both)), numbered(8, 10));
  LogQuery more;
  more.tail = 100;
  EXPECT_EQ(texts(*r.read(more)).size(), 10u);
  // A tail read still returns the cursor at the end.
  auto t = r.read(tail);
  LogQuery next;
  next.cursor = t->cursor;
  EXPECT_TRUE(r.read(next)->lines.empty());
}

TEST(LogFilesTest, CursorResumesAcrossRotationWithoutRepeatsOrGaps) {
  TempDir dir;
  LogFileOptions o;
  o.max_bytes = 300;
  o.keep = 50;
  LogWriter w(dir.path(), "app.log", o);
  for (const auto& t : numbered(0, 5)) {
    ASSERT_TRUE(w.append("stdout", t));
  }
  auto first = read_all(dir.path());
  EXPECT_EQ(texts(first), numbered(0, 5));
  std::vector<std::string> seen = texts(first);
  std::string cursor = first.cursor;
  for (int round = 0; round < 6; ++round) {
    for (const auto& t : numbered(5 + round * 7, 5 + (round + 1) * 7)) {
      ASSERT_TRUE(w.append("stdout", t));
    }
    auto c = read_all(dir.path(), cursor);
    EXPECT_EQ(texts(c), numbered(5 + round * 7, 5 + (round + 1) * 7)) << "round " << round;
    for (auto& t : texts(c)) {
      seen.push_back(t);
    }
    cursor = c.cursor;
  }
  EXPECT_TRUE(util::path_exists(dir.sub("app.log.3"))) << "the test should have rotated several times";
  EXPECT_EQ(seen, numbered(0, 47));
  EXPECT_TRUE(read_all(dir.path(), cursor).lines.empty());
}

TEST(LogFilesTest, CursorIntoDeletedFileResumesAtOldestWithoutRepeats) {
  TempDir dir;
  LogFileOptions o;
  o.max_bytes = 120;
  o.keep = 1;
  LogWriter w(dir.path(), "app.log", o);
  ASSERT_TRUE(w.append("stdout", "old 1"));
  auto c = read_all(dir.path());
  for (const auto& t : numbered(0, 20)) {
    ASSERT_TRUE(w.append("stdout", t));
  }
  auto after = read_all(dir.path(), c.cursor);
  ASSERT_FALSE(after.lines.empty());
  auto all = read_all(dir.path());
  EXPECT_EQ(texts(after), texts(all)) << "everything still on disk is newer than the cursor";
  EXPECT_NE(texts(after).front(), "old 1");
  EXPECT_EQ(texts(after).back(), "line 19");
}

TEST(LogFilesTest, PartialLastLineWaitsForItsNewline) {
  TempDir dir;
  LogWriter w(dir.path(), "app.log", {});
  ASSERT_TRUE(w.append("stdout", "complete"));
  std::string partial = format_log_line(7000, "stdout", "half a line");
  partial.pop_back();
  ASSERT_TRUE(util::append_file(dir.sub("app.log"), partial.substr(0, partial.size() - 5)));
  auto c = read_all(dir.path());
  EXPECT_EQ(texts(c), std::vector<std::string>{"complete"});
  ASSERT_TRUE(util::append_file(dir.sub("app.log"), partial.substr(partial.size() - 5) + "\n"));
  auto d = read_all(dir.path(), c.cursor);
  EXPECT_EQ(texts(d), std::vector<std::string>{"half a line"});
  EXPECT_EQ(d.lines[0].at, 7000);
}

TEST(LogFilesTest, MalformedCursorIsInvalidArgument) {
  TempDir dir;
  LogQuery q;
  q.cursor = "garbage";
  auto c = LogReader(dir.path()).read(q);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code, ErrorCode::invalid_argument);
}

TEST(LogFilesTest, ConcurrentWritersNeitherInterleaveNorLoseLines) {
  TempDir dir;
  LogFileOptions o;
  o.max_bytes = 4096;
  o.keep = 1000;
  constexpr int k_per_writer = 400;
  std::vector<std::thread> threads;
  // Two writer objects (two open file descriptions, as two processes have) with two
  // threads each.
  LogWriter a(dir.path(), "app.log", o);
  LogWriter b(dir.path(), "app.log", o);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      LogWriter& w = t % 2 ? a : b;
      for (int i = 0; i < k_per_writer; ++i) {
        ASSERT_TRUE(w.append("w" + std::to_string(t), std::string(50, static_cast<char>('a' + t)) + std::to_string(i)));
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  auto c = read_all(dir.path());
  ASSERT_EQ(c.lines.size(), 4u * k_per_writer);
  std::set<std::string> unique;
  for (const auto& l : c.lines) {
    ASSERT_EQ(l.stream.size(), 2u) << l.text;
    char ch = static_cast<char>('a' + (l.stream[1] - '0'));
    ASSERT_EQ(l.text.substr(0, 50), std::string(50, ch));
    unique.insert(l.stream + l.text);
  }
  EXPECT_EQ(unique.size(), 4u * k_per_writer);
}

} // namespace
} // namespace idp::drivers::common
