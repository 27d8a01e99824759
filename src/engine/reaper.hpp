#pragma once
// TTL reaper: every interval, environments whose expires_at has passed are marked for
// destroy through Controller::expire, which re-checks the expiry on the current row (an
// extend or a push after the sweep listed it wins), with the reason in the event.
// Retrying a failed destroy is the reconciler's job (backoff, shown in status), not the reaper's.

#include "engine/controller.hpp"
#include "util/periodic_thread.hpp"

namespace idp::engine {

class Reaper {
public:
  Reaper(store::StateStore& store, Controller& controller, util::Clock& clock, util::Millis interval);
  ~Reaper();
  void start();
  void stop();
  // One sweep now; returns how many environments it marked (for tests).
  size_t sweep();

private:
  store::StateStore& m_store;
  Controller& m_controller;
  util::Clock& m_clock;
  util::Millis m_interval;
  util::PeriodicThread m_thread;
};

} // namespace idp::engine
