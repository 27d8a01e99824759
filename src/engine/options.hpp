#pragma once
// Tunables of the engine. Defaults are production values; tests shorten them.

#include <cstddef>
#include <string>

#include "core/ttl.hpp"
#include "util/time.hpp"

namespace idp::engine {

// The untrusted profile's limits (server config forks.*; issue 15): an environment deployed
// for an approved pull request from a fork gets its config's cpu and memory capped at these,
// this TTL (its config cannot lengthen it), no secrets and no public preview.
struct UntrustedLimits {
  int cpu = 256;    // CPU units
  int memory = 512; // MiB
  util::Millis ttl = 24LL * 3600 * 1000;
};

// Capacity (server config limits.environments.*; issue 12): how many environments may run at
// once on this server, per repository and per owner (0 = no limit). Beyond one, a new
// environment is queued, not refused: it starts when room frees up (Reconciler).
struct CapacityLimits {
  int global = 0;
  int per_repo = 0;
  int per_owner = 0;
  // limits.on_full: evict_lru: beyond a limit, the least recently requested environment of
  // the scope is put to sleep (idle sleep) to make room, instead of the new one queueing; a
  // sleeping environment does not count toward a limit then.
  bool evict_lru = false;
  bool any() const { return global > 0 || per_repo > 0 || per_owner > 0; }
};

struct EngineOptions {
  size_t workers = 4;                    // bounded worker pool
  util::Millis lease_ttl = 60'000;       // a lease not renewed for this long is free
  util::Millis resync_interval = 1'000;  // level-triggered pass even without a trigger
  util::Millis reaper_interval = 30'000; // TTL reaper period
  util::Millis health_interval = 10'000; // observe() period for ready environments
  int unhealthy_threshold = 3;           // consecutive failed probes before "degraded"
  util::Millis backoff_base = 2'000;     // first retry delay; doubles per attempt
  util::Millis backoff_max = 300'000;    // cap of the retry delay
  util::Millis store_retry_base = 100;   // first wait before a failed store write is retried
  util::Millis store_retry_max = 5'000;  // cap of that wait (retried until it succeeds)
  int give_up_after = 3;                 // attempts at one generation before a permanent error stops retries
  // Retention (engine/retention.hpp); 0 keeps forever.
  util::Millis retention_interval = 3'600'000;          // how often old data is pruned
  util::Millis event_retention = 90LL * 86'400'000;     // events older than this
  util::Millis destroyed_retention = 30LL * 86'400'000; // rows of environments destroyed longer ago
  util::Millis mirror_retention = 7LL * 86'400'000;     // git mirrors unused and unfetched this long
  core::TtlPolicy ttl_policy;
  std::string default_runtime = "local";
  // Template of a repository whose .idp/config.yml names none (or that has no file), unless
  // its watched-repository entry names one; "" = core::AppConfig's default (api-service).
  std::string default_template;
  UntrustedLimits untrusted;
  CapacityLimits limits;
  std::string owner_id; // lease owner: "host:pid:start" of this daemon
};

// Delay before retry number `attempt` (1-based): base * 2^(attempt-1), capped.
util::Millis backoff_delay(const EngineOptions& o, int attempt);

} // namespace idp::engine
