#include "core/schedule.hpp"

#include <chrono>
#include <cstdint>
#include <limits>

#include "util/strings.hpp"

namespace idp::core {

namespace {

namespace chr = std::chrono;

constexpr int k_min_year = 1970;
constexpr int k_max_year = 2199;
constexpr int64_t k_minute_ms = 60'000;
constexpr int64_t k_day_minutes = 24 * 60;
// Nine digits keep value * (ms per day) far inside int64.
constexpr int64_t k_max_rate_value = 999'999'999;
constexpr size_t k_max_number_digits = 9;

const std::vector<std::string> k_month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
const std::vector<std::string> k_day_names = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

enum class FieldKind { minute, hour, day_of_month, month, day_of_week, year };

struct FieldInfo {
  FieldKind kind;
  const char* name;     // "day-of-month", for "alone in ..." messages
  const char* expected; // "a minute 0-59", for "expected ..., got ..." messages
  int min;
  int max;
  const std::vector<std::string>* names; // value min + i is names[i]; nullptr if none
};

const FieldInfo k_fields[] = {
    {FieldKind::minute, "minutes", "a minute 0-59", 0, 59, nullptr},
    {FieldKind::hour, "hours", "an hour 0-23", 0, 23, nullptr},
    {FieldKind::day_of_month, "day-of-month", "a day-of-month 1-31", 1, 31, nullptr},
    {FieldKind::month, "month", "a month 1-12 or JAN-DEC", 1, 12, &k_month_names},
    {FieldKind::day_of_week, "day-of-week", "a day-of-week 1-7 or SUN-SAT", 1, 7, &k_day_names},
    {FieldKind::year, "year", "a year 1970-2199", k_min_year, k_max_year, nullptr},
};

using Status = tl::expected<void, ScheduleError>;

tl::unexpected<ScheduleError> fail(size_t position, std::string message) {
  return tl::unexpected(ScheduleError{position, std::move(message)});
}

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }

bool all_of(std::string_view s, bool (*pred)(char)) {
  for (char c : s) {
    if (!pred(c)) {
      return false;
    }
  }
  return true;
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return out;
}

// A run of digits as a number; nullopt when empty, not all digits, or too long to matter.
std::optional<int64_t> to_number(std::string_view s) {
  if (s.empty() || s.size() > k_max_number_digits || !all_of(s, is_digit)) {
    return std::nullopt;
  }
  int64_t v = 0;
  for (char c : s) {
    v = v * 10 + (c - '0');
  }
  return v;
}

// A piece of the expression: where it starts and its text.
struct Token {
  size_t pos = 0;
  std::string_view text;
};

// Splits expr[begin, end) on runs of white space.
std::vector<Token> split_words(std::string_view expr, size_t begin, size_t end) {
  std::vector<Token> out;
  size_t i = begin;
  while (i < end) {
    while (i < end && is_space(expr[i])) {
      ++i;
    }
    size_t start = i;
    while (i < end && !is_space(expr[i])) {
      ++i;
    }
    if (i > start) {
      out.push_back({start, expr.substr(start, i - start)});
    }
  }
  return out;
}

unsigned days_in_month(int year, unsigned month) {
  auto last = chr::year_month_day_last(chr::year(year), chr::month_day_last(chr::month(month)));
  return static_cast<unsigned>(last.day());
}

// 1 = SUN .. 7 = SAT, as in the day-of-week field.
int day_of_week(int year, unsigned month, unsigned day) {
  chr::weekday wd(chr::sys_days(chr::year(year) / chr::month(month) / chr::day(day)));
  return static_cast<int>(wd.c_encoding()) + 1;
}

bool is_weekend(int dow) { return dow == 1 || dow == 7; }

// Quartz/AWS W rule: Saturday moves back to Friday and Sunday forward to Monday, unless
// that would leave the month, in which case it moves the other way (1st on a Saturday ->
// Monday 3rd; last day on a Sunday -> Friday).
unsigned nearest_weekday(int year, unsigned month, unsigned target, unsigned month_days) {
  int dow = day_of_week(year, month, target);
  if (dow == 7) {
    return target == 1 ? target + 2 : target - 1;
  }
  if (dow == 1) {
    return target == month_days ? target - 2 : target + 1;
  }
  return target;
}

unsigned last_weekday(int year, unsigned month, unsigned month_days) {
  unsigned d = month_days;
  while (is_weekend(day_of_week(year, month, d))) {
    --d;
  }
  return d;
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t minutes_since_epoch(int year, unsigned month, unsigned day) {
  chr::sys_days d(chr::year(year) / chr::month(month) / chr::day(day));
  return static_cast<int64_t>(d.time_since_epoch().count()) * k_day_minutes;
}

} // namespace

// Recursive-descent over the expression, recording the offset of every token so each error
// points at the text that caused it.
struct ScheduleParser {
  std::string_view expr;
  Schedule out;

  tl::expected<Schedule, ScheduleError> run() {
    out.m_expr = std::string(expr);
    bool is_rate = util::starts_with(expr, "rate(");
    bool is_cron = util::starts_with(expr, "cron(");
    if (!is_rate && !is_cron) {
      size_t n = 0;
      while (n < expr.size() && n < 20 && expr[n] != '(' && !is_space(expr[n])) {
        ++n;
      }
      std::string head(expr.substr(0, n));
      std::string msg = "expected rate(...) or cron(...), got " + util::quote(head);
      std::string lower = util::to_lower(head);
      if (lower == "rate" || lower == "cron") {
        msg += "; did you mean \"" + lower + "(...)\"?";
      }
      return fail(0, msg);
    }
    size_t open = 5; // just past "rate(" / "cron("
    size_t close = expr.find(')', open);
    if (close == std::string_view::npos) {
      return fail(expr.size(),
                  "expected \")\" to close " + std::string(expr.substr(0, 4)) + "(...), got end of expression");
    }
    if (close + 1 < expr.size()) {
      return fail(close + 1, "expected end of expression after \")\", got " + util::quote(expr.substr(close + 1)));
    }
    if (is_rate) {
      IDP_TRY(parse_rate(open, close));
    } else {
      IDP_TRY(parse_cron(open, close));
    }
    return std::move(out);
  }

  Status parse_rate(size_t open, size_t close) {
    auto words = split_words(expr, open, close);
    if (words.empty()) {
      return fail(close, "expected a value and a unit like rate(5 minutes), got \")\"");
    }
    const Token& value_tok = words[0];
    if (!all_of(value_tok.text, is_digit) || value_tok.text.find_first_not_of('0') == std::string_view::npos) {
      return fail(value_tok.pos, "expected a positive whole number, got " + util::quote(value_tok.text));
    }
    auto value = to_number(value_tok.text);
    if (!value || *value > k_max_rate_value) {
      return fail(value_tok.pos, "expected a value up to " + std::to_string(k_max_rate_value) + ", got " +
                                     util::quote(value_tok.text));
    }
    if (words.size() < 2) {
      return fail(close,
                  "expected a unit minute(s), hour(s) or day(s) after " + util::quote(value_tok.text) + ", got \")\"");
    }
    const Token& unit_tok = words[1];
    if (words.size() > 2) {
      return fail(words[2].pos, "expected \")\" after the unit, got " + util::quote(words[2].text));
    }
    struct Unit {
      const char* singular;
      const char* plural;
      int64_t ms;
    };
    static const Unit k_units[] = {
        {"minute", "minutes", k_minute_ms},
        {"hour", "hours", 60 * k_minute_ms},
        {"day", "days", k_day_minutes * k_minute_ms},
    };
    std::string lower = util::to_lower(unit_tok.text);
    for (const Unit& u : k_units) {
      bool singular = unit_tok.text == u.singular;
      bool plural = unit_tok.text == u.plural;
      if (!singular && !plural) {
        if (lower == u.singular || lower == u.plural) {
          return fail(unit_tok.pos, "expected a unit minute(s), hour(s) or day(s), got " + util::quote(unit_tok.text) +
                                        "; did you mean \"" + lower + "\"?");
        }
        continue;
      }
      // AWS requires the singular for 1 and the plural otherwise.
      if (*value == 1 && plural) {
        return fail(unit_tok.pos,
                    std::string("expected \"") + u.singular + "\" for a value of 1, got " + util::quote(unit_tok.text));
      }
      if (*value != 1 && singular) {
        return fail(unit_tok.pos, std::string("expected \"") + u.plural + "\" for a value of " +
                                      std::to_string(*value) + ", got " + util::quote(unit_tok.text));
      }
      out.m_rate_ms = *value * u.ms;
      return {};
    }
    return fail(unit_tok.pos, "expected a unit minute(s), hour(s) or day(s), got " + util::quote(unit_tok.text));
  }

  Status parse_cron(size_t open, size_t close) {
    auto words = split_words(expr, open, close);
    if (words.size() != 6) {
      size_t pos = words.size() < 6 ? close : words[6].pos;
      return fail(pos, "expected 6 fields (minutes hours day-of-month month day-of-week year), got " +
                           std::to_string(words.size()));
    }
    Schedule::Field* targets[] = {&out.m_minute, &out.m_hour, &out.m_dom, &out.m_month, &out.m_dow, &out.m_year};
    for (size_t i = 0; i < 6; ++i) {
      IDP_TRY(parse_field(k_fields[i], words[i], *targets[i]));
    }
    // AWS: exactly one of the two day fields is '?'.
    const Token& dow = words[4];
    if (!out.m_dom.question && !out.m_dow.question) {
      return fail(dow.pos, "day-of-month and day-of-week cannot both be set; use ? in one of them");
    }
    if (out.m_dom.question && out.m_dow.question) {
      return fail(dow.pos, "day-of-month and day-of-week cannot both be ?; set one of them");
    }
    return {};
  }

  Status parse_field(const FieldInfo& info, const Token& field_tok, Schedule::Field& field) {
    field.allowed.assign(static_cast<size_t>(info.max) + 1, false);
    bool day_field = info.kind == FieldKind::day_of_month || info.kind == FieldKind::day_of_week;
    if (field_tok.text == "?") {
      if (!day_field) {
        return fail(field_tok.pos, std::string("expected ") + info.expected + ", got \"?\"");
      }
      field.any = true;
      field.question = true;
      for (int v = info.min; v <= info.max; ++v) {
        field.allowed[static_cast<size_t>(v)] = true;
      }
      return {};
    }
    bool is_list = field_tok.text.find(',') != std::string_view::npos;
    size_t begin = field_tok.pos;
    size_t end = field_tok.pos + field_tok.text.size();
    size_t item_begin = begin;
    while (true) {
      size_t item_end = expr.find(',', item_begin);
      if (item_end == std::string_view::npos || item_end > end) {
        item_end = end;
      }
      Token item{item_begin, expr.substr(item_begin, item_end - item_begin)};
      IDP_TRY_ASSIGN(bool special, parse_special(info, item, field));
      if (special && is_list) {
        return fail(begin, "expected " + util::quote(item.text) + " alone in " + info.name + ", got " +
                               util::quote(field_tok.text));
      }
      if (!special) {
        IDP_TRY(parse_item(info, item, field));
      }
      if (item_end == end) {
        break;
      }
      item_begin = item_end + 1;
    }
    return {};
  }

  // The forms that must stand alone: '?' inside a list, L, LW, 15W (day-of-month) and
  // L, 6L, 6#3 (day-of-week). Returns whether `item` was one of them.
  tl::expected<bool, ScheduleError> parse_special(const FieldInfo& info, const Token& item, Schedule::Field& field) {
    bool day_field = info.kind == FieldKind::day_of_month || info.kind == FieldKind::day_of_week;
    if (item.text == "?") {
      if (!day_field) {
        return fail(item.pos, std::string("expected ") + info.expected + ", got \"?\"");
      }
      return true;
    }
    std::string upper = to_upper(item.text);
    if (info.kind == FieldKind::day_of_month) {
      if (upper == "L") {
        out.m_dom_spec.last = true;
        return true;
      }
      if (upper == "LW") {
        out.m_dom_spec.last_weekday = true;
        return true;
      }
      if (util::starts_with(upper, "L-")) {
        return fail(item.pos, "expected L, LW or a day-of-month 1-31, got " + util::quote(item.text) +
                                  "; offsets like L-3 are not supported");
      }
      if (upper.size() >= 2 && upper.back() == 'W' && all_of(item.text.substr(0, upper.size() - 1), is_digit)) {
        auto day = to_number(item.text.substr(0, upper.size() - 1));
        if (!day || *day < 1 || *day > 31) {
          return fail(item.pos, "expected a day-of-month 1-31 before \"W\", got " +
                                    util::quote(item.text.substr(0, upper.size() - 1)));
        }
        out.m_dom_spec.nearest_weekday = static_cast<int>(*day);
        field.allowed[static_cast<size_t>(*day)] = true;
        return true;
      }
      return false;
    }
    if (info.kind != FieldKind::day_of_week) {
      return false;
    }
    if (upper == "L") {
      // L alone in day-of-week is the last day of the week: Saturday.
      field.allowed[7] = true;
      return true;
    }
    size_t hash = item.text.find('#');
    if (hash != std::string_view::npos) {
      IDP_TRY_ASSIGN(int day, parse_value(info, {item.pos, item.text.substr(0, hash)}));
      Token week{item.pos + hash + 1, item.text.substr(hash + 1)};
      auto nth = to_number(week.text);
      if (!nth || *nth < 1 || *nth > 5) {
        return fail(week.pos, "expected a week 1-5 after \"#\", got " + util::quote(week.text));
      }
      out.m_dow_spec.nth_day = day;
      out.m_dow_spec.nth = static_cast<int>(*nth);
      field.allowed[static_cast<size_t>(day)] = true;
      return true;
    }
    if (upper.size() >= 2 && upper.back() == 'L' && all_of(item.text, is_alnum)) {
      IDP_TRY_ASSIGN(int day, parse_value(info, {item.pos, item.text.substr(0, upper.size() - 1)}));
      out.m_dow_spec.last_of_month = day;
      field.allowed[static_cast<size_t>(day)] = true;
      return true;
    }
    return false;
  }

  // value | value-value | * , each optionally followed by /step.
  Status parse_item(const FieldInfo& info, const Token& item, Schedule::Field& field) {
    size_t end = item.pos + item.text.size();
    size_t p = item.pos;
    int lo = info.min;
    int hi = info.max;
    bool star = false;
    bool range = false;
    if (p < end && expr[p] == '*') {
      star = true;
      ++p;
    } else {
      Token first = alnum_run(p, end);
      IDP_TRY_ASSIGN(lo, parse_value(info, first));
      hi = lo;
      p += first.text.size();
      if (p < end && expr[p] == '-') {
        Token second = alnum_run(p + 1, end);
        IDP_TRY_ASSIGN(hi, parse_value(info, second));
        if (hi < lo) {
          return fail(item.pos, "expected an ascending range like 1-5, got " +
                                    util::quote(expr.substr(item.pos, second.pos + second.text.size() - item.pos)));
        }
        range = true;
        p = second.pos + second.text.size();
      }
    }
    int step = 1;
    if (p < end && expr[p] == '/') {
      if (info.kind == FieldKind::day_of_week) {
        return fail(p, "expected a day-of-week list or range without \"/\", got " +
                           util::quote(expr.substr(item.pos, end - item.pos)) +
                           "; steps are not allowed in day-of-week");
      }
      // "5/15" means from 5 to the field's maximum, every 15 (Quartz, AWS docs "1/10").
      if (!star && !range) {
        hi = info.max;
      }
      Token step_tok{p + 1, expr.substr(p + 1, end - p - 1)};
      int span = info.max - info.min + 1;
      auto n = to_number(step_tok.text);
      if (!n || *n < 1 || *n > span) {
        return fail(step_tok.pos, "expected a step 1-" + std::to_string(span) + ", got " + util::quote(step_tok.text));
      }
      step = static_cast<int>(*n);
      p = end;
    }
    if (p < end) {
      return fail(p, "expected \",\" or a space after " + util::quote(expr.substr(item.pos, p - item.pos)) + ", got " +
                         util::quote(expr.substr(p, end - p)));
    }
    for (int v = lo; v <= hi; v += step) {
      field.allowed[static_cast<size_t>(v)] = true;
    }
    if (star && step == 1) {
      field.any = true;
    }
    return {};
  }

  // The longest run of letters and digits starting at `p`; empty when expr[p] is neither.
  Token alnum_run(size_t p, size_t end) const {
    size_t e = p;
    while (e < end && is_alnum(expr[e])) {
      ++e;
    }
    return {p, expr.substr(p, e - p)};
  }

  // A number in range or (month, day-of-week) a three-letter name, case-insensitive.
  tl::expected<int, ScheduleError> parse_value(const FieldInfo& info, const Token& tok) {
    if (auto n = to_number(tok.text)) {
      if (*n >= info.min && *n <= info.max) {
        return static_cast<int>(*n);
      }
    } else if (info.names != nullptr) {
      std::string upper = to_upper(tok.text);
      for (size_t i = 0; i < info.names->size(); ++i) {
        if (upper == (*info.names)[i]) {
          return info.min + static_cast<int>(i);
        }
      }
    }
    std::string got(tok.text);
    if (got.empty() && tok.pos < expr.size()) {
      // Nothing alphanumeric here ("#3", "-5"): show what is there instead.
      size_t e = tok.pos;
      while (e < expr.size() && !is_space(expr[e]) && expr[e] != ',' && expr[e] != ')') {
        ++e;
      }
      got = std::string(expr.substr(tok.pos, e - tok.pos));
    }
    std::string msg = std::string("expected ") + info.expected + ", got " + util::quote(got);
    if (info.names != nullptr && !got.empty() && all_of(got, is_alpha)) {
      std::string guess = util::closest_match(got, *info.names);
      if (!guess.empty()) {
        msg += "; did you mean \"" + guess + "\"?";
      }
    }
    return fail(tok.pos, msg);
  }
};

std::optional<ScheduleError> Schedule::parse_error(std::string_view expr) {
  auto parsed = ScheduleParser{expr, {}}.run();
  if (parsed) {
    return std::nullopt;
  }
  return parsed.error();
}

Expected<Schedule> Schedule::parse(std::string_view expr) {
  auto parsed = ScheduleParser{expr, {}}.run();
  if (!parsed) {
    const ScheduleError& e = parsed.error();
    return make_error(ErrorCode::invalid_config, "at column " + std::to_string(e.position + 1) + ": " + e.message);
  }
  return std::move(*parsed);
}

bool Schedule::day_matches(int year, unsigned month, unsigned day) const {
  unsigned month_days = days_in_month(year, month);
  if (m_dom.question) {
    int dow = day_of_week(year, month, day);
    if (m_dow_spec.nth > 0) {
      return dow == m_dow_spec.nth_day && static_cast<int>((day - 1) / 7 + 1) == m_dow_spec.nth;
    }
    if (m_dow_spec.last_of_month > 0) {
      return dow == m_dow_spec.last_of_month && day + 7 > month_days;
    }
    return m_dow.allowed[static_cast<size_t>(dow)];
  }
  if (m_dom_spec.last) {
    return day == month_days;
  }
  if (m_dom_spec.last_weekday) {
    return day == last_weekday(year, month, month_days);
  }
  if (m_dom_spec.nearest_weekday > 0) {
    // 31W in a 30-day month never matches, like a plain 31.
    auto target = static_cast<unsigned>(m_dom_spec.nearest_weekday);
    return target <= month_days && day == nearest_weekday(year, month, target, month_days);
  }
  return m_dom.allowed[day];
}

std::optional<util::Millis> Schedule::next_after(util::Millis t) const {
  if (is_rate()) {
    if (t > std::numeric_limits<util::Millis>::max() - m_rate_ms) {
      return std::nullopt;
    }
    return t + m_rate_ms;
  }
  if (m_year.allowed.empty()) {
    return std::nullopt; // default-constructed, never parsed
  }
  const int64_t end_minute = minutes_since_epoch(k_max_year + 1, 1, 1);
  int64_t minute = floor_div(t, k_minute_ms) + 1;
  if (minute >= end_minute) {
    return std::nullopt;
  }
  if (minute < 0) {
    minute = 0; // nothing can match before 1970
  }
  int64_t days = floor_div(minute, k_day_minutes);
  int64_t minute_of_day = minute - days * k_day_minutes;
  chr::year_month_day start{chr::sys_days(chr::days(days))};
  const int start_year = static_cast<int>(start.year());
  const unsigned start_month = static_cast<unsigned>(start.month());
  const unsigned start_day = static_cast<unsigned>(start.day());
  const int start_hour = static_cast<int>(minute_of_day / 60);
  const int start_min = static_cast<int>(minute_of_day % 60);

  // Each level starts at the start time's value only while every level above it is still on
  // the start time; otherwise it starts from its minimum.
  for (int y = start_year; y <= k_max_year; ++y) {
    if (!m_year.allowed[static_cast<size_t>(y)]) {
      continue;
    }
    bool on_start = y == start_year;
    for (unsigned m = on_start ? start_month : 1; m <= 12; ++m) {
      if (!m_month.allowed[m]) {
        continue;
      }
      bool m_on_start = on_start && m == start_month;
      unsigned month_days = days_in_month(y, m);
      for (unsigned d = m_on_start ? start_day : 1; d <= month_days; ++d) {
        if (!day_matches(y, m, d)) {
          continue;
        }
        bool d_on_start = m_on_start && d == start_day;
        for (int h = d_on_start ? start_hour : 0; h < 24; ++h) {
          if (!m_hour.allowed[static_cast<size_t>(h)]) {
            continue;
          }
          bool h_on_start = d_on_start && h == start_hour;
          for (int mi = h_on_start ? start_min : 0; mi < 60; ++mi) {
            if (m_minute.allowed[static_cast<size_t>(mi)]) {
              return (minutes_since_epoch(y, m, d) + h * 60 + mi) * k_minute_ms;
            }
          }
        }
      }
    }
  }
  return std::nullopt;
}

std::vector<util::Millis> Schedule::next_runs(util::Millis t, size_t count) const {
  std::vector<util::Millis> out;
  for (size_t i = 0; i < count; ++i) {
    auto n = next_after(t);
    if (!n) {
      break;
    }
    out.push_back(*n);
    t = *n;
  }
  return out;
}

} // namespace idp::core
