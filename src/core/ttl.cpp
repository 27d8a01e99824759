#include "core/ttl.hpp"

#include "util/strings.hpp"

namespace idp::core {

Expected<util::Millis> parse_duration(std::string_view text) {
  auto bad = [&] {
    return make_error(ErrorCode::invalid_argument,
                      "expected a duration like 30m, 4h, 7d or 2w, got " + util::quote(text));
  };
  if (text.size() < 2 || text.size() > 12) {
    return bad();
  }
  char unit = text.back();
  std::string_view digits = text.substr(0, text.size() - 1);
  int64_t n = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return bad();
    }
    n = n * 10 + (c - '0');
  }
  int64_t mult = 0;
  switch (unit) {
  case 's': mult = 1000; break;
  case 'm': mult = 60 * 1000; break;
  case 'h': mult = 3600 * 1000; break;
  case 'd': mult = 86400LL * 1000; break;
  case 'w': mult = 7 * 86400LL * 1000; break;
  default: return bad();
  }
  if (n > 100LL * 365 * 86400 * 1000 / mult) {
    return make_error(ErrorCode::invalid_argument, "duration " + util::quote(text) + " is too long");
  }
  return n * mult;
}

std::string format_ttl(util::Millis ms) {
  struct Unit {
    int64_t ms;
    char c;
  };
  static constexpr Unit k_units[] = {
      {7 * 86400000LL, 'w'}, {86400000LL, 'd'}, {3600000LL, 'h'}, {60000LL, 'm'}, {1000LL, 's'}};
  for (auto u : k_units) {
    if (ms >= u.ms && ms % u.ms == 0) {
      return std::to_string(ms / u.ms) + u.c;
    }
  }
  return std::to_string(ms / 1000) + "s";
}

Expected<util::Millis> TtlPolicy::parse(std::string_view text) const {
  IDP_TRY_ASSIGN(util::Millis ms, parse_duration(text));
  if (ms < min) {
    return make_error(ErrorCode::invalid_argument,
                      "ttl " + util::quote(text) + " is shorter than the minimum of " + format_ttl(min));
  }
  if (ms > max) {
    return make_error(ErrorCode::invalid_argument,
                      "ttl " + util::quote(text) + " is longer than the maximum of " + format_ttl(max));
  }
  return ms;
}

} // namespace idp::core
