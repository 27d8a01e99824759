#include "engine/usage_sampler.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace idp::engine {

namespace {

constexpr util::Millis k_hour_ms = 3'600'000;

// The config's cpu units and memory MiB (its defaults when the config names none).
std::pair<int, int> reserved_of(const core::Environment& env) {
  auto j = nlohmann::json::parse(env.config_json, nullptr, false);
  int cpu = 256;
  int memory = 512;
  if (j.is_object()) {
    if (j.contains("cpu") && j["cpu"].is_number_integer()) {
      cpu = j["cpu"].get<int>();
    }
    if (j.contains("memory") && j["memory"].is_number_integer()) {
      memory = j["memory"].get<int>();
    }
  }
  return {cpu, memory};
}

} // namespace

UsageSampler::UsageSampler(store::StateStore& store, const DriverSet& drivers, util::Clock& clock,
                           util::Millis interval, util::Millis retention)
    : m_store(store), m_drivers(drivers), m_clock(clock), m_interval(interval), m_retention(retention) {}

UsageSampler::~UsageSampler() { stop(); }

void UsageSampler::start() {
  m_thread.start(
      [this] {
        if (auto r = sample(); !r) {
          spdlog::warn("usage sampler: {}", r.error().message);
        } else if (m_on_pass) {
          m_on_pass();
        }
        return m_interval;
      },
      "usage_sampler");
}

void UsageSampler::stop() { m_thread.stop(); }

Expected<size_t> UsageSampler::sample() {
  IDP_TRY_ASSIGN(auto envs, m_store.list_environments(false));
  const util::Millis now = m_clock.now_ms();
  std::vector<store::UsageHour> batch;
  std::map<std::string, Seen> seen;
  for (const auto& env : envs) {
    if (!core::phase_is_live(env.phase)) {
      continue;
    }
    auto driver = m_drivers.get(env.runtime);
    if (!driver) {
      continue;
    }
    auto usage = (*driver)->usage(env);
    if (!usage) {
      spdlog::debug("usage sampler: {}: {}", env.name, usage.error().message);
      if (auto prev = m_seen.find(env.name); prev != m_seen.end()) {
        seen[env.name] = prev->second; // the next good pass charges the whole time since
      }
      continue;
    }
    Seen next;
    next.at = now;
    if (*usage) {
      next.cpu_seconds = (*usage)->cpu_seconds;
    }
    auto prev = m_seen.find(env.name);
    if (prev != m_seen.end() && now > prev->second.at) {
      const util::Millis interval = now - prev->second.at;
      store::UsageHour h;
      h.env = env.name;
      h.hour = now - now % k_hour_ms;
      h.owner = env.owner;
      h.repo = env.repo;
      h.template_name = env.template_name;
      h.runtime = env.runtime;
      // Without the runtime's own word (a cloud runtime), a live phase means running,
      // unless it is asleep: a sleeping environment reserves nothing.
      const bool asleep = env.sleep && env.sleep->state == core::Sleep::State::asleep;
      bool running = *usage ? (*usage)->running
                            : !asleep && (env.phase == core::Phase::ready || env.phase == core::Phase::updating ||
                                          env.phase == core::Phase::degraded);
      if (running) {
        auto [cpu, memory] = reserved_of(env);
        h.running_ms = interval;
        h.reserved_cpu_ms = static_cast<double>(cpu) * interval;
        h.reserved_memory_mb_ms = static_cast<double>(memory) * interval;
      }
      if (*usage && (*usage)->measured) {
        double cpu = 0;
        for (const auto& [counter, value] : (*usage)->cpu_seconds) {
          auto was = prev->second.cpu_seconds.find(counter);
          cpu += was != prev->second.cpu_seconds.end() && value >= was->second ? value - was->second : value;
        }
        h.used_cpu_seconds = cpu;
        h.used_memory_byte_ms = static_cast<double>((*usage)->memory_bytes) * interval;
        h.measured_ms = interval;
      }
      if (*usage) {
        h.storage_byte_ms = static_cast<double>((*usage)->storage_bytes) * interval;
      }
      batch.push_back(std::move(h));
    }
    seen[env.name] = std::move(next);
  }
  // A failed write keeps the old marks: the next pass charges the whole time since.
  IDP_TRY(m_store.add_usage(batch));
  m_seen = std::move(seen);
  if (m_retention > 0) {
    if (auto pruned = m_store.prune_usage(now - m_retention); !pruned) {
      spdlog::warn("usage sampler: cannot prune old usage: {}", pruned.error().message);
    }
  }
  return batch.size();
}

} // namespace idp::engine
