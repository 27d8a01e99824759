#pragma once
// StateStore: where desired and observed state live. Every implementation (sqlite,
// postgres, the in-memory fake) passes tests/contract/store_contract.hpp.
// All methods are thread-safe.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/environment.hpp"
#include "util/expected.hpp"

namespace idp::store {

using core::Environment;
using core::Event;
using core::JobRun;
using core::Lease;
using core::Revision;
using util::Millis;

// Changes an environment inside a transaction. Append to `events` to record them in the
// same transaction. Returning an error rolls everything back.
using Mutator = std::function<Expected<void>(Environment& env, std::vector<Event>& events)>;

// One key of a webhook delivery (its id, or a hash of its body) and when it arrived.
struct DeliveryKey {
  std::string key;
  Millis at = 0;
};

// An API token as stored: never the secret itself, only its SHA-256 (hex). The secret is
// shown once, when the token is created.
struct ApiToken {
  std::string id;         // public handle ("tok_" + 12 hex), for list and revoke
  std::string hash;       // hex SHA-256 of the secret
  std::string name;       // label given at creation
  std::string role;       // "viewer" | "developer" | "admin"
  std::string owner;      // the identity it authenticates as (audit actor, environment owner)
  std::string created_by; // identity that created it ("idp serve" for the first admin token)
  Millis created_at = 0;
  Millis expires_at = 0;   // 0 = never
  Millis last_used_at = 0; // 0 = never used
  Millis revoked_at = 0;   // 0 = not revoked
};

// A share link (`idp share`, issue 15): access to one environment's protected preview for
// someone without an account, until it expires or is revoked. The link carries the id,
// the environment and the expiry, signed by the server (api/preview_auth.hpp); this row is
// what makes it revocable.
struct PreviewGrant {
  std::string id;  // "shr_" + 12 hex
  std::string env; // the one environment it opens
  std::string created_by;
  Millis created_at = 0;
  Millis expires_at = 0; // always set
  Millis revoked_at = 0; // 0 = not revoked
};

// A secret of the server's secret store (issue 9) as stored: its value only sealed with a
// key derived from the master key (util/secretbox.hpp), never in clear.
struct StoredSecret {
  std::string scope;      // "" = every repository; else a repository pattern (`idp secret set --repo`)
  std::string name;       // core::is_secret_store_name
  std::string sealed;     // base64 of what util::seal_secret made
  std::string updated_by; // identity that set it last
  Millis updated_at = 0;
};

// A pull request from a fork of a watched repository whose `forks` is `approve` (issue 15):
// what GitHub last said of it, and what was approved. An approval names one commit, so a
// newer push to the fork needs a new approval before it is deployed.
struct ForkRequest {
  std::string repo;            // the watched repository (WatchedRepo::url)
  int pr = 0;                  // the pull request's number
  std::string github_repo;     // the base repository, "owner/name"
  std::string head_repo;       // the fork, "owner/name"
  std::string head_ref;        // the fork's branch
  std::string head_sha;        // the pull request's head as of the last event
  std::string author;          // the GitHub login that opened it or pushed last
  std::string state;           // "pending" | "approved" | "closed"
  std::string approved_commit; // the commit approved last ("" = none yet)
  std::string approved_by;     // who approved it ("cli:alice", "github:bob")
  Millis approved_at = 0;
  std::string env; // the environment deployed for it ("" = none yet)
  Millis updated_at = 0;
};

// Changes a fork request inside a transaction: `exists` false for a new one (repo and pr
// set, the rest empty). Returning an error rolls back and stores nothing.
using ForkMutator = std::function<Expected<void>(ForkRequest& fork, bool exists)>;

// What one environment used in one hour (issue 12, cost): sums over the usage samples of
// that hour, in units that price linearly (core/cost.hpp). Attribution (owner, repo,
// template, runtime) is the environment's when it was last sampled in that hour, so a
// month's report stays right after the environment is gone.
struct UsageHour {
  std::string env;
  Millis hour = 0; // start of the hour (UTC), a multiple of 3,600,000
  std::string owner;
  std::string repo;
  std::string template_name;
  std::string runtime;
  int64_t running_ms = 0;           // time the environment's app was running
  double reserved_cpu_ms = 0;       // cpu units (1024 = 1 vCPU) x ms running
  double reserved_memory_mb_ms = 0; // MiB reserved x ms running
  double used_cpu_seconds = 0;      // measured CPU time (cgroup), 0 when not measured
  double used_memory_byte_ms = 0;   // measured memory in use x ms
  double storage_byte_ms = 0;       // database size x ms
  int64_t measured_ms = 0;          // of running_ms, the time the used figures cover

  // Adds `o`'s sums (attribution taken from `o`).
  void add(const UsageHour& o) {
    owner = o.owner;
    repo = o.repo;
    template_name = o.template_name;
    runtime = o.runtime;
    running_ms += o.running_ms;
    reserved_cpu_ms += o.reserved_cpu_ms;
    reserved_memory_mb_ms += o.reserved_memory_mb_ms;
    used_cpu_seconds += o.used_cpu_seconds;
    used_memory_byte_ms += o.used_memory_byte_ms;
    storage_byte_ms += o.storage_byte_ms;
    measured_ms += o.measured_ms;
  }
};

struct EventQuery {
  std::string env;      // "" = every environment
  int64_t after_id = 0; // only events with id > after_id
  size_t limit = 1000;
  bool newest_first = false; // the newest `limit` events, newest first
};

class StateStore {
public:
  virtual ~StateStore() = default;

  // --- Environments ---
  // Inserts a new environment with `events`. already_exists when a live (not destroyed)
  // environment has the same name, or the same non-empty source_key. A destroyed
  // environment of the same name is replaced (its events are kept).
  virtual Expected<Environment> insert_environment(const Environment& env, const std::vector<Event>& events) = 0;
  // The environment called `name` (live or destroyed); not_found otherwise.
  virtual Expected<Environment> get_environment(std::string_view name) = 0;
  // The live environment tracking `source_key`, if any.
  virtual Expected<std::optional<Environment>> find_by_source_key(std::string_view source_key) = 0;
  // Ordered by name. Destroyed ones only when include_destroyed.
  virtual Expected<std::vector<Environment>> list_environments(bool include_destroyed) = 0;
  // Atomic read-modify-write of one environment; returns it as written. not_found when
  // there is no such environment.
  virtual Expected<Environment> update_environment(std::string_view name, const Mutator& mutate) = 0;
  // Deletes, in one transaction, the environments destroyed before `destroyed_before`
  // (phase destroyed, destroyed_at < destroyed_before) with their revisions and job runs;
  // their events stay. Live environments are never touched. Returns how many.
  virtual Expected<size_t> purge_destroyed_environments(Millis destroyed_before) = 0;

  // --- Revisions (one per deployed commit) ---
  // Assigns and returns the id.
  virtual Expected<int64_t> insert_revision(const Revision& rev) = 0;
  virtual Expected<void> update_revision(const Revision& rev) = 0;
  virtual Expected<Revision> get_revision(int64_t id) = 0;
  // Newest first.
  virtual Expected<std::vector<Revision>> list_revisions(std::string_view env, size_t limit) = 0;

  // --- Events (audit log) ---
  virtual Expected<int64_t> append_event(const Event& ev) = 0;
  // Oldest first (newest first with q.newest_first).
  virtual Expected<std::vector<Event>> list_events(const EventQuery& q) = 0;
  // Deletes the events recorded before `before` (at < before); returns how many.
  virtual Expected<size_t> prune_events(Millis before) = 0;

  // --- Leases: one worker at a time per environment ---
  // Takes the lease when it is free, expired at `now`, or already held by `owner` (renewal).
  // Returns false when someone else holds it.
  virtual Expected<bool> try_acquire_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) = 0;
  // Extends the lease to now + ttl only while `owner` still holds it (its row, even past
  // its expiry when nobody took it over). Returns false, changing nothing, when the lease
  // was released, broken or taken by someone else: it never re-creates a lease.
  virtual Expected<bool> renew_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) = 0;
  // Releases it if `owner` holds it; ok otherwise.
  virtual Expected<void> release_lease(std::string_view env, std::string_view owner) = 0;
  // Removes the lease whoever holds it (idp unlock).
  virtual Expected<void> break_lease(std::string_view env) = 0;
  virtual Expected<std::optional<Lease>> get_lease(std::string_view env) = 0;
  virtual Expected<std::vector<Lease>> list_leases() = 0;

  // --- Webhook deliveries: exactly-once ingestion ---
  // Records a delivery id; false when it was already recorded.
  virtual Expected<bool> record_delivery(std::string_view delivery_id, Millis at) = 0;
  // Whether any of `keys` (a delivery's id, a hash of its body) is recorded.
  virtual Expected<bool> any_delivery_recorded(const std::vector<std::string>& keys) = 0;
  // Records every key in one transaction (all or none); a key recorded already keeps its
  // time. The webhook receiver's DeliveryLog decides what is new and writes in batches.
  virtual Expected<void> insert_delivery_keys(const std::vector<DeliveryKey>& keys) = 0;
  // Forgets deliveries older than `before`.
  virtual Expected<void> prune_deliveries(Millis before) = 0;

  // --- Scheduled job runs ---
  virtual Expected<int64_t> insert_job_run(const JobRun& run) = 0;
  virtual Expected<void> update_job_run(const JobRun& run) = 0;
  // Newest first.
  virtual Expected<std::vector<JobRun>> list_job_runs(std::string_view env, size_t limit) = 0;

  // --- API tokens (kept apart from the other sections on purpose: see ApiToken) ---
  // Inserts a token; already_exists when its id or hash is taken.
  virtual Expected<void> insert_api_token(const ApiToken& token) = 0;
  // The token whose hash is `hash` (revoked and expired ones too), if any.
  virtual Expected<std::optional<ApiToken>> find_api_token(std::string_view hash) = 0;
  // Every token, revoked ones included, oldest first.
  virtual Expected<std::vector<ApiToken>> list_api_tokens() = 0;
  // Marks a token revoked at `at` (a second revoke keeps the first time) and returns it;
  // not_found for an unknown id.
  virtual Expected<ApiToken> revoke_api_token(std::string_view id, Millis at) = 0;
  // Records a use at `at`; ok (and nothing happens) for an unknown id.
  virtual Expected<void> touch_api_token(std::string_view id, Millis at) = 0;

  // --- Share links of protected previews (issue 15) ---
  // Inserts a grant; already_exists when its id is taken.
  virtual Expected<void> insert_preview_grant(const PreviewGrant& grant) = 0;
  // The grant `id` (revoked and expired ones too), if any.
  virtual Expected<std::optional<PreviewGrant>> find_preview_grant(std::string_view id) = 0;
  // The grants of `env` ("" = every environment), oldest first.
  virtual Expected<std::vector<PreviewGrant>> list_preview_grants(std::string_view env) = 0;
  // Marks a grant revoked at `at` (a second revoke keeps the first time) and returns it;
  // not_found for an unknown id.
  virtual Expected<PreviewGrant> revoke_preview_grant(std::string_view id, Millis at) = 0;

  // --- Pull requests from forks (issue 15) ---
  // Creates or changes the fork request (repo, pr) in one transaction and returns what was
  // stored. invalid_argument when the mutator changes repo or pr.
  virtual Expected<ForkRequest> update_fork_request(std::string_view repo, int pr, const ForkMutator& mutate) = 0;
  virtual Expected<std::optional<ForkRequest>> get_fork_request(std::string_view repo, int pr) = 0;
  // Every fork request, by repo, then pr.
  virtual Expected<std::vector<ForkRequest>> list_fork_requests() = 0;

  // --- Usage (issue 12, cost) ---
  // Adds each entry's sums to its (env, hour) bucket, creating it, in one transaction.
  // invalid_argument when an hour is not the start of an hour.
  virtual Expected<void> add_usage(const std::vector<UsageHour>& usage) = 0;
  // The buckets with from <= hour < to, of `env` ("" = every environment), by hour then env.
  virtual Expected<std::vector<UsageHour>> list_usage(Millis from, Millis to, std::string_view env) = 0;
  // Removes the buckets older than `before` (retention); returns how many.
  virtual Expected<size_t> prune_usage(Millis before) = 0;

  // --- Server secrets (issue 9): sealed values only, see StoredSecret ---
  // Inserts the secret (scope, name), or replaces the one there.
  virtual Expected<void> put_secret(const StoredSecret& secret) = 0;
  // Every secret, ordered by name, then scope.
  virtual Expected<std::vector<StoredSecret>> list_secrets() = 0;
  // Removes the secret (scope, name); not_found when there is none.
  virtual Expected<void> delete_secret(std::string_view scope, std::string_view name) = 0;

  // --- Settings: small daemon-wide values (e.g. the router port chosen on first start) ---
  virtual Expected<std::optional<std::string>> get_setting(std::string_view key) = 0;
  virtual Expected<void> set_setting(std::string_view key, std::string_view value) = 0;
};

} // namespace idp::store
