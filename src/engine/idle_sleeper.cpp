#include "engine/idle_sleeper.hpp"

#include <set>

#include <spdlog/spdlog.h>

#include "util/strings.hpp"

namespace idp::engine {

using core::Environment;

util::Millis SleepPolicy::effective(const core::AppConfig& cfg) const {
  util::Millis after = cfg.sleep_after_ms < 0 ? default_after : cfg.sleep_after_ms;
  if (max_after > 0 && (after == 0 || after > max_after)) {
    after = max_after; // "never" and longer periods are capped by the server
  }
  return after;
}

IdleSleeper::IdleSleeper(store::StateStore& store, const DriverSet& drivers, Controller& controller, util::Clock& clock,
                         SleepPolicy policy)
    : m_store(store), m_drivers(drivers), m_controller(controller), m_clock(clock), m_policy(policy) {}

IdleSleeper::~IdleSleeper() { stop(); }

void IdleSleeper::start() {
  m_thread.start(
      [this] {
        if (auto r = check(); !r) {
          spdlog::warn("idle sleep: {}", r.error().message);
        }
        return m_policy.check_interval;
      },
      "idle_sleeper");
}

void IdleSleeper::stop() { m_thread.stop(); }

Expected<size_t> IdleSleeper::check() {
  IDP_TRY_ASSIGN(auto envs, m_store.list_environments(false));
  util::Millis now = m_clock.now_ms();
  size_t slept = 0;
  std::set<std::string> seen;
  for (const Environment& env : envs) {
    bool awake =
        env.desired == core::Desired::present && env.phase == core::Phase::ready && !env.sleep && !env.needs_deploy();
    if (!awake) {
      continue; // not counted as awake: its idle time starts when it is
    }
    seen.insert(env.name);
    auto [it, inserted] = m_awake_since.try_emplace(env.name, now);
    auto cfg = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
    if (!cfg) {
      continue;
    }
    util::Millis after = m_policy.effective(*cfg);
    if (after <= 0 || inserted) {
      continue;
    }
    auto driver = m_drivers.get(env.runtime);
    if (!driver) {
      continue;
    }
    util::Millis since = it->second;
    auto last = (*driver)->last_request(env);
    if (!last) {
      spdlog::warn("idle sleep: {}: cannot tell its last request: {}", env.name, last.error().message);
      continue;
    }
    if (*last) {
      since = std::max(since, **last);
    }
    if (now - since < after) {
      continue;
    }
    std::string reason = "no request for " + util::format_duration(after);
    if (auto r = m_controller.sleep(env.name, "idle", reason, "idle"); !r) {
      spdlog::info("idle sleep: {}: {}", env.name, r.error().message);
      continue;
    }
    slept += 1;
  }
  // Asleep, destroyed or busy ones start over when next seen awake.
  std::erase_if(m_awake_since, [&](const auto& kv) { return !seen.count(kv.first); });
  return slept;
}

} // namespace idp::engine
