#pragma once
// Idle sleep (issue 12): every check interval, each ready environment whose effective
// `sleep_after` (SleepPolicy::effective) is over since its last request (its driver's
// last_request) and since it was last seen awake is put to sleep (Controller::sleep, by
// "idle"). An environment that has been awake shorter than that is left alone, so a daemon
// that restarts, or an environment just woken, gets the whole period again.

#include <map>
#include <string>

#include "core/app_config.hpp"
#include "engine/controller.hpp"
#include "engine/driver_set.hpp"
#include "store/state_store.hpp"
#include "util/periodic_thread.hpp"
#include "util/time.hpp"

namespace idp::engine {

// Server config `sleep:`.
struct SleepPolicy {
  util::Millis default_after = 0;       // sleep.default_after: when a config says nothing (0 = never)
  util::Millis max_after = 0;           // sleep.max_after: the longest a config may ask (0 = no maximum)
  util::Millis check_interval = 30'000; // sleep.check_interval
  util::Millis wake_timeout = 30'000;   // sleep.wake_timeout: how long a request waits for a wake

  // The idle time after which an environment of `cfg` sleeps; 0 = never.
  util::Millis effective(const core::AppConfig& cfg) const;
};

class IdleSleeper {
public:
  IdleSleeper(store::StateStore& store, const DriverSet& drivers, Controller& controller, util::Clock& clock,
              SleepPolicy policy);
  ~IdleSleeper();
  void start();
  void stop();
  // One pass now; returns how many environments it put to sleep.
  Expected<size_t> check();

private:
  store::StateStore& m_store;
  const DriverSet& m_drivers;
  Controller& m_controller;
  util::Clock& m_clock;
  SleepPolicy m_policy;
  std::map<std::string, util::Millis> m_awake_since; // the sleeper's thread (or a test) only
  util::PeriodicThread m_thread;
};

} // namespace idp::engine
