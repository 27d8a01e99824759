#pragma once
// The daemon behind `idp serve`: builds one Context (config, store, drivers, engine, api)
// and runs it until SIGINT/SIGTERM. The only library that links every layer.

#include <memory>
#include <string>

#include "daemon/server_config.hpp"
#include "util/expected.hpp"

namespace idp::daemon {

class Daemon {
public:
  Daemon(ServerConfig cfg, std::string self_exe);
  ~Daemon();

  // Takes the home's lock, opens the store, starts drivers (recovering what runs), the
  // engine and the API, then writes <home>/daemon.json. Fatal-worthy errors are returned.
  Expected<void> start();
  // Blocks until SIGINT or SIGTERM (which must be blocked in every thread beforehand).
  void wait_for_signal();
  // Stops the API, the engine and the drivers (environments stop too unless keep_running).
  void shutdown();

  int api_port() const;
  int router_port() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Blocks SIGINT/SIGTERM/SIGHUP in the calling thread (so threads created later inherit
// the mask) and ignores SIGPIPE. Call first thing in `idp serve`.
void block_shutdown_signals();

} // namespace idp::daemon
