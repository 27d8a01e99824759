#include "store/sqlite/sqlite_store.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "store/sqlite/migrations.hpp"
#include "util/json.hpp"
#include "util/time.hpp"

namespace idp::store::sqlite {

namespace {

constexpr int k_busy_timeout_ms = 5000;

// SQLITE_BUSY / SQLITE_LOCKED (in any extended form) mean another connection held a lock
// for longer than the busy timeout: retrying later may well succeed.
bool is_busy(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

std::string in_quotes(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// SQLite takes int64 limits; a size_t beyond that range means "no limit".
int64_t sql_limit(size_t limit) {
  return static_cast<int64_t>(std::min<size_t>(limit, static_cast<size_t>(std::numeric_limits<int64_t>::max())));
}

// One store operation on the connection. Every SQLite failure during it reads
// "sqlite: <what>: <sqlite message>", so callers never have to add context themselves.
class Op {
public:
  Op(sqlite3* db, std::string what, StatementCache* statements = nullptr)
      : m_db(db), m_what(std::move(what)), m_statements(statements) {}

  sqlite3* db() const { return m_db; }
  // Where this connection keeps its prepared statements (nullptr: prepare each time).
  StatementCache* statements() const { return m_statements; }

  Error fail(int rc) const {
    // sqlite3_errmsg describes the last failed call on this connection, which is the
    // one we are reporting (the mutex keeps other threads off the connection).
    const char* msg = m_db != nullptr ? sqlite3_errmsg(m_db) : sqlite3_errstr(rc);
    return Error(is_busy(rc) ? ErrorCode::transient : ErrorCode::io_error,
                 "sqlite: " + m_what + ": " + (msg != nullptr ? msg : sqlite3_errstr(rc)));
  }

  // A failure found by the store itself, e.g. a row it cannot make sense of (edited by
  // hand, or a bug): io_error unless said otherwise.
  Error error(std::string_view detail, ErrorCode code = ErrorCode::io_error) const {
    return Error(code, "sqlite: " + m_what + ": " + std::string(detail));
  }

  // Runs one or more statements that return no rows.
  Expected<void> exec(const char* sql) const {
    int rc = sqlite3_exec(m_db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return Unexpected(fail(rc));
    }
    return {};
  }

private:
  sqlite3* m_db;
  std::string m_what;
  StatementCache* m_statements;
};

// A prepared statement. Bind failures are remembered and reported by the next step(),
// so call sites bind without checking each call.
class Stmt {
public:
  Stmt(const Op& op, sqlite3_stmt* stmt, std::string sql) : m_op(&op), m_stmt(stmt), m_sql(std::move(sql)) {}
  // Back to the connection's cache, reset (which ends its read) and unbound, or finalized.
  ~Stmt() {
    if (m_stmt == nullptr) {
      return;
    }
    if (StatementCache* cache = m_op->statements()) {
      sqlite3_reset(m_stmt);
      sqlite3_clear_bindings(m_stmt);
      cache->give_back(std::move(m_sql), m_stmt);
    } else {
      sqlite3_finalize(m_stmt);
    }
  }
  Stmt(Stmt&& other) noexcept
      : m_op(other.m_op), m_stmt(std::exchange(other.m_stmt, nullptr)), m_sql(std::move(other.m_sql)),
        m_rc(other.m_rc) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;

  static Expected<Stmt> prepare(const Op& op, std::string_view sql) {
    if (StatementCache* cache = op.statements()) {
      if (sqlite3_stmt* kept = cache->take(sql)) {
        return Stmt(op, kept, std::string(sql));
      }
    }
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(op.db(), sql.data(), static_cast<int>(sql.size()),
                                op.statements() != nullptr ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return Unexpected(op.fail(rc));
    }
    return Stmt(op, stmt, std::string(sql));
  }

  void bind(int idx, std::string_view v) {
    remember(sqlite3_bind_text64(m_stmt, idx, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void bind(int idx, int64_t v) { remember(sqlite3_bind_int64(m_stmt, idx, v)); }
  void bind(int idx, int v) { remember(sqlite3_bind_int64(m_stmt, idx, v)); }
  void bind(int idx, double v) { remember(sqlite3_bind_double(m_stmt, idx, v)); }
  void bind_null(int idx) { remember(sqlite3_bind_null(m_stmt, idx)); }

  // True when a row is available, false when the statement is done.
  Expected<bool> step() {
    if (m_rc != SQLITE_OK) {
      return Unexpected(m_op->fail(m_rc));
    }
    m_rc = sqlite3_step(m_stmt);
    if (m_rc == SQLITE_ROW) {
      m_rc = SQLITE_OK;
      return true;
    }
    if (m_rc == SQLITE_DONE) {
      m_rc = SQLITE_OK;
      return false;
    }
    return Unexpected(m_op->fail(m_rc));
  }

  // Runs a statement that returns no rows.
  Expected<void> run() {
    IDP_TRY(step());
    return {};
  }

  // The SQLite result code of the last failed bind or step (extended), SQLITE_OK otherwise.
  int last_rc() const { return m_rc; }

  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(m_stmt, col))) : std::string();
  }
  int64_t int64(int col) const { return sqlite3_column_int64(m_stmt, col); }
  double real(int col) const { return sqlite3_column_double(m_stmt, col); }
  bool is_null(int col) const { return sqlite3_column_type(m_stmt, col) == SQLITE_NULL; }

private:
  void remember(int rc) {
    if (rc != SQLITE_OK && m_rc == SQLITE_OK) {
      m_rc = rc;
    }
  }

  const Op* m_op;
  sqlite3_stmt* m_stmt;
  std::string m_sql;
  int m_rc = SQLITE_OK;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (early returns).
// IMMEDIATE takes the write lock up front, so the busy timeout applies to it; a deferred
// transaction that later upgrades can fail with SQLITE_BUSY without waiting.
class Transaction {
public:
  static Expected<Transaction> begin(const Op& op) {
    IDP_TRY(op.exec("BEGIN IMMEDIATE"));
    return Transaction(op.db());
  }
  ~Transaction() {
    if (m_db != nullptr) {
      sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(Transaction&& other) noexcept : m_db(std::exchange(other.m_db, nullptr)) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;

  Expected<void> commit(const Op& op) {
    IDP_TRY(op.exec("COMMIT"));
    m_db = nullptr;
    return {};
  }

private:
  explicit Transaction(sqlite3* db) : m_db(db) {}
  sqlite3* m_db;
};

// --- Environments ---

// Column order shared by every environment query; bind_environment binds ?1..?26 in it.
constexpr std::string_view k_env_columns[] = {"name",
                                              "repo",
                                              "branch",
                                              "template_name",
                                              "runtime",
                                              "owner",
                                              "source_key",
                                              "phase",
                                              "desired",
                                              "commit_sha",
                                              "deployed_commit",
                                              "generation",
                                              "observed_generation",
                                              "url",
                                              "pr_number",
                                              "config_json",
                                              "outputs_json",
                                              "message",
                                              "warnings_json",
                                              "attempts",
                                              "next_attempt_at",
                                              "created_at",
                                              "expires_at",
                                              "updated_at",
                                              "destroyed_at",
                                              "recreate",
                                              "redeploy_ref",
                                              "profile",
                                              "freeze",
                                              "sleep"};

std::string env_column_list() {
  std::string out;
  for (auto c : k_env_columns) {
    if (!out.empty()) {
      out += ", ";
    }
    out += c;
  }
  return out;
}

const std::string& select_env_sql() {
  static const std::string sql = "SELECT " + env_column_list() + " FROM environments ";
  return sql;
}

// Insert, or overwrite every column of the row with the same name. Used for new rows, for
// replacing a destroyed environment (an UPDATE in place, so revisions referencing the
// name stay valid) and for update_environment. A clash on the live source_key index is
// not handled here and fails with SQLITE_CONSTRAINT_UNIQUE.
const std::string& write_env_sql() {
  static const std::string sql = [] {
    std::string s = "INSERT INTO environments (" + env_column_list() + ") VALUES (";
    for (size_t i = 0; i < std::size(k_env_columns); ++i) {
      s += (i == 0 ? "?" : ", ?") + std::to_string(i + 1);
    }
    s += ") ON CONFLICT(name) DO UPDATE SET ";
    for (size_t i = 1; i < std::size(k_env_columns); ++i) {
      s += (i == 1 ? "" : ", ") + std::string(k_env_columns[i]) + " = excluded." + std::string(k_env_columns[i]);
    }
    return s;
  }();
  return sql;
}

std::string warnings_to_json(const std::vector<std::string>& warnings) {
  // replace: invalid UTF-8 in a warning (e.g. raw driver output) must not make dump() throw.
  return util::json_dump(nlohmann::json(warnings));
}

void bind_environment(Stmt& st, const Environment& e) {
  st.bind(1, e.name);
  st.bind(2, e.repo);
  st.bind(3, e.branch);
  st.bind(4, e.template_name);
  st.bind(5, e.runtime);
  st.bind(6, e.owner);
  st.bind(7, e.source_key);
  st.bind(8, core::phase_name(e.phase));
  st.bind(9, core::desired_name(e.desired));
  st.bind(10, e.commit);
  st.bind(11, e.deployed_commit);
  st.bind(12, e.generation);
  st.bind(13, e.observed_generation);
  st.bind(14, e.url);
  if (e.pr_number) {
    st.bind(15, *e.pr_number);
  } else {
    st.bind_null(15);
  }
  st.bind(16, e.config_json);
  st.bind(17, e.outputs_json);
  st.bind(18, e.message);
  st.bind(19, warnings_to_json(e.warnings));
  st.bind(20, e.attempts);
  st.bind(21, e.next_attempt_at);
  st.bind(22, e.created_at);
  st.bind(23, e.expires_at);
  st.bind(24, e.updated_at);
  st.bind(25, e.destroyed_at);
  st.bind(26, static_cast<int64_t>(e.recreate ? 1 : 0));
  if (e.redeploy_ref) {
    st.bind(27, *e.redeploy_ref);
  } else {
    st.bind_null(27);
  }
  st.bind(28, e.profile);
  st.bind(29, core::freeze_text(e.freeze));
  st.bind(30, core::sleep_text(e.sleep));
}

Expected<Environment> read_environment(const Op& op, const Stmt& st) {
  Environment e;
  e.name = st.text(0);
  e.repo = st.text(1);
  e.branch = st.text(2);
  e.template_name = st.text(3);
  e.runtime = st.text(4);
  e.owner = st.text(5);
  e.source_key = st.text(6);
  std::string phase = st.text(7);
  auto parsed_phase = core::parse_phase(phase);
  if (!parsed_phase) {
    return Unexpected(op.error("environment " + in_quotes(e.name) + " has unknown phase " + in_quotes(phase)));
  }
  e.phase = *parsed_phase;
  std::string desired = st.text(8);
  auto parsed_desired = core::parse_desired(desired);
  if (!parsed_desired) {
    return Unexpected(
        op.error("environment " + in_quotes(e.name) + " has unknown desired state " + in_quotes(desired)));
  }
  e.desired = *parsed_desired;
  e.commit = st.text(9);
  e.deployed_commit = st.text(10);
  e.generation = st.int64(11);
  e.observed_generation = st.int64(12);
  e.url = st.text(13);
  if (!st.is_null(14)) {
    e.pr_number = static_cast<int>(st.int64(14));
  }
  e.config_json = st.text(15);
  e.outputs_json = st.text(16);
  e.message = st.text(17);
  auto warnings = nlohmann::json::parse(st.text(18), nullptr, false);
  if (warnings.is_discarded() || !warnings.is_array()) {
    return Unexpected(op.error("environment " + in_quotes(e.name) + " has malformed warnings"));
  }
  for (const auto& w : warnings) {
    if (!w.is_string()) {
      return Unexpected(op.error("environment " + in_quotes(e.name) + " has a non-string warning"));
    }
    e.warnings.push_back(w.get<std::string>());
  }
  e.attempts = static_cast<int>(st.int64(19));
  e.next_attempt_at = st.int64(20);
  e.created_at = st.int64(21);
  e.expires_at = st.int64(22);
  e.updated_at = st.int64(23);
  e.destroyed_at = st.int64(24);
  e.recreate = st.int64(25) != 0;
  if (!st.is_null(26)) {
    e.redeploy_ref = st.text(26);
  }
  e.profile = st.text(27);
  e.freeze = core::parse_freeze(st.text(28));
  e.sleep = core::parse_sleep(st.text(29));
  return e;
}

// Spelled out in full (source_key != '' included, though callers never pass "") so that the
// planner can prove the query matches environments_live_source_key and search that index.
constexpr const char* k_live_source_key_where = "WHERE source_key = ?1 AND source_key != '' AND phase != 'destroyed'";

Expected<std::optional<Environment>> query_environment_by_name(const Op& op, std::string_view name) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, select_env_sql() + "WHERE name = ?1"));
  st.bind(1, name);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<Environment>();
  }
  IDP_TRY_ASSIGN(auto env, read_environment(op, st));
  return std::optional<Environment>(std::move(env));
}

// The name of the live environment other than `except` that tracks `source_key`.
Expected<std::optional<std::string>> live_owner_of_source_key(const Op& op, std::string_view source_key,
                                                              std::string_view except) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string("SELECT name FROM environments ") + k_live_source_key_where +
                                                " AND name != ?2"));
  st.bind(1, source_key);
  st.bind(2, except);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(st.text(0));
}

Unexpected source_key_taken(std::string_view source_key, std::string_view holder) {
  return make_error(ErrorCode::already_exists,
                    "environment " + in_quotes(holder) + " already tracks source " + in_quotes(source_key));
}

// Writes the row; the caller has already checked name and source_key uniqueness, so a
// unique-index violation here means a check was missed: still reported as already_exists.
Expected<void> write_environment(const Op& op, const Environment& env) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, write_env_sql()));
  bind_environment(st, env);
  auto r = st.run();
  if (!r && st.last_rc() == SQLITE_CONSTRAINT_UNIQUE) {
    return make_error(ErrorCode::already_exists,
                      "environment " + in_quotes(env.name) + " conflicts with a live one: " + r.error().message);
  }
  return r;
}

// --- Events ---

Expected<int64_t> insert_event(const Op& op, const Event& ev) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO events (env, at, actor, action, reason, from_phase, to_phase) "
                                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  st.bind(1, ev.env);
  st.bind(2, ev.at);
  st.bind(3, ev.actor);
  st.bind(4, ev.action);
  st.bind(5, ev.reason);
  st.bind(6, ev.from_phase);
  st.bind(7, ev.to_phase);
  IDP_TRY(st.run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(op.db()));
}

// Events recorded alongside a change of `env_name`; an event without env is about it.
Expected<void> insert_events_for(const Op& op, std::string_view env_name, const std::vector<Event>& events) {
  for (const auto& ev : events) {
    if (ev.env.empty()) {
      Event copy = ev;
      copy.env = std::string(env_name);
      IDP_TRY(insert_event(op, copy));
    } else {
      IDP_TRY(insert_event(op, ev));
    }
  }
  return {};
}

// --- Revisions and job runs ---

constexpr std::string_view k_select_revision = "SELECT id, env, commit_sha, generation, status, message, log_tail, "
                                               "created_at, finished_at, number FROM revisions ";

Expected<Revision> read_revision(const Op& op, const Stmt& st) {
  Revision r;
  r.id = st.int64(0);
  r.env = st.text(1);
  r.commit = st.text(2);
  r.generation = st.int64(3);
  std::string status = st.text(4);
  auto parsed = core::parse_revision_status(status);
  if (!parsed) {
    return Unexpected(op.error("revision " + std::to_string(r.id) + " has unknown status " + in_quotes(status)));
  }
  r.status = *parsed;
  r.message = st.text(5);
  r.log_tail = st.text(6);
  r.created_at = st.int64(7);
  r.finished_at = st.int64(8);
  r.number = st.int64(9);
  return r;
}

constexpr std::string_view k_select_job_run =
    "SELECT id, env, scheduled_at, started_at, finished_at, exit_code, status, message FROM job_runs ";

JobRun read_job_run(const Stmt& st) {
  JobRun r;
  r.id = st.int64(0);
  r.env = st.text(1);
  r.scheduled_at = st.int64(2);
  r.started_at = st.int64(3);
  r.finished_at = st.int64(4);
  r.exit_code = static_cast<int>(st.int64(5));
  r.status = st.text(6);
  r.message = st.text(7);
  return r;
}

// Inserts a row that references environments(name); the foreign key turns an unknown
// environment into not_found.
Expected<int64_t> insert_child_row(const Op& op, Stmt& st, std::string_view env) {
  auto r = st.run();
  if (!r) {
    if (st.last_rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return make_error(ErrorCode::not_found, "environment " + in_quotes(env) + " not found");
    }
    return Unexpected(std::move(r.error()));
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(op.db()));
}

// --- Migrations ---

Expected<int> schema_version(const Op& op) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  IDP_TRY(st.step());
  return static_cast<int>(st.int64(0));
}

// Refuse rather than guess: a newer idp may have changed what the columns mean.
Unexpected newer_schema(const Op& op, int found) {
  return Unexpected(op.error("database schema version " + std::to_string(found) + " is newer than this idp supports (" +
                                 std::to_string(latest_schema_version()) + "); upgrade idp or use another IDP_HOME",
                             ErrorCode::permanent));
}

// Applies the missing migrations, one transaction each. The version is re-read inside
// each transaction, so two processes opening a new file at once do not both apply one.
Expected<void> migrate(const Op& op) {
  IDP_TRY(op.exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
                  "version INTEGER PRIMARY KEY NOT NULL, applied_at INTEGER NOT NULL)"));
  IDP_TRY_ASSIGN(int current, schema_version(op));
  if (current > latest_schema_version()) {
    return newer_schema(op, current);
  }
  while (current < latest_schema_version()) {
    IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
    IDP_TRY_ASSIGN(current, schema_version(op));
    if (current > latest_schema_version()) {
      return newer_schema(op, current);
    }
    if (current < latest_schema_version()) {
      Op step(op.db(), "apply schema migration " + std::to_string(current + 1));
      IDP_TRY(step.exec(std::string(migrations()[static_cast<size_t>(current)]).c_str()));
      IDP_TRY_ASSIGN(auto st,
                     Stmt::prepare(step, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)"));
      st.bind(1, current + 1);
      st.bind(2, util::SystemClock().now_ms());
      IDP_TRY(st.run());
      ++current;
    }
    IDP_TRY(txn.commit(op));
  }
  return {};
}

Expected<void> configure(const Op& op, const SqliteOptions& options) {
  std::string mode;
  {
    // Finalized before the next pragmas: foreign_keys is silently ignored while a
    // statement keeps a transaction open.
    IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "PRAGMA journal_mode = WAL"));
    IDP_TRY_ASSIGN(bool row, st.step());
    mode = row ? st.text(0) : std::string();
  }
  // journal_mode answers with the mode in effect: "memory" for in-memory databases,
  // where WAL does not apply.
  if (mode != "wal" && mode != "memory") {
    return Unexpected(op.error("cannot enable WAL mode (journal_mode is " + in_quotes(mode) + ")"));
  }
  // FULL: a create, extend or destroy the API acknowledged must survive a power loss; with
  // NORMAL the last commits before it can vanish. bench/durability measures the cost.
  IDP_TRY(op.exec(options.synchronous == SyncMode::full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL"));
  IDP_TRY(op.exec("PRAGMA foreign_keys = ON"));
  return {};
}

} // namespace

sqlite3_stmt* StatementCache::take(std::string_view sql) {
  auto it = m_kept.find(sql);
  if (it == m_kept.end()) {
    return nullptr;
  }
  sqlite3_stmt* stmt = it->second;
  m_kept.erase(it);
  return stmt;
}

void StatementCache::give_back(std::string sql, sqlite3_stmt* stmt) {
  if (!m_kept.try_emplace(std::move(sql), stmt).second) {
    sqlite3_finalize(stmt); // the same SQL was in use twice at once: one copy is enough
  }
}

void StatementCache::clear() {
  for (auto& [sql, stmt] : m_kept) {
    sqlite3_finalize(stmt);
  }
  m_kept.clear();
}

SqliteStore::SqliteStore(sqlite3* db, std::string path) : m_db(db), m_path(std::move(path)) {}

SqliteStore::~SqliteStore() {
  m_wal_index = nullptr; // SQLite's mapping: gone with the connections
  m_statements.clear();  // finalized before their connections close
  m_delivery_statements.clear();
  if (m_delivery_db) {
    sqlite3_close_v2(m_delivery_db);
  }
  sqlite3_close_v2(m_db);
}

Expected<int> SqliteStore::synchronous_level_for_test(bool deliveries) {
  std::lock_guard lock(m_mutex);
  Op op(deliveries && m_delivery_db ? m_delivery_db : m_db, "read PRAGMA synchronous");
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "PRAGMA synchronous"));
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return Unexpected(op.error("no answer"));
  }
  return static_cast<int>(st.int64(0));
}

size_t SqliteStore::kept_statements_for_test() {
  std::lock_guard lock(m_mutex);
  return m_statements.size();
}

Expected<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, const SqliteOptions& options) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // The store owns the handle from here on, so every early return closes it.
  std::unique_ptr<SqliteStore> store(new SqliteStore(db, path));
  Op op(db, "open " + in_quotes(path));
  if (rc != SQLITE_OK) {
    return Unexpected(op.fail(rc));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, k_busy_timeout_ms);
  IDP_TRY(configure(op, options));
  IDP_TRY(migrate(op));
  if (path != ":memory:" && !path.empty()) {
    // The deliveries' connection (see the header): the file is in WAL mode already.
    rc = sqlite3_open_v2(path.c_str(), &store->m_delivery_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    Op dop(store->m_delivery_db, "open " + in_quotes(path) + " for webhook deliveries");
    if (rc != SQLITE_OK) {
      return Unexpected(dop.fail(rc));
    }
    sqlite3_extended_result_codes(store->m_delivery_db, 1);
    sqlite3_busy_timeout(store->m_delivery_db, k_busy_timeout_ms);
    IDP_TRY(dop.exec("PRAGMA synchronous = NORMAL"));
    store->map_wal_index();
  }
  return store;
}

// --- Environments ---

Expected<Environment> SqliteStore::insert_environment(const Environment& env, const std::vector<Event>& events) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "insert environment " + in_quotes(env.name), &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  IDP_TRY_ASSIGN(auto existing, query_environment_by_name(op, env.name));
  if (existing && core::phase_is_live(existing->phase)) {
    return make_error(ErrorCode::already_exists, "environment " + in_quotes(env.name) + " already exists");
  }
  if (!env.source_key.empty() && core::phase_is_live(env.phase)) {
    IDP_TRY_ASSIGN(auto holder, live_owner_of_source_key(op, env.source_key, env.name));
    if (holder) {
      return source_key_taken(env.source_key, *holder);
    }
  }
  IDP_TRY(write_environment(op, env));
  IDP_TRY(insert_events_for(op, env.name, events));
  IDP_TRY(txn.commit(op));
  return env;
}

Expected<Environment> SqliteStore::get_environment(std::string_view name) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "get environment " + in_quotes(name), &m_statements);
  IDP_TRY_ASSIGN(auto env, query_environment_by_name(op, name));
  if (!env) {
    return make_error(ErrorCode::not_found, "environment " + in_quotes(name) + " not found");
  }
  return std::move(*env);
}

Expected<std::optional<Environment>> SqliteStore::find_by_source_key(std::string_view source_key) {
  if (source_key.empty()) {
    return std::optional<Environment>(); // "" marks pinned environments: they track nothing
  }
  std::lock_guard lock(m_mutex);
  Op op(m_db, "find environment by source " + in_quotes(source_key), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, select_env_sql() + k_live_source_key_where));
  st.bind(1, source_key);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<Environment>();
  }
  IDP_TRY_ASSIGN(auto env, read_environment(op, st));
  return std::optional<Environment>(std::move(env));
}

std::optional<SqliteStore::WalHeader> SqliteStore::wal_header() const {
  if (!m_wal_index) {
    return std::nullopt;
  }
  // A writer stores the second copy, then the first; a reader loads the first, then the
  // second, and trusts them only when they agree (SQLite's walIndexTryHdr does the same).
  WalHeader first;
  WalHeader second;
  for (size_t i = 0; i < 12; ++i) {
    first.words[i] = __atomic_load_n(&m_wal_index[i], __ATOMIC_RELAXED);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  for (size_t i = 0; i < 12; ++i) {
    second.words[i] = __atomic_load_n(&m_wal_index[12 + i], __ATOMIC_RELAXED);
  }
  // Byte 12 is the u8 isInit: 0 until a connection has built the index.
  const auto* bytes = reinterpret_cast<const unsigned char*>(first.words);
  if (!(first == second) || bytes[12] == 0) {
    return std::nullopt;
  }
  return first;
}

void SqliteStore::map_wal_index() {
  // SQLite's own mapping of the -shm file (the VFS's xShmMap, region 0), valid while the
  // main connection is open. Never an fd of our own on that file: closing one drops every
  // POSIX lock this process holds on it, SQLite's "a connection is here" read lock
  // included, and the next process to open the database (an operator's sqlite3) would take
  // itself for the first user and truncate the file under this one (SIGBUS).
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(m_db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || file == nullptr ||
      file->pMethods == nullptr || file->pMethods->iVersion < 2 || file->pMethods->xShmMap == nullptr) {
    return; // another VFS: the slow path
  }
  void volatile* region = nullptr;
  if (file->pMethods->xShmMap(file, 0, 32768, 0, &region) == SQLITE_OK && region != nullptr) {
    m_wal_index = static_cast<const uint32_t*>(const_cast<void*>(region));
  }
}

Expected<std::vector<Environment>> SqliteStore::list_environments(bool include_destroyed) {
  // Read before the query: a commit in between makes the kept list newer than its header,
  // never older, so the next call reads again.
  const std::optional<WalHeader> header = wal_header();
  KeptList& kept = m_kept[include_destroyed ? 1 : 0];
  if (header) {
    std::shared_ptr<const std::vector<Environment>> envs;
    {
      std::lock_guard kept_lock(m_kept_mutex);
      if (kept.envs && kept.header == *header) {
        envs = kept.envs;
      }
    }
    if (envs) {
      ++m_kept_hits;
      return *envs;
    }
  }
  auto out = list_environments_queried(include_destroyed);
  if (out && header) {
    auto envs = std::make_shared<const std::vector<Environment>>(*out);
    std::lock_guard kept_lock(m_kept_mutex);
    kept = KeptList{*header, std::move(envs)};
  }
  return out;
}

Expected<std::vector<Environment>> SqliteStore::list_environments_queried(bool include_destroyed) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list environments", &m_statements);
  // The list is read on every dashboard poll and `idp list`: served from memory while the
  // database has not changed. This connection's writes move total_changes; another
  // connection's commits (the deliveries' one, another process) move data_version.
  IDP_TRY_ASSIGN(auto version_st, Stmt::prepare(op, "PRAGMA data_version"));
  IDP_TRY_ASSIGN(bool version_row, version_st.step());
  if (!version_row) {
    return Unexpected(op.error("PRAGMA data_version gave no answer"));
  }
  const ListCacheKey key{sqlite3_total_changes64(m_db), version_st.int64(0)};
  ListCache& cache = m_list_cache[include_destroyed ? 1 : 0];
  if (cache.key == key) {
    return cache.envs;
  }
  IDP_TRY_ASSIGN(
      auto st, Stmt::prepare(op, select_env_sql() + (include_destroyed ? "ORDER BY name"
                                                                       : "WHERE phase != 'destroyed' ORDER BY name")));
  std::vector<Environment> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    IDP_TRY_ASSIGN(auto env, read_environment(op, st));
    out.push_back(std::move(env));
  }
  cache.key = key;
  cache.envs = out;
  return out;
}

Expected<Environment> SqliteStore::update_environment(std::string_view name, const Mutator& mutate) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "update environment " + in_quotes(name), &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  IDP_TRY_ASSIGN(auto existing, query_environment_by_name(op, name));
  if (!existing) {
    return make_error(ErrorCode::not_found, "environment " + in_quotes(name) + " not found");
  }
  Environment env = std::move(*existing);
  std::vector<Event> events;
  // The mutator's error is returned as it is: it is the caller's own failure, and the
  // transaction guard rolls back whatever happened.
  IDP_TRY(mutate(env, events));
  if (env.name != name) {
    return make_error(ErrorCode::internal, "update environment " + in_quotes(name) + ": the mutator renamed it to " +
                                               in_quotes(env.name) + "; names cannot change");
  }
  if (!env.source_key.empty() && core::phase_is_live(env.phase)) {
    IDP_TRY_ASSIGN(auto holder, live_owner_of_source_key(op, env.source_key, env.name));
    if (holder) {
      return source_key_taken(env.source_key, *holder);
    }
  }
  IDP_TRY(write_environment(op, env));
  IDP_TRY(insert_events_for(op, env.name, events));
  IDP_TRY(txn.commit(op));
  return env;
}

Expected<size_t> SqliteStore::purge_destroyed_environments(Millis destroyed_before) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "purge destroyed environments", &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  // Children first: revisions and job runs reference environments(name).
  constexpr const char* k_purged = "SELECT name FROM environments WHERE phase = 'destroyed' AND destroyed_at < ?1";
  for (const char* table : {"revisions", "job_runs"}) {
    IDP_TRY_ASSIGN(auto st,
                   Stmt::prepare(op, std::string("DELETE FROM ") + table + " WHERE env IN (" + k_purged + ")"));
    st.bind(1, destroyed_before);
    IDP_TRY(st.run());
  }
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, "DELETE FROM environments WHERE phase = 'destroyed' AND destroyed_at < ?1"));
  st.bind(1, destroyed_before);
  IDP_TRY(st.run());
  auto purged = static_cast<size_t>(sqlite3_changes(m_db));
  IDP_TRY(txn.commit(op));
  return purged;
}

// --- Revisions ---

Expected<int64_t> SqliteStore::insert_revision(const Revision& rev) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "insert revision of " + in_quotes(rev.env), &m_statements);
  // The number is the environment's next one, in the same statement (one writer at a time).
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, "INSERT INTO revisions (env, commit_sha, generation, status, message, "
                                   "log_tail, created_at, finished_at, number) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                                   "?7, ?8, (SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE env = ?1))"));
  st.bind(1, rev.env);
  st.bind(2, rev.commit);
  st.bind(3, rev.generation);
  st.bind(4, core::revision_status_name(rev.status));
  st.bind(5, rev.message);
  st.bind(6, rev.log_tail);
  st.bind(7, rev.created_at);
  st.bind(8, rev.finished_at);
  return insert_child_row(op, st, rev.env);
}

Expected<void> SqliteStore::update_revision(const Revision& rev) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "update revision " + std::to_string(rev.id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "UPDATE revisions SET commit_sha = ?2, generation = ?3, status = ?4, "
                                            "message = ?5, log_tail = ?6, created_at = ?7, finished_at = ?8 "
                                            "WHERE id = ?1"));
  st.bind(1, rev.id);
  st.bind(2, rev.commit);
  st.bind(3, rev.generation);
  st.bind(4, core::revision_status_name(rev.status));
  st.bind(5, rev.message);
  st.bind(6, rev.log_tail);
  st.bind(7, rev.created_at);
  st.bind(8, rev.finished_at);
  IDP_TRY(st.run());
  if (sqlite3_changes(m_db) == 0) {
    return make_error(ErrorCode::not_found, "revision " + std::to_string(rev.id) + " not found");
  }
  return {};
}

Expected<Revision> SqliteStore::get_revision(int64_t id) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "get revision " + std::to_string(id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_revision) + "WHERE id = ?1"));
  st.bind(1, id);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return make_error(ErrorCode::not_found, "revision " + std::to_string(id) + " not found");
  }
  return read_revision(op, st);
}

Expected<std::vector<Revision>> SqliteStore::list_revisions(std::string_view env, size_t limit) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list revisions of " + in_quotes(env), &m_statements);
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, std::string(k_select_revision) + "WHERE env = ?1 ORDER BY id DESC LIMIT ?2"));
  st.bind(1, env);
  st.bind(2, sql_limit(limit));
  std::vector<Revision> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    IDP_TRY_ASSIGN(auto rev, read_revision(op, st));
    out.push_back(std::move(rev));
  }
  return out;
}

// --- Events ---

Expected<int64_t> SqliteStore::append_event(const Event& ev) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "append event for " + in_quotes(ev.env), &m_statements);
  return insert_event(op, ev);
}

Expected<std::vector<Event>> SqliteStore::list_events(const EventQuery& q) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list events", &m_statements);
  // Two statements rather than "(?1 = '' OR env = ?1)", which would keep the planner
  // from using events_by_env.
  constexpr std::string_view k_select = "SELECT id, env, at, actor, action, reason, from_phase, to_phase FROM events ";
  std::string sql(k_select);
  sql += q.env.empty() ? "WHERE id > ?2" : "WHERE env = ?1 AND id > ?2";
  sql += q.newest_first ? " ORDER BY id DESC LIMIT ?3" : " ORDER BY id LIMIT ?3";
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, sql));
  if (!q.env.empty()) {
    st.bind(1, q.env);
  }
  st.bind(2, q.after_id);
  st.bind(3, sql_limit(q.limit));
  std::vector<Event> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    Event ev;
    ev.id = st.int64(0);
    ev.env = st.text(1);
    ev.at = st.int64(2);
    ev.actor = st.text(3);
    ev.action = st.text(4);
    ev.reason = st.text(5);
    ev.from_phase = st.text(6);
    ev.to_phase = st.text(7);
    out.push_back(std::move(ev));
  }
  return out;
}

Expected<size_t> SqliteStore::prune_events(Millis before) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "prune events", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM events WHERE at < ?1"));
  st.bind(1, before);
  IDP_TRY(st.run());
  return static_cast<size_t>(sqlite3_changes(m_db));
}

// --- Leases ---

Expected<bool> SqliteStore::try_acquire_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "acquire lease on " + in_quotes(env), &m_statements);
  // One statement, so it is atomic against other connections too: the upsert's WHERE
  // leaves a lease held by someone else untouched, and changes() tells which happened.
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO leases (env, owner, expires_at) VALUES (?1, ?2, ?3) "
                                            "ON CONFLICT(env) DO UPDATE SET owner = excluded.owner, "
                                            "expires_at = excluded.expires_at "
                                            "WHERE leases.expires_at <= ?4 OR leases.owner = excluded.owner"));
  st.bind(1, env);
  st.bind(2, owner);
  st.bind(3, now + ttl);
  st.bind(4, now);
  IDP_TRY(st.run());
  return sqlite3_changes(m_db) > 0;
}

Expected<bool> SqliteStore::renew_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "renew lease on " + in_quotes(env), &m_statements);
  // An UPDATE, never an upsert: a lease released or broken meanwhile stays gone.
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "UPDATE leases SET expires_at = ?3 WHERE env = ?1 AND owner = ?2"));
  st.bind(1, env);
  st.bind(2, owner);
  st.bind(3, now + ttl);
  IDP_TRY(st.run());
  return sqlite3_changes(m_db) > 0;
}

Expected<void> SqliteStore::release_lease(std::string_view env, std::string_view owner) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "release lease on " + in_quotes(env), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM leases WHERE env = ?1 AND owner = ?2"));
  st.bind(1, env);
  st.bind(2, owner);
  return st.run();
}

Expected<void> SqliteStore::break_lease(std::string_view env) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "break lease on " + in_quotes(env), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM leases WHERE env = ?1"));
  st.bind(1, env);
  return st.run();
}

Expected<std::optional<Lease>> SqliteStore::get_lease(std::string_view env) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "get lease on " + in_quotes(env), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT env, owner, expires_at FROM leases WHERE env = ?1"));
  st.bind(1, env);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<Lease>();
  }
  return std::optional<Lease>(Lease{st.text(0), st.text(1), st.int64(2)});
}

Expected<std::vector<Lease>> SqliteStore::list_leases() {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list leases", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT env, owner, expires_at FROM leases ORDER BY env"));
  std::vector<Lease> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    out.push_back(Lease{st.text(0), st.text(1), st.int64(2)});
  }
  return out;
}

// --- Deliveries ---

Expected<bool> SqliteStore::record_delivery(std::string_view delivery_id, Millis at) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "record delivery " + in_quotes(delivery_id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO deliveries (id, received_at) VALUES (?1, ?2) "
                                            "ON CONFLICT(id) DO NOTHING"));
  st.bind(1, delivery_id);
  st.bind(2, at);
  IDP_TRY(st.run());
  return sqlite3_changes(m_db) > 0;
}

Expected<bool> SqliteStore::any_delivery_recorded(const std::vector<std::string>& keys) {
  std::unique_lock lock(m_delivery_db ? m_delivery_mutex : m_mutex);
  Op op(m_delivery_db ? m_delivery_db : m_db, "look up delivery keys",
        m_delivery_db ? &m_delivery_statements : &m_statements);
  for (const auto& key : keys) {
    IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT 1 FROM deliveries WHERE id = ?1"));
    st.bind(1, key);
    IDP_TRY_ASSIGN(bool row, st.step());
    if (row) {
      return true;
    }
  }
  return false;
}

Expected<void> SqliteStore::insert_delivery_keys(const std::vector<DeliveryKey>& keys) {
  std::unique_lock lock(m_delivery_db ? m_delivery_mutex : m_mutex);
  Op op(m_delivery_db ? m_delivery_db : m_db, "record " + std::to_string(keys.size()) + " delivery keys",
        m_delivery_db ? &m_delivery_statements : &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  for (const auto& k : keys) {
    IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO deliveries (id, received_at) VALUES (?1, ?2) "
                                              "ON CONFLICT(id) DO NOTHING"));
    st.bind(1, k.key);
    st.bind(2, k.at);
    IDP_TRY(st.run());
  }
  return txn.commit(op);
}

Expected<void> SqliteStore::prune_deliveries(Millis before) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "prune deliveries", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM deliveries WHERE received_at < ?1"));
  st.bind(1, before);
  return st.run();
}

// --- Job runs ---

Expected<int64_t> SqliteStore::insert_job_run(const JobRun& run) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "insert job run of " + in_quotes(run.env), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO job_runs (env, scheduled_at, started_at, finished_at, "
                                            "exit_code, status, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  st.bind(1, run.env);
  st.bind(2, run.scheduled_at);
  st.bind(3, run.started_at);
  st.bind(4, run.finished_at);
  st.bind(5, run.exit_code);
  st.bind(6, run.status);
  st.bind(7, run.message);
  return insert_child_row(op, st, run.env);
}

Expected<void> SqliteStore::update_job_run(const JobRun& run) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "update job run " + std::to_string(run.id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "UPDATE job_runs SET scheduled_at = ?2, started_at = ?3, finished_at = ?4, "
                                            "exit_code = ?5, status = ?6, message = ?7 WHERE id = ?1"));
  st.bind(1, run.id);
  st.bind(2, run.scheduled_at);
  st.bind(3, run.started_at);
  st.bind(4, run.finished_at);
  st.bind(5, run.exit_code);
  st.bind(6, run.status);
  st.bind(7, run.message);
  IDP_TRY(st.run());
  if (sqlite3_changes(m_db) == 0) {
    return make_error(ErrorCode::not_found, "job run " + std::to_string(run.id) + " not found");
  }
  return {};
}

Expected<std::vector<JobRun>> SqliteStore::list_job_runs(std::string_view env, size_t limit) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list job runs of " + in_quotes(env), &m_statements);
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, std::string(k_select_job_run) + "WHERE env = ?1 ORDER BY id DESC LIMIT ?2"));
  st.bind(1, env);
  st.bind(2, sql_limit(limit));
  std::vector<JobRun> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    out.push_back(read_job_run(st));
  }
  return out;
}

// --- API tokens ---

namespace {

constexpr std::string_view k_select_api_token =
    "SELECT id, hash, name, role, owner, created_by, created_at, expires_at, last_used_at, revoked_at FROM api_tokens ";

ApiToken read_api_token(const Stmt& st) {
  ApiToken t;
  t.id = st.text(0);
  t.hash = st.text(1);
  t.name = st.text(2);
  t.role = st.text(3);
  t.owner = st.text(4);
  t.created_by = st.text(5);
  t.created_at = st.int64(6);
  t.expires_at = st.int64(7);
  t.last_used_at = st.int64(8);
  t.revoked_at = st.int64(9);
  return t;
}

// Sets revoked_at of row `id` of `table` (once: a revoked row keeps its first time) and
// returns the row as `select` + `read` see it, in one transaction: api tokens and share
// links alike. `what` names the row in a not_found error.
template <typename Row, typename Read>
Expected<Row> revoke_row(Op& op, std::string_view table, std::string_view select, Read read, std::string_view id,
                         Millis at, const std::string& what) {
  IDP_TRY_ASSIGN(auto tx, Transaction::begin(op));
  {
    IDP_TRY_ASSIGN(auto up, Stmt::prepare(op, "UPDATE " + std::string(table) +
                                                  " SET revoked_at = ?2 WHERE id = ?1 AND revoked_at = 0"));
    up.bind(1, id);
    up.bind(2, at);
    IDP_TRY(up.run());
  }
  Row r;
  {
    // Finished before COMMIT: no statement may be pending then.
    IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(select) + "WHERE id = ?1"));
    st.bind(1, id);
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      return make_error(ErrorCode::not_found, what + " " + in_quotes(id) + " not found");
    }
    r = read(st);
  }
  IDP_TRY(tx.commit(op));
  return r;
}

} // namespace

Expected<void> SqliteStore::insert_api_token(const ApiToken& token) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "insert api token " + in_quotes(token.id), &m_statements);
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, "INSERT INTO api_tokens (id, hash, name, role, owner, created_by, created_at, "
                                   "expires_at, last_used_at, revoked_at) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  st.bind(1, token.id);
  st.bind(2, token.hash);
  st.bind(3, token.name);
  st.bind(4, token.role);
  st.bind(5, token.owner);
  st.bind(6, token.created_by);
  st.bind(7, token.created_at);
  st.bind(8, token.expires_at);
  st.bind(9, token.last_used_at);
  st.bind(10, token.revoked_at);
  auto r = st.run();
  if (!r && (st.last_rc() == SQLITE_CONSTRAINT_UNIQUE || st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY)) {
    return make_error(ErrorCode::already_exists, "api token " + in_quotes(token.id) + " already exists");
  }
  return r;
}

Expected<std::optional<ApiToken>> SqliteStore::find_api_token(std::string_view hash) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "find api token", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_api_token) + "WHERE hash = ?1"));
  st.bind(1, hash);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<ApiToken>();
  }
  return std::optional<ApiToken>(read_api_token(st));
}

Expected<std::vector<ApiToken>> SqliteStore::list_api_tokens() {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list api tokens", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_api_token) + "ORDER BY created_at, id"));
  std::vector<ApiToken> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    out.push_back(read_api_token(st));
  }
  return out;
}

Expected<ApiToken> SqliteStore::revoke_api_token(std::string_view id, Millis at) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "revoke api token " + in_quotes(id), &m_statements);
  return revoke_row<ApiToken>(op, "api_tokens", k_select_api_token, read_api_token, id, at, "api token");
}

Expected<void> SqliteStore::touch_api_token(std::string_view id, Millis at) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "touch api token " + in_quotes(id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1"));
  st.bind(1, id);
  st.bind(2, at);
  return st.run();
}

// --- Share links of protected previews ---

namespace {

constexpr std::string_view k_select_preview_grant =
    "SELECT id, env, created_by, created_at, expires_at, revoked_at FROM preview_grants ";

PreviewGrant read_preview_grant(const Stmt& st) {
  PreviewGrant g;
  g.id = st.text(0);
  g.env = st.text(1);
  g.created_by = st.text(2);
  g.created_at = st.int64(3);
  g.expires_at = st.int64(4);
  g.revoked_at = st.int64(5);
  return g;
}

} // namespace

Expected<void> SqliteStore::insert_preview_grant(const PreviewGrant& g) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "insert share link " + in_quotes(g.id), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO preview_grants (id, env, created_by, created_at, expires_at, "
                                            "revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  st.bind(1, g.id);
  st.bind(2, g.env);
  st.bind(3, g.created_by);
  st.bind(4, g.created_at);
  st.bind(5, g.expires_at);
  st.bind(6, g.revoked_at);
  auto r = st.run();
  if (!r && st.last_rc() == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return make_error(ErrorCode::already_exists, "share link " + in_quotes(g.id) + " already exists");
  }
  return r;
}

Expected<std::optional<PreviewGrant>> SqliteStore::find_preview_grant(std::string_view id) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "find share link", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_preview_grant) + "WHERE id = ?1"));
  st.bind(1, id);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<PreviewGrant>();
  }
  return std::optional<PreviewGrant>(read_preview_grant(st));
}

Expected<std::vector<PreviewGrant>> SqliteStore::list_preview_grants(std::string_view env) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list share links", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_preview_grant) +
                                                "WHERE ?1 = '' OR env = ?1 ORDER BY created_at, id"));
  st.bind(1, env);
  std::vector<PreviewGrant> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    out.push_back(read_preview_grant(st));
  }
  return out;
}

Expected<PreviewGrant> SqliteStore::revoke_preview_grant(std::string_view id, Millis at) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "revoke share link " + in_quotes(id), &m_statements);
  return revoke_row<PreviewGrant>(op, "preview_grants", k_select_preview_grant, read_preview_grant, id, at,
                                  "share link");
}

// --- Pull requests from forks ---

namespace {

constexpr std::string_view k_select_fork_request =
    "SELECT repo, pr, github_repo, head_repo, head_ref, head_sha, author, state, approved_commit, approved_by, "
    "approved_at, env, updated_at FROM fork_requests ";

ForkRequest read_fork_request(const Stmt& st) {
  ForkRequest f;
  f.repo = st.text(0);
  f.pr = static_cast<int>(st.int64(1));
  f.github_repo = st.text(2);
  f.head_repo = st.text(3);
  f.head_ref = st.text(4);
  f.head_sha = st.text(5);
  f.author = st.text(6);
  f.state = st.text(7);
  f.approved_commit = st.text(8);
  f.approved_by = st.text(9);
  f.approved_at = st.int64(10);
  f.env = st.text(11);
  f.updated_at = st.int64(12);
  return f;
}

Expected<std::optional<ForkRequest>> query_fork_request(const Op& op, std::string_view repo, int pr) {
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_fork_request) + "WHERE repo = ?1 AND pr = ?2"));
  st.bind(1, repo);
  st.bind(2, static_cast<int64_t>(pr));
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<ForkRequest>();
  }
  return std::optional<ForkRequest>(read_fork_request(st));
}

} // namespace

Expected<ForkRequest> SqliteStore::update_fork_request(std::string_view repo, int pr, const ForkMutator& mutate) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "update fork request " + in_quotes(repo) + " #" + std::to_string(pr), &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  IDP_TRY_ASSIGN(auto existing, query_fork_request(op, repo, pr));
  ForkRequest f;
  if (existing) {
    f = std::move(*existing);
  } else {
    f.repo = std::string(repo);
    f.pr = pr;
  }
  IDP_TRY(mutate(f, existing.has_value()));
  if (f.repo != repo || f.pr != pr) {
    return make_error(ErrorCode::invalid_argument, "update fork request: the mutator changed its repository or number");
  }
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, "INSERT INTO fork_requests (repo, pr, github_repo, head_repo, head_ref, head_sha, "
                                   "author, state, approved_commit, approved_by, approved_at, env, updated_at) VALUES "
                                   "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(repo, pr) DO "
                                   "UPDATE SET github_repo = excluded.github_repo, head_repo = excluded.head_repo, "
                                   "head_ref = excluded.head_ref, head_sha = excluded.head_sha, author = "
                                   "excluded.author, state = excluded.state, approved_commit = "
                                   "excluded.approved_commit, approved_by = excluded.approved_by, approved_at = "
                                   "excluded.approved_at, env = excluded.env, updated_at = excluded.updated_at"));
  st.bind(1, f.repo);
  st.bind(2, static_cast<int64_t>(f.pr));
  st.bind(3, f.github_repo);
  st.bind(4, f.head_repo);
  st.bind(5, f.head_ref);
  st.bind(6, f.head_sha);
  st.bind(7, f.author);
  st.bind(8, f.state);
  st.bind(9, f.approved_commit);
  st.bind(10, f.approved_by);
  st.bind(11, f.approved_at);
  st.bind(12, f.env);
  st.bind(13, f.updated_at);
  IDP_TRY(st.run());
  IDP_TRY(txn.commit(op));
  return f;
}

Expected<std::optional<ForkRequest>> SqliteStore::get_fork_request(std::string_view repo, int pr) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "get fork request", &m_statements);
  return query_fork_request(op, repo, pr);
}

Expected<std::vector<ForkRequest>> SqliteStore::list_fork_requests() {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list fork requests", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, std::string(k_select_fork_request) + "ORDER BY repo, pr"));
  std::vector<ForkRequest> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    out.push_back(read_fork_request(st));
  }
  return out;
}

// --- Usage ---

Expected<void> SqliteStore::add_usage(const std::vector<UsageHour>& usage) {
  for (const auto& u : usage) {
    if (u.hour % 3'600'000 != 0) {
      return make_error(ErrorCode::invalid_argument,
                        "add usage: " + std::to_string(u.hour) + " is not an hour's start");
    }
  }
  std::lock_guard lock(m_mutex);
  Op op(m_db, "add usage", &m_statements);
  IDP_TRY_ASSIGN(auto txn, Transaction::begin(op));
  for (const auto& u : usage) {
    IDP_TRY_ASSIGN(
        auto st,
        Stmt::prepare(op, "INSERT INTO usage_hours (env, hour, owner, repo, template, runtime, running_ms, "
                          "reserved_cpu_ms, reserved_memory_mb_ms, used_cpu_seconds, used_memory_byte_ms, "
                          "storage_byte_ms, measured_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                          "?13) ON CONFLICT(env, hour) DO UPDATE SET owner = excluded.owner, repo = excluded.repo, "
                          "template = excluded.template, runtime = excluded.runtime, running_ms = running_ms + "
                          "excluded.running_ms, reserved_cpu_ms = reserved_cpu_ms + excluded.reserved_cpu_ms, "
                          "reserved_memory_mb_ms = reserved_memory_mb_ms + excluded.reserved_memory_mb_ms, "
                          "used_cpu_seconds = used_cpu_seconds + excluded.used_cpu_seconds, used_memory_byte_ms = "
                          "used_memory_byte_ms + excluded.used_memory_byte_ms, storage_byte_ms = storage_byte_ms + "
                          "excluded.storage_byte_ms, measured_ms = measured_ms + excluded.measured_ms"));
    st.bind(1, u.env);
    st.bind(2, u.hour);
    st.bind(3, u.owner);
    st.bind(4, u.repo);
    st.bind(5, u.template_name);
    st.bind(6, u.runtime);
    st.bind(7, u.running_ms);
    st.bind(8, u.reserved_cpu_ms);
    st.bind(9, u.reserved_memory_mb_ms);
    st.bind(10, u.used_cpu_seconds);
    st.bind(11, u.used_memory_byte_ms);
    st.bind(12, u.storage_byte_ms);
    st.bind(13, u.measured_ms);
    IDP_TRY(st.run());
  }
  IDP_TRY(txn.commit(op));
  return {};
}

Expected<std::vector<UsageHour>> SqliteStore::list_usage(Millis from, Millis to, std::string_view env) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list usage", &m_statements);
  IDP_TRY_ASSIGN(auto st,
                 Stmt::prepare(op, "SELECT env, hour, owner, repo, template, runtime, running_ms, reserved_cpu_ms, "
                                   "reserved_memory_mb_ms, used_cpu_seconds, used_memory_byte_ms, storage_byte_ms, "
                                   "measured_ms FROM usage_hours WHERE hour >= ?1 AND hour < ?2 AND (?3 = '' OR env = "
                                   "?3) ORDER BY hour, env"));
  st.bind(1, from);
  st.bind(2, to);
  st.bind(3, env);
  std::vector<UsageHour> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    UsageHour u;
    u.env = st.text(0);
    u.hour = st.int64(1);
    u.owner = st.text(2);
    u.repo = st.text(3);
    u.template_name = st.text(4);
    u.runtime = st.text(5);
    u.running_ms = st.int64(6);
    u.reserved_cpu_ms = st.real(7);
    u.reserved_memory_mb_ms = st.real(8);
    u.used_cpu_seconds = st.real(9);
    u.used_memory_byte_ms = st.real(10);
    u.storage_byte_ms = st.real(11);
    u.measured_ms = st.int64(12);
    out.push_back(std::move(u));
  }
  return out;
}

Expected<size_t> SqliteStore::prune_usage(Millis before) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "prune usage", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM usage_hours WHERE hour < ?1"));
  st.bind(1, before);
  IDP_TRY(st.run());
  return static_cast<size_t>(sqlite3_changes(m_db));
}

// --- Server secrets ---

Expected<void> SqliteStore::put_secret(const StoredSecret& secret) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "put secret " + in_quotes(secret.name), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO secrets (scope, name, sealed, updated_by, updated_at) "
                                            "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, name) DO UPDATE SET "
                                            "sealed = excluded.sealed, updated_by = excluded.updated_by, "
                                            "updated_at = excluded.updated_at"));
  st.bind(1, secret.scope);
  st.bind(2, secret.name);
  st.bind(3, secret.sealed);
  st.bind(4, secret.updated_by);
  st.bind(5, secret.updated_at);
  return st.run();
}

Expected<std::vector<StoredSecret>> SqliteStore::list_secrets() {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "list secrets", &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT scope, name, sealed, updated_by, updated_at FROM secrets "
                                            "ORDER BY name, scope"));
  std::vector<StoredSecret> out;
  while (true) {
    IDP_TRY_ASSIGN(bool row, st.step());
    if (!row) {
      break;
    }
    StoredSecret s;
    s.scope = st.text(0);
    s.name = st.text(1);
    s.sealed = st.text(2);
    s.updated_by = st.text(3);
    s.updated_at = st.int64(4);
    out.push_back(std::move(s));
  }
  return out;
}

Expected<void> SqliteStore::delete_secret(std::string_view scope, std::string_view name) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "delete secret " + in_quotes(name), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "DELETE FROM secrets WHERE scope = ?1 AND name = ?2"));
  st.bind(1, scope);
  st.bind(2, name);
  IDP_TRY(st.run());
  if (sqlite3_changes(m_db) == 0) {
    return make_error(ErrorCode::not_found,
                      "secret " + in_quotes(name) +
                          (scope.empty() ? std::string(" (every repository)") : " for " + in_quotes(scope)) +
                          " not found");
  }
  return {};
}

// --- Settings ---

Expected<std::optional<std::string>> SqliteStore::get_setting(std::string_view key) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "get setting " + in_quotes(key), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "SELECT value FROM settings WHERE key = ?1"));
  st.bind(1, key);
  IDP_TRY_ASSIGN(bool row, st.step());
  if (!row) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(st.text(0));
}

Expected<void> SqliteStore::set_setting(std::string_view key, std::string_view value) {
  std::lock_guard lock(m_mutex);
  Op op(m_db, "set setting " + in_quotes(key), &m_statements);
  IDP_TRY_ASSIGN(auto st, Stmt::prepare(op, "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                                            "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  st.bind(1, key);
  st.bind(2, value);
  return st.run();
}

} // namespace idp::store::sqlite
