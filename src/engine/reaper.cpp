#include "engine/reaper.hpp"

#include <spdlog/spdlog.h>

namespace idp::engine {

Reaper::Reaper(store::StateStore& store, Controller& controller, util::Clock& clock, util::Millis interval)
    : m_store(store), m_controller(controller), m_clock(clock), m_interval(interval) {}

Reaper::~Reaper() { stop(); }

void Reaper::start() {
  m_thread.start(
      [this] {
        sweep();
        return m_interval;
      },
      "reaper");
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
    if (env.freeze && env.freeze->until != 0 && env.freeze->until <= now) {
      // A freeze that has run out: its newest held commit deploys.
      if (auto r = m_controller.unfreeze(env.name, "reaper",
                                         "the freeze ended at " + util::format_iso8601(env.freeze->until));
          !r) {
        spdlog::warn("reaper: {}: cannot end its freeze: {}", env.name, r.error().full_message());
      }
    }
    // The list only preselects: expire() decides again on the current row.
    if (env.desired != core::Desired::present || env.expires_at <= 0 || env.expires_at > now) {
      continue;
    }
    auto r = m_controller.expire(env.name, now);
    if (!r) {
      // The next sweep tries again.
      spdlog::warn("reaper: {}: {}", env.name, r.error().full_message());
    } else if (*r) {
      ++marked;
      spdlog::info("reaper: {}: ttl expired at {}", env.name, util::format_iso8601(env.expires_at));
    } else {
      spdlog::info("reaper: {}: no longer expired (extended or destroyed meanwhile)", env.name);
    }
  }
  return marked;
}

} // namespace idp::engine
