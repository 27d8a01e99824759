// TODO(dev): full EventBridge parser; this stub only checks the outer shape.
#include "core/schedule.hpp"

#include "util/strings.hpp"

namespace idp::core {

std::optional<ScheduleError> Schedule::parse_error(std::string_view expr) {
  if (util::starts_with(expr, "rate(") || util::starts_with(expr, "cron(")) {
    if (!expr.empty() && expr.back() == ')') {
      return std::nullopt;
    }
    return ScheduleError{expr.size(), "expected \")\""};
  }
  return ScheduleError{0, "expected rate(...) or cron(...)"};
}

Expected<Schedule> Schedule::parse(std::string_view expr) {
  if (auto e = parse_error(expr)) {
    return make_error(ErrorCode::invalid_config, "at column " + std::to_string(e->position + 1) + ": " + e->message);
  }
  Schedule s;
  s.m_expr = std::string(expr);
  return s;
}

std::optional<util::Millis> Schedule::next_after(util::Millis) const { return std::nullopt; }

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
