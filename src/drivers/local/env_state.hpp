#pragma once
// <home>/envs/<env>/state.json: what the local driver has created for one environment.
// Written atomically before every action that creates something (a checkout, a process,
// a route), so a restarted daemon knows what to adopt and what to remove.

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/local/caddy_router.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

// What an environment's database is (database component). Never the password.
struct DatabaseRecord {
  std::string name;          // database = role (databases.hpp)
  std::string salt;          // for the password derivation
  std::string seed_path;     // database.seed when the database was created, "" when none
  std::string seed_template; // template it was cloned from, "" when none
  std::string created_by;    // how it came to be: "cloned from template …", "created empty"

  nlohmann::json to_json() const;
  static DatabaseRecord from_json(const nlohmann::json& j);
};

// One started (or starting) revision of an environment.
struct InstanceRecord {
  std::string key; // "7", or "7-2" when revision 7 is redeployed with other content;
                   // names the directory rev-<key> and the IDP_REVISION marker
  int64_t revision_id = 0;
  std::string commit;
  std::string content_hash;     // commit + config + components: equal hash = same deployment
  std::string kind;             // "web" | "static" | "job" | "none"
  std::string dir;              // <env dir>/rev-<key>
  int port = 0;                 // web: the app's port
  pid_t shim_pid = 0;           // web: the shim (session and process-group leader)
  uint64_t shim_start_time = 0; // with shim_pid: identity that survives pid reuse
  util::Millis started_at = 0;
  std::string health_path = "/";
  std::string static_root; // static: the served directory
  bool spa = false;
  bool public_preview = false; // its config said `public: true` (the server decides: route_for)
  bool untrusted = false;      // the untrusted profile (a fork's pull request): sandboxed, always protected
  std::vector<std::string> cgroup_dirs;
  nlohmann::json cgroup;      // CgroupPlacement::to_json(), null when none
  std::string limits_warning; // why cpu/memory limits are not enforced, "" when they are
  // Which process limit holds its code (LocalDriver::place_revision): "pids.max 512 (cgroup)",
  // "RLIMIT_NPROC 512 (uid 100123)", "RLIMIT_NPROC: 512 more than the server's user runs",
  // "none"; "" for records older than this field.
  std::string process_limit;
  int64_t startup_ms = 0;           // web: spawn → healthy
  bool stopped_with_server = false; // web: stop(keep_running=false) stopped it while it ran;
                                    // observe() says Health::stopped, not a crash
  bool asleep = false;              // web: stopped by an idle sleep (LocalDriver::sleep), routed to the wake handler
  // job: what the scheduler runs, so a restarted daemon can resume without the config:
  // {"expression", "argv", "environment", "secrets" (references only), "retention_days"}.
  nlohmann::json job;

  nlohmann::json to_json() const;
  static InstanceRecord from_json(const nlohmann::json& j);
};

struct EnvState {
  std::string env;
  std::string repo;                      // for GitMirror::remove_checkout
  std::optional<InstanceRecord> active;  // what the route points at
  std::optional<InstanceRecord> pending; // being started; never routed
  // Replaced by a switch, stopped after the drain by the retirer (retirer.cpp); recorded
  // with the switch so that a restarted daemon stops them.
  std::vector<InstanceRecord> retiring;
  std::optional<RouteTarget> route;       // the route the router should have
  std::optional<DatabaseRecord> database; // written before the database is created
  int64_t next_seq = 1;                   // for unique instance keys

  nlohmann::json to_json() const;
};

// nullopt when the file does not exist; io_error/invalid_config when unreadable or malformed.
Expected<std::optional<EnvState>> load_env_state(const std::string& path);
Expected<void> save_env_state(const std::string& path, const EnvState& state);

} // namespace idp::drivers::local
