#include "store/sqlite/migrations.hpp"

namespace idp::store::sqlite {

namespace {

// Timestamps are unix milliseconds (INTEGER). Environments are keyed by name: a destroyed
// environment keeps its row (history) until a new one of the same name replaces it.
// Events, revisions and job runs use AUTOINCREMENT so that ids are never reused: SSE
// clients resume with after_id, and a reused id would hide an event from them.
// Events deliberately have no foreign key to environments: the audit log outlives the
// row (a destroyed environment's row is replaced on name reuse; its events stay).
constexpr std::string_view k_v1_core = R"sql(
CREATE TABLE environments (
  name                TEXT    PRIMARY KEY NOT NULL,
  repo                TEXT    NOT NULL,
  branch              TEXT    NOT NULL,
  template_name       TEXT    NOT NULL,
  runtime             TEXT    NOT NULL,
  owner               TEXT    NOT NULL,
  source_key          TEXT    NOT NULL,
  phase               TEXT    NOT NULL,
  desired             TEXT    NOT NULL,
  commit_sha          TEXT    NOT NULL,
  deployed_commit     TEXT    NOT NULL,
  generation          INTEGER NOT NULL,
  observed_generation INTEGER NOT NULL,
  url                 TEXT    NOT NULL,
  pr_number           INTEGER,
  config_json         TEXT    NOT NULL,
  outputs_json        TEXT    NOT NULL,
  message             TEXT    NOT NULL,
  warnings_json       TEXT    NOT NULL,
  attempts            INTEGER NOT NULL,
  next_attempt_at     INTEGER NOT NULL,
  created_at          INTEGER NOT NULL,
  expires_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  destroyed_at        INTEGER NOT NULL
);
-- Listing live environments without walking the destroyed history.
CREATE INDEX environments_live_by_name ON environments(name) WHERE phase != 'destroyed';
-- At most one live environment tracks a branch; pinned environments have source_key ''.
CREATE UNIQUE INDEX environments_live_source_key ON environments(source_key)
  WHERE phase != 'destroyed' AND source_key != '';

CREATE TABLE revisions (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  env         TEXT    NOT NULL REFERENCES environments(name),
  commit_sha  TEXT    NOT NULL,
  generation  INTEGER NOT NULL,
  status      TEXT    NOT NULL,
  message     TEXT    NOT NULL,
  log_tail    TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL
);
CREATE INDEX revisions_by_env ON revisions(env, id);

CREATE TABLE events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  env        TEXT    NOT NULL,
  at         INTEGER NOT NULL,
  actor      TEXT    NOT NULL,
  action     TEXT    NOT NULL,
  reason     TEXT    NOT NULL,
  from_phase TEXT    NOT NULL,
  to_phase   TEXT    NOT NULL
);
CREATE INDEX events_by_env ON events(env, id);

-- Not tied to environments: a lease may be taken before the row exists, and breaking a
-- stale lease must work whatever happened to the environment.
CREATE TABLE leases (
  env        TEXT    PRIMARY KEY NOT NULL,
  owner      TEXT    NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE settings (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);
)sql";

// Webhook ingestion and scheduled jobs arrived after the core schema.
constexpr std::string_view k_v2_sources_and_jobs = R"sql(
CREATE TABLE deliveries (
  id          TEXT    PRIMARY KEY NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX deliveries_by_time ON deliveries(received_at);

CREATE TABLE job_runs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  env          TEXT    NOT NULL REFERENCES environments(name),
  scheduled_at INTEGER NOT NULL,
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER NOT NULL,
  exit_code    INTEGER NOT NULL,
  status       TEXT    NOT NULL,
  message      TEXT    NOT NULL
);
CREATE INDEX job_runs_by_env ON job_runs(env, id);
)sql";

// A push during a destroy asks for a fresh environment after it.
constexpr std::string_view k_v3_recreate = R"sql(
ALTER TABLE environments ADD COLUMN recreate INTEGER NOT NULL DEFAULT 0;
)sql";

// API tokens (issue 9): only the SHA-256 of each secret is stored.
constexpr std::string_view k_v4_api_tokens = R"sql(
CREATE TABLE api_tokens (
  id           TEXT    PRIMARY KEY NOT NULL,
  hash         TEXT    NOT NULL UNIQUE,
  name         TEXT    NOT NULL,
  role         TEXT    NOT NULL,
  owner        TEXT    NOT NULL,
  created_by   TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL,
  revoked_at   INTEGER NOT NULL
);
)sql";

// Retention deletes old events by time, and destroyed environments by when.
constexpr std::string_view k_v5_retention = R"sql(
CREATE INDEX events_by_time ON events(at);
CREATE INDEX environments_destroyed_at ON environments(destroyed_at) WHERE phase = 'destroyed';
)sql";

// Revisions are numbered per environment (1, 2, 3 for each); the id stays the key. Existing
// rows get their number in id order within their environment.
constexpr std::string_view k_v6_revision_numbers = R"sql(
ALTER TABLE revisions ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
UPDATE revisions SET number = (SELECT COUNT(*) FROM revisions AS older
                               WHERE older.env = revisions.env AND older.id <= revisions.id);
CREATE UNIQUE INDEX revisions_by_env_number ON revisions(env, number);
)sql";

// The server's secret store (issue 9): values sealed with a key derived from the master key.
constexpr std::string_view k_v7_secrets = R"sql(
CREATE TABLE secrets (
  scope      TEXT    NOT NULL,
  name       TEXT    NOT NULL,
  sealed     TEXT    NOT NULL,
  updated_by TEXT    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (scope, name)
);
)sql";

// A redeploy is stored before its commit is resolved (a worker fetches): what it asked for.
constexpr std::string_view k_v8_redeploy_ref = R"sql(
ALTER TABLE environments ADD COLUMN redeploy_ref TEXT;
)sql";

// Share links of protected previews (issue 15): a revoked row stays, so the link stays refused.
constexpr std::string_view k_v9_preview_grants = R"sql(
CREATE TABLE preview_grants (
  id         TEXT    PRIMARY KEY NOT NULL,
  env        TEXT    NOT NULL,
  created_by TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL
);
CREATE INDEX preview_grants_by_env ON preview_grants(env);
)sql";

// Pull requests from forks (issue 15): their approvals, and the profile an environment runs under.
constexpr std::string_view k_v10_forks = R"sql(
ALTER TABLE environments ADD COLUMN profile TEXT NOT NULL DEFAULT '';
CREATE TABLE fork_requests (
  repo            TEXT    NOT NULL,
  pr              INTEGER NOT NULL,
  github_repo     TEXT    NOT NULL,
  head_repo       TEXT    NOT NULL,
  head_ref        TEXT    NOT NULL,
  head_sha        TEXT    NOT NULL,
  author          TEXT    NOT NULL,
  state           TEXT    NOT NULL,
  approved_commit TEXT    NOT NULL,
  approved_by     TEXT    NOT NULL,
  approved_at     INTEGER NOT NULL,
  env             TEXT    NOT NULL,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (repo, pr)
);
)sql";

// QA freezes (issue 12): who froze an environment, until when, and the commits held back.
constexpr std::string_view k_v11_freeze = R"sql(
ALTER TABLE environments ADD COLUMN freeze TEXT NOT NULL DEFAULT '';
)sql";

// What each environment used, by hour (issue 12, cost): sums that price linearly.
constexpr std::string_view k_v12_usage = R"sql(
CREATE TABLE usage_hours (
  env                   TEXT    NOT NULL,
  hour                  INTEGER NOT NULL,
  owner                 TEXT    NOT NULL,
  repo                  TEXT    NOT NULL,
  template              TEXT    NOT NULL,
  runtime               TEXT    NOT NULL,
  running_ms            INTEGER NOT NULL,
  reserved_cpu_ms       REAL    NOT NULL,
  reserved_memory_mb_ms REAL    NOT NULL,
  used_cpu_seconds      REAL    NOT NULL,
  used_memory_byte_ms   REAL    NOT NULL,
  storage_byte_ms       REAL    NOT NULL,
  measured_ms           INTEGER NOT NULL,
  PRIMARY KEY (env, hour)
);
CREATE INDEX usage_hours_by_hour ON usage_hours(hour);
)sql";

// Idle sleep (issue 12): whether an environment is asleep or on the way (core::Sleep).
constexpr std::string_view k_v13_sleep = R"sql(
ALTER TABLE environments ADD COLUMN sleep TEXT NOT NULL DEFAULT '';
)sql";

constexpr std::string_view k_migrations[] = {
    k_v1_core,    k_v2_sources_and_jobs, k_v3_recreate,       k_v4_api_tokens, k_v5_retention, k_v6_revision_numbers,
    k_v7_secrets, k_v8_redeploy_ref,     k_v9_preview_grants, k_v10_forks,     k_v11_freeze,   k_v12_usage,
    k_v13_sleep};

} // namespace

std::span<const std::string_view> migrations() { return k_migrations; }

int latest_schema_version() { return static_cast<int>(std::size(k_migrations)); }

} // namespace idp::store::sqlite
