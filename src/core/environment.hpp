#pragma once
// The domain: environments, their revisions, the audit log and leases. No I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/time.hpp"

namespace idp::core {

using util::Millis;

// pending → provisioning → ready ⇄ updating → destroying → destroyed,
// plus degraded (unhealthy) and failed (with the error, retried with backoff).
enum class Phase { pending, provisioning, ready, updating, degraded, failed, destroying, destroyed };

std::string_view phase_name(Phase p);
std::optional<Phase> parse_phase(std::string_view s);
// True for phases in which an environment exists or is being brought up (not destroyed).
bool phase_is_live(Phase p);

// What the user asked for: the environment should exist (at `commit`), or not.
enum class Desired { present, absent };
std::string_view desired_name(Desired d);
std::optional<Desired> parse_desired(std::string_view s);

// A QA freeze (issue 12, `idp freeze`): the environment stays at the commit it has; pushes
// to its branch still move its expiry out and are remembered, and the newest one deploys
// when the freeze ends (`idp unfreeze`, or `until`).
struct Freeze {
  std::string by; // who froze it (the audit actor)
  std::string reason;
  Millis at = 0;
  Millis until = 0;                 // 0 = until unfrozen by hand
  std::vector<std::string> waiting; // commits pushed since, oldest first (at most k_max_waiting, newest kept)
  static constexpr size_t k_max_waiting = 50;

  bool active(Millis now) const { return until == 0 || now < until; }
};
nlohmann::json to_json(const Freeze& f);
// The stored form ("" = none). A malformed text reads as no freeze (nullopt).
std::string freeze_text(const std::optional<Freeze>& f);
std::optional<Freeze> parse_freeze(std::string_view text);

// Idle sleep (issue 12): an environment whose processes are stopped while nobody uses it;
// its database, files and URL stay, and the first request (or `idp wake`) starts it again.
// `state` is where the runtime is: to_sleep (asked, the driver has not stopped it yet),
// asleep (stopped; its route leads to the daemon's wake handler), to_wake (asked to run
// again, still stopped). An awake environment has no Sleep.
struct Sleep {
  enum class State { to_sleep, asleep, to_wake };
  State state = State::to_sleep;
  std::string by;     // who put it to sleep: "idle", "cli:alice", "budget:<name>", "limits"
  std::string reason; // "no request for 30m", ...
  Millis at = 0;      // when it was asked
};
std::string_view sleep_state_name(Sleep::State s);
nlohmann::json to_json(const Sleep& s);
// The stored form ("" = awake). A malformed text reads as awake (nullopt).
std::string sleep_text(const std::optional<Sleep>& s);
std::optional<Sleep> parse_sleep(std::string_view text);

struct Environment {
  std::string name;
  std::string repo; // clone URL or local path, as given
  std::string branch;
  std::string template_name = "api-service";
  std::string runtime = "local"; // driver name
  std::string owner;
  std::string source_key; // "repo\nbranch" for branch-tracking environments, "" for pinned ones
  Phase phase = Phase::pending;
  Desired desired = Desired::present;
  // Set when a push arrives after a destroy was requested: the destroy finishes first, then
  // the environment is created afresh at `commit` (desired stays absent until then).
  bool recreate = false;
  std::string commit; // the commit to run (desired); "" while a worker resolves it
  // A redeploy whose commit a worker resolves (commit is "" meanwhile): the commit asked
  // for (7 to 40 hex digits), "" for the branch's head. nullopt for an API create awaiting
  // its source (engine/create_resolution.hpp) and once resolved.
  std::optional<std::string> redeploy_ref;
  std::string deployed_commit;     // the commit serving now
  int64_t generation = 1;          // bumped by every change of desired state
  int64_t observed_generation = 0; // the generation the driver last brought about
  std::string url;
  std::optional<int> pr_number;
  std::string config_json = "{}";  // validated .idp/config.yml at `commit`, as JSON
  std::string outputs_json = "{}"; // driver outputs (JSON object)
  std::string message;             // detail for the phase: the last error, what is happening
  std::vector<std::string> warnings;
  int attempts = 0;           // consecutive failures of the current operation
  Millis next_attempt_at = 0; // backoff: no retry before this
  Millis created_at = 0;
  Millis expires_at = 0;
  Millis updated_at = 0;
  Millis destroyed_at = 0;
  // "" = the normal profile; "untrusted" = an approved pull request from a fork (issue 15):
  // no secrets, the server's tighter limits and TTL, no network beyond the egress
  // allowlist, its own uid, and its preview always behind sign-in.
  std::string profile;
  std::optional<Freeze> freeze; // set while frozen (idp freeze)
  std::optional<Sleep> sleep;   // set while asleep or on the way (idle sleep)

  bool untrusted() const { return profile == "untrusted"; }
  // Asleep or on the way: what status, list, the dashboard and the PR comment call "sleeping".
  bool sleeping() const { return sleep && sleep->state != Sleep::State::to_wake; }
  bool needs_deploy() const { return desired == Desired::present && generation > observed_generation; }
};

enum class RevisionStatus { pending, building, starting, serving, failed, superseded, stopped };
std::string_view revision_status_name(RevisionStatus s);
std::optional<RevisionStatus> parse_revision_status(std::string_view s);

// One deployed (or attempted) commit of an environment.
struct Revision {
  int64_t id = 0;     // the store's key, unique across environments
  int64_t number = 0; // 1, 2, 3… within the environment, assigned by the store on
                      // insert; what users see as the revision's id ("revision 3")
  std::string env;
  std::string commit;
  int64_t generation = 0;
  RevisionStatus status = RevisionStatus::pending;
  std::string message;
  std::string log_tail; // last lines of the app's output when it failed
  Millis created_at = 0;
  Millis finished_at = 0;
};

// An audit record: who did what to which environment, and why.
struct Event {
  int64_t id = 0;
  std::string env;
  Millis at = 0;
  std::string actor;  // "cli:alice", "webhook:push", "reaper", "engine"
  std::string action; // "create", "deploy", "extend", "destroy", "phase"
  std::string reason;
  std::string from_phase;
  std::string to_phase;
};

// One worker at a time acts on an environment: the holder of its lease.
struct Lease {
  std::string env;
  std::string owner;
  Millis expires_at = 0;
};

// One run of a scheduled job (scheduled-worker template).
struct JobRun {
  int64_t id = 0;
  std::string env;
  Millis scheduled_at = 0; // the time the schedule called for
  Millis started_at = 0;
  Millis finished_at = 0; // 0 while running
  int exit_code = -1;     // -1 while running or when killed
  std::string status;     // "running" | "succeeded" | "failed" | "skipped"
  std::string message;
};

nlohmann::json to_json(const JobRun& r);
// The environment as the API shows it; its outputs' "deploy" (the last deploy's
// telemetry, engine/deploy_metrics.hpp) is shown as "last_deploy".
nlohmann::json to_json(const Environment& e);
// A deploy's telemetry in one line: "ready 214 ms after the change: queued 3 ms · fetch
// 12 ms · checkout 9 ms · start 2 ms · healthy 160 ms · route 8 ms". "" for anything else.
std::string deploy_summary(const nlohmann::json& deploy);
nlohmann::json to_json(const Revision& r);
nlohmann::json to_json(const Event& e);

} // namespace idp::core
