#pragma once
// EventBridge schedule expressions: rate(N unit) and cron(min hour dom month dow year),
// evaluated in UTC. No I/O.
//
// Accepted syntax (AWS "Cron expressions reference"; where AWS documents nothing we reject):
//   rate(1 minute|hour|day) and rate(N minutes|hours|days) for N >= 2; singular only for 1.
//   cron(minutes hours day-of-month month day-of-week year), exactly 6 fields:
//     minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
//     day-of-week 1-7 (1 = SUN) or SUN-SAT, year 1970-2199; names are case-insensitive.
//     Every field takes lists (1,5), ascending ranges (MON-FRI), * and steps (*/5, 0/15,
//     5-30/5), except that day-of-week takes no "/" (not in the AWS table).
//     day-of-month also takes ?, L (last day), LW (last weekday) and 15W (weekday nearest
//     the 15th, never leaving the month). day-of-week also takes ?, L (= SAT),
//     6L (last Friday) and 6#3 (third Friday). ?, L, LW, W, nL and # stand alone, never in a
//     list; offsets like L-3 are rejected (not in the AWS docs).
//     Exactly one of day-of-month and day-of-week is ?.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::core {

struct ScheduleError {
  size_t position = 0; // 0-based offset into the expression where the offending token starts
  std::string message; // "expected a minute 0-59, got \"61\"" (lowercase, values quoted)
};

class Schedule {
public:
  // Parses an expression. Fails with ErrorCode::invalid_config and the message
  // "at column N: <message>" (N 1-based); parse_error() gives the structured form.
  static Expected<Schedule> parse(std::string_view expr);
  // The structured error for an invalid expression, nullopt when it is valid.
  static std::optional<ScheduleError> parse_error(std::string_view expr);

  // cron: the first matching whole minute strictly after `t` (unix ms, UTC); nullopt when
  // there is none (e.g. only past years). Walks year -> month -> day -> hour -> minute,
  // so a miss costs at most one check per day up to 2199.
  // rate: `t` + the interval. Rate schedules run relative to when they were created, so
  // the caller passes that anchor or the previous run as `t`; never nullopt.
  // Pure and thread-safe.
  std::optional<util::Millis> next_after(util::Millis t) const;
  // Up to `count` consecutive runs after `t` (fewer when the schedule ends).
  std::vector<util::Millis> next_runs(util::Millis t, size_t count) const;

  const std::string& expression() const { return m_expr; }
  bool is_rate() const { return m_rate_ms > 0; }
  util::Millis rate_ms() const { return m_rate_ms; }

  // Parsed cron fields.
  struct Field {
    std::vector<bool> allowed; // index = value; day-of-week 1 = SUN .. 7 = SAT
    bool any = false;          // '*' or '?'
    bool question = false;     // '?'
  };
  // day-of-month forms that are not a plain set of days; at most one is set.
  struct DayOfMonthSpec {
    bool last = false;         // L
    bool last_weekday = false; // LW
    int nearest_weekday = 0;   // 15W -> 15
  };
  // day-of-week forms that are not a plain set of days; at most one is set.
  struct DayOfWeekSpec {
    int last_of_month = 0; // 5L: last Thursday (1=SUN..7=SAT)
    int nth_day = 0;       // 6#3: third Friday -> nth_day 6, nth 3
    int nth = 0;
  };

private:
  bool day_matches(int year, unsigned month, unsigned day) const;

  std::string m_expr;
  util::Millis m_rate_ms = 0;
  Field m_minute, m_hour, m_dom, m_month, m_dow, m_year;
  DayOfMonthSpec m_dom_spec;
  DayOfWeekSpec m_dow_spec;
  friend struct ScheduleParser;
};

} // namespace idp::core
