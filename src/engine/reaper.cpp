#include "engine/reaper.hpp"

#include <spdlog/spdlog.h>

namespace idp::engine {

Reaper::Reaper(store::StateStore& store, Controller& controller, util::Clock& clock, util::Millis interval)
    : m_store(store), m_controller(controller), m_clock(clock), m_interval(interval) {}

Reaper::~Reaper() { stop(); }

void Reaper::start() {
  m_thread.start([this] {
    sweep();
    return m_interval;
  }, "reaper");
}

void Reaper::stop() { m_thread.stop(); }

size_t Reaper::sweep() {
  auto envs = m_store.list_environments(false);
  if (!envs) {
    spdlog::warn("reaper: cannot list environments: {}", envs.error().full_message());
    return 0;
  }
  util::Millis now = m_clock.now_ms();
  size_t marked = 0;
  for (const auto& env : *envs) {
    if (env.desired != core::Desired::present || env.expires_at <= 0 || env.expires_at > now) {
      continue;
    }
    std::string reason = "ttl expired at " + util::format_iso8601(env.expires_at) + " (overdue by " +
                         util::format_duration(now - env.expires_at) + ")";
    auto r = m_controller.destroy(env.name, "reaper", reason);
    if (r) {
      ++marked;
      spdlog::info("reaper: {}: {}", env.name, reason);
    } else {
      spdlog::warn("reaper: {}: {}", env.name, r.error().full_message());
    }
  }
  return marked;
}

} // namespace idp::engine
