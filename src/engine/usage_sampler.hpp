#pragma once
// The usage sampler (issue 12, cost): every interval it asks each live environment's driver
// what it uses (drivers::Driver::usage) and adds what it used since the previous pass to
// the environment's hour in the store (store::UsageHour), which engine/cost.hpp prices.
//
// While an environment runs, its config's cpu and memory count as reserved for the whole
// interval; the measured CPU time is the growth of each of its counters since the last
// pass (a new counter counts whole: a revision started in between); measured memory and
// its database's size count as held for the interval. A runtime that measures nothing
// (terraform, kubernetes) has the config's cpu/memory reserved while the environment is
// ready, updating or degraded. The first pass after a start only records where the
// counters stand: the time the daemon was down is not charged.

#include <functional>
#include <map>
#include <string>

#include "engine/driver_set.hpp"
#include "store/state_store.hpp"
#include "util/periodic_thread.hpp"
#include "util/time.hpp"

namespace idp::engine {

class UsageSampler {
public:
  // `retention`: usage older than this is pruned on each pass (0 = kept forever).
  UsageSampler(store::StateStore& store, const DriverSet& drivers, util::Clock& clock, util::Millis interval,
               util::Millis retention);
  ~UsageSampler();
  void start();
  void stop();
  // One pass now; returns how many environments it added usage for.
  Expected<size_t> sample();
  // Called after each pass that stored its usage (the budgets' alerts). Before start().
  void on_pass(std::function<void()> f) { m_on_pass = std::move(f); }

private:
  struct Seen {
    util::Millis at = 0;
    std::map<std::string, double> cpu_seconds;
  };

  store::StateStore& m_store;
  const DriverSet& m_drivers;
  util::Clock& m_clock;
  util::Millis m_interval;
  util::Millis m_retention;
  std::map<std::string, Seen> m_seen; // by environment; only the sampler's thread (or a test) uses it
  std::function<void()> m_on_pass;
  util::PeriodicThread m_thread;
};

} // namespace idp::engine
