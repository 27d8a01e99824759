#pragma once
// FakeClock: time that moves only when a test says so.

#include <atomic>

#include "util/time.hpp"

namespace idp::testing {

class FakeClock final : public util::Clock {
public:
  explicit FakeClock(util::Millis start = 1'767'225'600'000) : m_now(start) {} // 2026-01-01T00:00:00Z
  util::Millis now_ms() const override { return m_now.load(); }
  void set(util::Millis t) { m_now = t; }
  void advance(util::Millis d) { m_now += d; }

private:
  std::atomic<util::Millis> m_now;
};

} // namespace idp::testing
