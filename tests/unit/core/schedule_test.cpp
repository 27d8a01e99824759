#include "core/schedule.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "util/time.hpp"

namespace idp::core {
namespace {

util::Millis at(const std::string& iso) {
  auto t = util::parse_iso8601(iso);
  EXPECT_TRUE(t.has_value()) << "bad timestamp in test table: " << iso;
  return t.value_or(0);
}

// ISO-8601 with milliseconds only when there are some, so table rows stay readable.
std::string show(util::Millis t) {
  std::string s = util::format_iso8601(t);
  int64_t ms = ((t % 1000) + 1000) % 1000;
  if (ms != 0) {
    char buf[8];
    std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(ms));
    s.insert(s.size() - 1, buf);
  }
  return s;
}

struct ValidCase {
  std::string expr;
  std::string anchor;
  std::vector<std::string> runs; // the next runs after `anchor`, in order
  bool ends = false;             // true: there is no run after the last one listed
};

std::ostream& operator<<(std::ostream& os, const ValidCase& c) { return os << c.expr << " after " << c.anchor; }

// Expected runs were worked out by hand from the calendar (e.g. 2025-03-15 is a Saturday,
// 2025-06-01 a Sunday, 2028 is a leap year) and cross-checked with an independent
// day-by-day walk in Python.
const std::vector<ValidCase> k_valid_cases = {
    // Plain values, strictly-after semantics, sub-minute anchors.
    {"cron(0 10 * * ? *)", "2025-03-10T09:59:00Z", {"2025-03-10T10:00:00Z", "2025-03-11T10:00:00Z"}},
    {"cron(15 12 * * ? *)", "2025-03-10T12:15:00Z", {"2025-03-11T12:15:00Z"}},
    {"cron(0 10 * * ? *)", "2025-03-10T10:00:00.001Z", {"2025-03-11T10:00:00Z"}},
    {"cron(* * * * ? *)", "2025-03-10T10:00:30.500Z", {"2025-03-10T10:01:00Z", "2025-03-10T10:02:00Z"}},
    {"cron(0 0 ? * * *)", "2025-03-10T00:00:00Z", {"2025-03-11T00:00:00Z"}},
    {"cron(0  10  * * ? *)", "2025-03-10T00:00:00Z", {"2025-03-10T10:00:00Z"}},
    {"cron(0 0 1 1 ? *)", "2025-12-31T23:59:59.999Z", {"2026-01-01T00:00:00Z"}},
    // Steps, lists and ranges.
    {"cron(0/15 * * * ? *)",
     "2025-03-10T10:07:30Z",
     {"2025-03-10T10:15:00Z", "2025-03-10T10:30:00Z", "2025-03-10T10:45:00Z", "2025-03-10T11:00:00Z"}},
    {"cron(*/20 * * * ? *)", "2025-03-10T23:50:00Z", {"2025-03-11T00:00:00Z", "2025-03-11T00:20:00Z"}},
    {"cron(5-30/5 * * * ? *)", "2025-03-10T10:31:00Z", {"2025-03-10T11:05:00Z", "2025-03-10T11:10:00Z"}},
    {"cron(1/10 * * * ? *)",
     "2025-03-10T10:45:00Z",
     {"2025-03-10T10:51:00Z", "2025-03-10T11:01:00Z", "2025-03-10T11:11:00Z"}},
    {"cron(0 9,17 * * ? *)", "2025-03-10T12:00:00Z", {"2025-03-10T17:00:00Z", "2025-03-11T09:00:00Z"}},
    {"cron(30 22-23,0-1 * * ? *)",
     "2025-03-10T23:45:00Z",
     {"2025-03-11T00:30:00Z", "2025-03-11T01:30:00Z", "2025-03-11T22:30:00Z"}},
    {"cron(0 */6 * * ? *)",
     "2025-03-10T13:00:00Z",
     {"2025-03-10T18:00:00Z", "2025-03-11T00:00:00Z", "2025-03-11T06:00:00Z"}},
    {"cron(0 8 1 * ? *)", "2025-01-31T12:00:00Z", {"2025-02-01T08:00:00Z", "2025-03-01T08:00:00Z"}},
    {"cron(0 0 1-7 * ? *)", "2025-03-07T00:00:00Z", {"2025-04-01T00:00:00Z", "2025-04-02T00:00:00Z"}},
    {"cron(0 0 1 */3 ? *)",
     "2025-02-15T00:00:00Z",
     {"2025-04-01T00:00:00Z", "2025-07-01T00:00:00Z", "2025-10-01T00:00:00Z", "2026-01-01T00:00:00Z"}},
    // Day-of-week numbers and names (1 = SUN), case-insensitive.
    {"cron(0 18 ? * MON-FRI *)", "2025-03-14T18:00:00Z", {"2025-03-17T18:00:00Z", "2025-03-18T18:00:00Z"}},
    {"cron(30 8 ? * SUN,SAT *)", "2025-03-10T00:00:00Z", {"2025-03-15T08:30:00Z", "2025-03-16T08:30:00Z"}},
    {"cron(0 0 ? * 1 *)", "2025-03-10T00:00:00Z", {"2025-03-16T00:00:00Z"}},
    {"cron(0 0 ? * 7 *)", "2025-03-10T00:00:00Z", {"2025-03-15T00:00:00Z"}},
    {"cron(0 12 ? jan,Jul mon *)", "2025-01-27T12:00:00Z", {"2025-07-07T12:00:00Z", "2025-07-14T12:00:00Z"}},
    // Month ends and leap years.
    {"cron(0 0 31 * ? *)",
     "2025-04-01T00:00:00Z",
     {"2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z", "2025-08-31T00:00:00Z", "2025-10-31T00:00:00Z"}},
    {"cron(0 0 29 2 ? *)", "2025-01-01T00:00:00Z", {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
    {"cron(0 0 * FEB ? *)", "2028-02-28T23:00:00Z", {"2028-02-29T00:00:00Z", "2029-02-01T00:00:00Z"}},
    {"cron(0 0 30 2 ? *)", "2025-01-01T00:00:00Z", {}, true},
    // L in day-of-month.
    {"cron(0 0 L * ? *)",
     "2025-01-31T00:00:00Z",
     {"2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z", "2025-04-30T00:00:00Z"}},
    {"cron(0 0 L * ? *)", "2028-01-31T00:00:00Z", {"2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"}},
    {"cron(0 0 L 2 ? *)", "2027-03-01T00:00:00Z", {"2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"}},
    {"cron(0 0 l 4,6 ? *)",
     "2025-01-01T00:00:00Z",
     {"2025-04-30T00:00:00Z", "2025-06-30T00:00:00Z", "2026-04-30T00:00:00Z"}},
    // LW: last weekday (May 31 2025 is a Saturday, Aug 31 2025 a Sunday, Feb 28 2026 a Saturday).
    {"cron(0 21 LW * ? *)",
     "2025-05-01T00:00:00Z",
     {"2025-05-30T21:00:00Z", "2025-06-30T21:00:00Z", "2025-07-31T21:00:00Z", "2025-08-29T21:00:00Z"}},
    {"cron(0 0 LW 2 ? 2026)", "2026-01-01T00:00:00Z", {"2026-02-27T00:00:00Z"}, true},
    // W: nearest weekday, never leaving the month.
    {"cron(0 9 15W * ? *)",
     "2025-03-01T00:00:00Z",
     {"2025-03-14T09:00:00Z", "2025-04-15T09:00:00Z", "2025-05-15T09:00:00Z", "2025-06-16T09:00:00Z"}},
    {"cron(0 9 1W * ? *)",
     "2025-02-01T00:00:00Z",
     {"2025-02-03T09:00:00Z", "2025-03-03T09:00:00Z", "2025-04-01T09:00:00Z"}},
    {"cron(0 9 1W 6 ? 2025)", "2025-01-01T00:00:00Z", {"2025-06-02T09:00:00Z"}, true},
    {"cron(0 9 31W * ? *)",
     "2025-04-01T00:00:00Z",
     {"2025-05-30T09:00:00Z", "2025-07-31T09:00:00Z", "2025-08-29T09:00:00Z"}},
    {"cron(0 9 30W 11 ? 2025)", "2025-01-01T00:00:00Z", {"2025-11-28T09:00:00Z"}, true},
    {"cron(0 9 30W * ? *)", "2025-02-01T00:00:00Z", {"2025-03-31T09:00:00Z", "2025-04-30T09:00:00Z"}},
    {"cron(0 0 15W 2 ? 2026)", "2026-01-01T00:00:00Z", {"2026-02-16T00:00:00Z"}, true},
    // L, nL and # in day-of-week.
    {"cron(0 12 ? * L *)", "2025-03-10T00:00:00Z", {"2025-03-15T12:00:00Z", "2025-03-22T12:00:00Z"}},
    {"cron(0 12 ? * 6L *)",
     "2025-01-01T00:00:00Z",
     {"2025-01-31T12:00:00Z", "2025-02-28T12:00:00Z", "2025-03-28T12:00:00Z"}},
    {"cron(0 0 ? * 1L *)", "2025-03-01T00:00:00Z", {"2025-03-30T00:00:00Z", "2025-04-27T00:00:00Z"}},
    {"cron(0 12 ? * FRIL *)", "2025-02-01T00:00:00Z", {"2025-02-28T12:00:00Z"}},
    {"cron(0 12 ? * 6#3 *)",
     "2025-01-01T00:00:00Z",
     {"2025-01-17T12:00:00Z", "2025-02-21T12:00:00Z", "2025-03-21T12:00:00Z"}},
    {"cron(0 10 ? * 3#2 *)", "2025-03-01T00:00:00Z", {"2025-03-11T10:00:00Z", "2025-04-08T10:00:00Z"}},
    {"cron(0 0 ? * mon#1 *)", "2025-03-01T00:00:00Z", {"2025-03-03T00:00:00Z", "2025-04-07T00:00:00Z"}},
    {"cron(0 12 ? * 2#5 *)",
     "2025-01-01T00:00:00Z",
     {"2025-03-31T12:00:00Z", "2025-06-30T12:00:00Z", "2025-09-29T12:00:00Z"}},
    {"cron(0 0 ? * 6#5 *)", "2025-01-01T00:00:00Z", {"2025-01-31T00:00:00Z", "2025-05-30T00:00:00Z"}},
    // Year bounds.
    {"cron(0 0 1 1 ? 2020)", "2025-01-01T00:00:00Z", {}, true},
    {"cron(59 23 31 12 ? 2199)", "2199-12-31T23:58:00Z", {"2199-12-31T23:59:00Z"}, true},
    {"cron(0 0 1 JAN ? 2026-2028)",
     "2025-06-01T00:00:00Z",
     {"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"},
     true},
    {"cron(0 0 1 1 ? 2025/2)", "2025-06-01T00:00:00Z", {"2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"}},
    {"cron(0 0 1 1 ? 2026,2030)", "2025-06-01T00:00:00Z", {"2026-01-01T00:00:00Z", "2030-01-01T00:00:00Z"}, true},
    // rate(): relative to the anchor, which keeps its milliseconds.
    {"rate(1 minute)", "2025-03-10T10:00:30.500Z", {"2025-03-10T10:01:30.500Z", "2025-03-10T10:02:30.500Z"}},
    {"rate(5 minutes)", "2025-03-10T10:00:00Z", {"2025-03-10T10:05:00Z", "2025-03-10T10:10:00Z"}},
    {"rate(1 hour)", "2025-03-10T23:30:00Z", {"2025-03-11T00:30:00Z"}},
    {"rate(12 hours)", "2025-03-10T18:00:00Z", {"2025-03-11T06:00:00Z", "2025-03-11T18:00:00Z"}},
    {"rate(1 day)", "2028-02-28T06:00:00Z", {"2028-02-29T06:00:00Z", "2028-03-01T06:00:00Z"}},
    {"rate(7 days)", "2025-12-29T00:00:00Z", {"2026-01-05T00:00:00Z"}},
};

class ScheduleValidTest : public testing::TestWithParam<ValidCase> {};

TEST_P(ScheduleValidTest, NextRuns) {
  const ValidCase& c = GetParam();
  ASSERT_FALSE(Schedule::parse_error(c.expr).has_value()) << Schedule::parse_error(c.expr)->message;
  auto schedule = Schedule::parse(c.expr);
  ASSERT_TRUE(schedule.has_value()) << schedule.error().message;
  EXPECT_EQ(schedule->expression(), c.expr);

  std::vector<std::string> expected;
  for (const auto& r : c.runs) {
    expected.push_back(show(at(r)));
  }
  size_t ask = c.runs.size() + (c.ends ? 1 : 0);
  std::vector<std::string> got;
  for (util::Millis t : schedule->next_runs(at(c.anchor), ask)) {
    got.push_back(show(t));
  }
  EXPECT_EQ(got, expected);
}

INSTANTIATE_TEST_SUITE_P(Table, ScheduleValidTest, testing::ValuesIn(k_valid_cases));

struct InvalidCase {
  std::string expr;
  size_t position; // 0-based
  std::string message_part;
};

std::ostream& operator<<(std::ostream& os, const InvalidCase& c) { return os << c.expr; }

const std::vector<InvalidCase> k_invalid_cases = {
    // Outer shape.
    {"", 0, "expected rate(...) or cron(...), got \"\""},
    {"every 5 minutes", 0, "expected rate(...) or cron(...), got \"every\""},
    {"Cron(0 10 * * ? *)", 0, "did you mean \"cron(...)\"?"},
    {"cron(0 10 * * ? *", 17, "expected \")\" to close cron(...), got end of expression"},
    {"cron(0 10 * * ? *) now", 18, "expected end of expression after \")\", got \" now\""},
    // Field count.
    {"cron(0 10 * * ?)", 15, "expected 6 fields (minutes hours day-of-month month day-of-week year), got 5"},
    {"cron(0 10 * * ? * 2025)", 18, "expected 6 fields (minutes hours day-of-month month day-of-week year), got 7"},
    {"cron()", 5, "got 0"},
    // Values out of range.
    {"cron(61 10 * * ? *)", 5, "expected a minute 0-59, got \"61\""},
    {"cron(0 24 * * ? *)", 7, "expected an hour 0-23, got \"24\""},
    {"cron(0 10 32 * ? *)", 10, "expected a day-of-month 1-31, got \"32\""},
    {"cron(0 10 * 13 ? *)", 12, "expected a month 1-12 or JAN-DEC, got \"13\""},
    {"cron(0 10 ? * 8 *)", 14, "expected a day-of-week 1-7 or SUN-SAT, got \"8\""},
    {"cron(0 10 * * ? 1969)", 16, "expected a year 1970-2199, got \"1969\""},
    {"cron(0 10 * * ? 2200)", 16, "expected a year 1970-2199, got \"2200\""},
    {"cron(0 10 * JANUARY ? *)", 12, "expected a month 1-12 or JAN-DEC, got \"JANUARY\""},
    {"cron(0 10 ? * THUR *)", 14, "got \"THUR\"; did you mean \"THU\"?"},
    {"cron(0 L * * ? *)", 7, "expected an hour 0-23, got \"L\""},
    // ? rules.
    {"cron(0 10 * * * *)", 14, "day-of-month and day-of-week cannot both be set; use ? in one of them"},
    {"cron(0 10 15 * MON *)", 15, "day-of-month and day-of-week cannot both be set; use ? in one of them"},
    {"cron(0 10 ? * ? *)", 14, "day-of-month and day-of-week cannot both be ?"},
    {"cron(? 10 * * ? *)", 5, "expected a minute 0-59, got \"?\""},
    {"cron(0 10 ?,1 * ? *)", 10, "expected \"?\" alone in day-of-month, got \"?,1\""},
    // L, W and #.
    {"cron(0 10 L-3 * ? *)", 10, "expected L, LW or a day-of-month 1-31, got \"L-3\""},
    {"cron(0 10 15,L * ? *)", 10, "expected \"L\" alone in day-of-month, got \"15,L\""},
    {"cron(0 10 32W * ? *)", 10, "expected a day-of-month 1-31 before \"W\", got \"32\""},
    {"cron(0 10 ? * 3#1,6#3 *)", 14, "expected \"3#1\" alone in day-of-week, got \"3#1,6#3\""},
    {"cron(0 10 ? * 6#6 *)", 16, "expected a week 1-5 after \"#\", got \"6\""},
    // Lists, ranges and steps.
    {"cron(0 10 ? * MON/2 *)", 17, "without \"/\", got \"MON/2\""},
    {"cron(*/0 * * * ? *)", 7, "expected a step 1-60, got \"0\""},
    {"cron(30-5 * * * ? *)", 5, "expected an ascending range like 1-5, got \"30-5\""},
    {"cron(0 10 1,,2 * ? *)", 12, "expected a day-of-month 1-31, got \"\""},
    {"cron(0 10 * * ? *,)", 18, "expected a year 1970-2199, got \"\""},
    {"cron(5-10-15 * * * ? *)", 9, "expected \",\" or a space after \"5-10\", got \"-15\""},
    // rate().
    {"rate(1 minutes)", 7, "expected \"minute\" for a value of 1, got \"minutes\""},
    {"rate(5 minute)", 7, "expected \"minutes\" for a value of 5, got \"minute\""},
    {"rate(0 minutes)", 5, "expected a positive whole number, got \"0\""},
    {"rate(5 weeks)", 7, "expected a unit minute(s), hour(s) or day(s), got \"weeks\""},
    {"rate(1 Hour)", 7, "did you mean \"hour\"?"},
    {"rate(5)", 6, "expected a unit minute(s), hour(s) or day(s) after \"5\""},
    {"rate()", 5, "expected a value and a unit like rate(5 minutes)"},
    {"rate(5 minutes now)", 15, "expected \")\" after the unit, got \"now\""},
};

class ScheduleInvalidTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(ScheduleInvalidTest, ReportsPositionAndMessage) {
  const InvalidCase& c = GetParam();
  auto err = Schedule::parse_error(c.expr);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->position, c.position) << err->message;
  EXPECT_NE(err->message.find(c.message_part), std::string::npos) << err->message;

  auto parsed = Schedule::parse(c.expr);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code, ErrorCode::invalid_config);
  EXPECT_EQ(parsed.error().message, "at column " + std::to_string(c.position + 1) + ": " + err->message);
}

INSTANTIATE_TEST_SUITE_P(Table, ScheduleInvalidTest, testing::ValuesIn(k_invalid_cases));

TEST(ScheduleTest, TablesAreLargeEnough) {
  EXPECT_GE(k_valid_cases.size(), 40u);
  EXPECT_GE(k_invalid_cases.size(), 20u);
}

TEST(ScheduleTest, ParseReportsOneBasedColumn) {
  auto parsed = Schedule::parse("cron(61 10 * * ? *)");
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message, "at column 6: expected a minute 0-59, got \"61\"");
}

TEST(ScheduleTest, RateAccessors) {
  auto rate = Schedule::parse("rate(2 hours)");
  ASSERT_TRUE(rate.has_value());
  EXPECT_TRUE(rate->is_rate());
  EXPECT_EQ(rate->rate_ms(), 2 * 3600 * 1000);

  auto cron = Schedule::parse("cron(0 10 * * ? *)");
  ASSERT_TRUE(cron.has_value());
  EXPECT_FALSE(cron->is_rate());
  EXPECT_EQ(cron->rate_ms(), 0);
}

TEST(ScheduleTest, AnchorsBefore1970StartAtTheEpoch) {
  auto s = Schedule::parse("cron(0 0 1 1 ? *)");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->next_after(-1000), 0);
}

TEST(ScheduleTest, NothingAfter2199) {
  auto s = Schedule::parse("cron(* * * * ? *)");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->next_after(at("2199-12-31T23:59:00Z")), std::nullopt);
  EXPECT_EQ(s->next_after(at("2300-01-01T00:00:00Z")), std::nullopt);
}

TEST(ScheduleTest, DefaultConstructedHasNoRuns) {
  Schedule s;
  EXPECT_EQ(s.next_after(0), std::nullopt);
  EXPECT_TRUE(s.next_runs(0, 3).empty());
}

// A schedule that never fires walks every day up to 2199 at most; it must still be quick.
TEST(ScheduleTest, NeverMatchingSchedulesEndQuickly) {
  for (const char* expr : {"cron(0 0 31 4,6,9,11 ? *)", "cron(0 0 30 2 ? *)", "cron(0 0 ? 2 2#5 2026)"}) {
    SCOPED_TRACE(expr);
    auto s = Schedule::parse(expr);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    auto start = util::steady_ms();
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(s->next_after(at("1970-01-01T00:00:00Z")), std::nullopt);
    }
    EXPECT_LT(util::steady_ms() - start, 5000);
  }
}

} // namespace
} // namespace idp::core
