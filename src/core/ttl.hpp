#pragma once
// Durations like 30m, 4h, 7d, 2w, and the server's TTL policy. No I/O.

#include <string>
#include <string_view>

#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::core {

// "30m" | "4h" | "7d" | "2w" (also "45s" for tests and --since) → milliseconds.
// invalid_argument with an example when malformed.
Expected<util::Millis> parse_duration(std::string_view text);

// The shortest exact rendering: 604800000 → "7d", 5400000 → "90m".
std::string format_ttl(util::Millis ms);

struct TtlPolicy {
  util::Millis min = 10 * 60 * 1000;                 // 10m
  util::Millis max = 30LL * 24 * 3600 * 1000;        // 30d
  util::Millis default_ttl = 7LL * 24 * 3600 * 1000; // 7d, the original's default

  // Parses and checks min <= ttl <= max.
  Expected<util::Millis> parse(std::string_view text) const;
};

} // namespace idp::core
