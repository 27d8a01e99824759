#pragma once
// EventBridge schedule expressions: rate(N unit) and cron(min hour dom month dow year),
// evaluated in UTC. No I/O.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::core {

struct ScheduleError {
  size_t position = 0; // 0-based offset into the expression where the problem is
  std::string message; // "expected a minute 0-59, got \"61\""
};

class Schedule {
public:
  // Parses an expression; on failure the error message is "at column N: ..." (1-based)
  // and parse_error() gives the structured form.
  static Expected<Schedule> parse(std::string_view expr);
  // The structured error for an invalid expression, nullopt when it is valid.
  static std::optional<ScheduleError> parse_error(std::string_view expr);

  // The first run strictly after `t` (UTC); nullopt when there is none (e.g. a past year).
  std::optional<util::Millis> next_after(util::Millis t) const;
  // `count` runs after `t`.
  std::vector<util::Millis> next_runs(util::Millis t, size_t count) const;

  const std::string& expression() const { return m_expr; }
  bool is_rate() const { return m_rate_ms > 0; }
  util::Millis rate_ms() const { return m_rate_ms; }

  // Parsed cron fields, as sets; public so the evaluator can be tested directly.
  struct Field {
    std::vector<bool> allowed; // index = value
    bool any = false;          // '*' or '?'
    bool question = false;     // '?'
  };
  struct DayOfMonthSpec {
    bool last = false;         // L
    int last_offset = 0;       // L-3
    bool last_weekday = false; // LW
    int nearest_weekday = 0;   // 15W
  };
  struct DayOfWeekSpec {
    int last_of_month = 0;     // 5L: last Thursday (1=SUN..7=SAT)
    int nth_day = 0;           // 6#3: third Friday
    int nth = 0;
  };

private:
  std::string m_expr;
  util::Millis m_rate_ms = 0;
  Field m_minute, m_hour, m_dom, m_month, m_dow, m_year;
  DayOfMonthSpec m_dom_spec;
  DayOfWeekSpec m_dow_spec;
  friend struct ScheduleParser;
};

} // namespace idp::core
