#pragma once
// Whole numbers from text that came from outside (config, environment, files, the store):
// std::from_chars into Expected, never a throw, never a silent wrap (std::stoul("-1")).

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "util/expected.hpp"

namespace idp::util {

namespace detail {
// invalid_argument: expected a whole number from MIN to MAX, got "TEXT".
Error number_error(std::string_view text, std::string_view min, std::string_view max);
} // namespace detail

// The decimal integer that is the whole of `text` (an optional '-', then digits: no spaces,
// no '+', no suffix), within [min, max]. Otherwise invalid_argument: expected a whole number
// from MIN to MAX, got "TEXT". Callers add context (which key or variable).
template <typename T>
Expected<T> parse_int(std::string_view text, T min = std::numeric_limits<T>::min(),
                      T max = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "parse_int needs an integer type");
  // Parse as the widest type of the same signedness so "300" for a uint8_t is reported as
  // out of range with the bounds, like any other value outside them.
  using Wide = std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>;
  Wide v{};
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, v, 10);
  if (text.empty() || ec != std::errc() || ptr != last || v < static_cast<Wide>(min) || v > static_cast<Wide>(max)) {
    return tl::unexpected(detail::number_error(text, std::to_string(min), std::to_string(max)));
  }
  return static_cast<T>(v);
}

} // namespace idp::util
