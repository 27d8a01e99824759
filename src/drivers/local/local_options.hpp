#pragma once
// Settings of the local driver, from DriverContext::options (the server config's
// driver section). Unknown keys and wrong types are invalid_config.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "drivers/local/uid_allocator.hpp"
#include "util/expected.hpp"

namespace idp::drivers::local {

struct LocalOptions {
  int64_t health_timeout_ms = 60000; // how long a new revision may take to pass its health check
  int64_t stop_grace_ms = 5000;      // TERM → KILL delay when stopping a revision
  // After the route moves to a new revision, how long the old one keeps running before it
  // is stopped: Caddy's previous config finishes the requests it had already sent there
  // in the background, after the route change has returned.
  int64_t drain_ms = 1000;
  int64_t build_timeout_ms = 10 * 60000;    // local.build deadline
  int64_t log_max_bytes = 10 * 1024 * 1024; // app.log size before rotation
  int log_keep = 5;                         // rotated app.log files kept
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string caddy_binary = "caddy";
  // "routes": one Caddy route per environment, changed through Caddy's admin API (Caddy
  // reloads its whole config on each change, so a route switch grows with the number of
  // environments). "lookup": one route for every preview host; Caddy asks the daemon
  // where each request goes, so a route switch is a map update (flat), at the price of
  // one loopback round trip per request and requests held while the daemon restarts.
  std::string router_mode = "routes";
  // The managed PostgreSQL ("database" component; postgres_cluster.hpp).
  std::string postgres_bin_dir; // "" = newest /usr/lib/postgresql/*/bin, pg_config, PATH
  std::string postgres_user;    // "" = "postgres" when it exists, else "idp-postgres" (created)
  // Isolation of repository code (docs/security.md "Isolation"). "auto": when the daemon
  // is root, each environment's build, app, jobs and exec run as a uid of its own from
  // uid_range; "off": as the daemon's user (also what a non-root daemon does).
  std::string isolation = "auto";
  UidRange uid_range;
  int64_t pids_max = 512; // processes per revision (its cgroup); 0 = no limit
  // Startup CPU boost: an app starts without its cpu limit (the config's `cpu`), which is
  // put back the moment its health check passes (or the start fails). A node app throttled
  // to cpu 256 (a quarter of a CPU) takes about four times as long to come up.
  bool startup_cpu_boost = true;
  int database_connection_limit = 20; // CONNECTION LIMIT of each environment's role
  // Test-only: schedule time runs this many times faster than real time (a schedule
  // minute takes 60/scale seconds), so tests need not wait for rate(1 minute). Keep 1.
  int64_t schedule_time_scale = 1;

  // Parses `options` (an object; null means every default). invalid_config naming the key.
  static Expected<LocalOptions> parse(const nlohmann::json& options);
};

} // namespace idp::drivers::local
