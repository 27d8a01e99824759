#pragma once
// Time: a Clock seam (FakeClock in tests), unix-millisecond timestamps, ISO-8601 text.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace idp::util {

using Millis = int64_t; // milliseconds since the unix epoch, UTC

class Clock {
public:
  virtual ~Clock() = default;
  // Current wall-clock time in unix milliseconds. Thread-safe.
  virtual Millis now_ms() const = 0;
};

class SystemClock final : public Clock {
public:
  Millis now_ms() const override;
};

// "2026-02-16T16:22:14Z" (second precision, UTC).
std::string format_iso8601(Millis t);
// Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" or "+00:00"; nullopt if malformed.
std::optional<Millis> parse_iso8601(std::string_view s);

// "2h 5m", "3d 4h", "45s": a short human rendering of a duration.
std::string format_duration(Millis d);

// Monotonic milliseconds, for deadlines and measuring.
int64_t steady_ms();

} // namespace idp::util
