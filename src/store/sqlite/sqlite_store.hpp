#pragma once
// SqliteStore: the default StateStore, one SQLite file under $IDP_HOME.
//
// Thread-safety: one connection guarded by one mutex, so every method is serialised
// within a process (webhook delivery keys excepted: they have a connection of their own). The daemon is the only writer; other processes (a second SqliteStore
// on the same file, `sqlite3` by hand) are tolerated: the database is in WAL mode, every
// write transaction is BEGIN IMMEDIATE and the connection waits up to 5 s for a lock.
//
// Errors: SQLite failures are ErrorCode::transient when the database stayed busy or
// locked past the timeout, ErrorCode::io_error otherwise, with a message like
// `sqlite: insert environment "x": database disk image is malformed`. Nothing throws.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/state_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace idp::store::sqlite {

// A connection's prepared statements by SQL text: preparing (parsing and planning) costs
// more than running most of the store's queries. Not thread-safe: whatever guards the
// connection guards its cache. A statement taken is the caller's until it gives it back
// (so a statement in use is never handed out twice).
class StatementCache {
public:
  StatementCache() = default;
  ~StatementCache() { clear(); }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // The kept statement for `sql`, now the caller's; nullptr when none is kept.
  sqlite3_stmt* take(std::string_view sql);
  // Keeps `stmt` (reset and unbound by the caller) for the next take of `sql`; finalizes
  // it when one is kept already.
  void give_back(std::string sql, sqlite3_stmt* stmt);
  // Finalizes every kept statement.
  void clear();
  size_t size() const { return m_kept.size(); }

private:
  std::map<std::string, sqlite3_stmt*, std::less<>> m_kept;
};

// How SQLite syncs a commit to disk (PRAGMA synchronous, with WAL).
enum class SyncMode {
  full,   // the WAL is synced at every commit: an acknowledged write survives power loss
  normal, // synced at checkpoints only: survives a crash of idp, not of the machine (bench only)
};

struct SqliteOptions {
  SyncMode synchronous = SyncMode::full;
};

class SqliteStore final : public StateStore {
public:
  // Opens (creating if missing) the database at `path`, or a private in-memory database
  // for ":memory:". Sets WAL mode, synchronous (FULL unless options say otherwise; the
  // deliveries' connection is NORMAL, see below), foreign keys and a 5 s busy timeout, then applies the migrations the file lacks (see
  // migrations.hpp). Errors: io_error/transient when SQLite fails; permanent when the
  // file's schema is newer than this binary knows (it was written by a newer idp).
  static Expected<std::unique_ptr<SqliteStore>> open(const std::string& path, const SqliteOptions& options = {});

  // PRAGMA synchronous (1 = NORMAL, 2 = FULL) of the state connection, or of the
  // deliveries' connection, to check what open() set (not while deliveries are written).
  Expected<int> synchronous_level_for_test(bool deliveries = false);
  // How many prepared statements the state connection keeps (the statement cache).
  size_t kept_statements_for_test();
  // How many list_environments() calls were answered from the kept list without a query.
  uint64_t kept_list_hits_for_test() const { return m_kept_hits.load(); }

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // The path given to open().
  const std::string& path() const { return m_path; }

  // --- StateStore ---
  // The contract is in state_store.hpp. In addition, as for every store:
  // - events with an empty `env` appended through insert_environment / update_environment
  //   are recorded for that environment;
  // - the Mutator runs with the store locked: it must not call back into the store;
  // - insert_revision / insert_job_run fail with not_found for an unknown environment;
  // - update_revision / update_job_run write every field but id and env; not_found for
  //   an unknown id.
  Expected<Environment> insert_environment(const Environment& env, const std::vector<Event>& events) override;
  Expected<Environment> get_environment(std::string_view name) override;
  Expected<std::optional<Environment>> find_by_source_key(std::string_view source_key) override;
  Expected<std::vector<Environment>> list_environments(bool include_destroyed) override;
  Expected<Environment> update_environment(std::string_view name, const Mutator& mutate) override;
  Expected<size_t> purge_destroyed_environments(Millis destroyed_before) override;

  Expected<int64_t> insert_revision(const Revision& rev) override;
  Expected<void> update_revision(const Revision& rev) override;
  Expected<Revision> get_revision(int64_t id) override;
  Expected<std::vector<Revision>> list_revisions(std::string_view env, size_t limit) override;

  Expected<int64_t> append_event(const Event& ev) override;
  Expected<std::vector<Event>> list_events(const EventQuery& q) override;
  Expected<size_t> prune_events(Millis before) override;

  Expected<bool> try_acquire_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) override;
  Expected<bool> renew_lease(std::string_view env, std::string_view owner, Millis now, Millis ttl) override;
  Expected<void> release_lease(std::string_view env, std::string_view owner) override;
  Expected<void> break_lease(std::string_view env) override;
  Expected<std::optional<Lease>> get_lease(std::string_view env) override;
  Expected<std::vector<Lease>> list_leases() override;

  Expected<bool> record_delivery(std::string_view delivery_id, Millis at) override;
  Expected<bool> any_delivery_recorded(const std::vector<std::string>& keys) override;
  Expected<void> insert_delivery_keys(const std::vector<DeliveryKey>& keys) override;
  Expected<void> prune_deliveries(Millis before) override;

  Expected<int64_t> insert_job_run(const JobRun& run) override;
  Expected<void> update_job_run(const JobRun& run) override;
  Expected<std::vector<JobRun>> list_job_runs(std::string_view env, size_t limit) override;

  Expected<void> insert_api_token(const ApiToken& token) override;
  Expected<std::optional<ApiToken>> find_api_token(std::string_view hash) override;
  Expected<std::vector<ApiToken>> list_api_tokens() override;
  Expected<ApiToken> revoke_api_token(std::string_view id, Millis at) override;
  Expected<void> touch_api_token(std::string_view id, Millis at) override;
  Expected<void> insert_preview_grant(const PreviewGrant& grant) override;
  Expected<std::optional<PreviewGrant>> find_preview_grant(std::string_view id) override;
  Expected<std::vector<PreviewGrant>> list_preview_grants(std::string_view env) override;
  Expected<PreviewGrant> revoke_preview_grant(std::string_view id, Millis at) override;
  Expected<ForkRequest> update_fork_request(std::string_view repo, int pr, const ForkMutator& mutate) override;
  Expected<std::optional<ForkRequest>> get_fork_request(std::string_view repo, int pr) override;
  Expected<std::vector<ForkRequest>> list_fork_requests() override;
  Expected<void> add_usage(const std::vector<UsageHour>& usage) override;
  Expected<std::vector<UsageHour>> list_usage(Millis from, Millis to, std::string_view env) override;
  Expected<size_t> prune_usage(Millis before) override;
  Expected<void> put_secret(const StoredSecret& secret) override;
  Expected<std::vector<StoredSecret>> list_secrets() override;
  Expected<void> delete_secret(std::string_view scope, std::string_view name) override;

  Expected<std::optional<std::string>> get_setting(std::string_view key) override;
  Expected<void> set_setting(std::string_view key, std::string_view value) override;

private:
  SqliteStore(sqlite3* db, std::string path);

  // Webhook delivery keys go through a second connection of their own (a file database),
  // with synchronous=NORMAL and without m_mutex: delivery keys are a replay guard, not
  // desired state, so they need not wait for an fsync (a power loss forgets at most the
  // last moments of them, and a replayed push deploys only a branch's current head
  // anyway), and an API read never waits behind a webhook's write. Environments,
  // revisions, tokens and the rest stay synchronous=FULL.
  // m_delivery_mutex guards that connection and its statements.
  std::mutex m_delivery_mutex;

  std::mutex m_mutex;
  sqlite3* m_db;               // guarded by m_mutex
  StatementCache m_statements; // m_db's; guarded by m_mutex
  // list_environments()'s last answers (without, with destroyed environments), valid while
  // the database is as it was then; guarded by m_mutex.
  struct ListCacheKey {
    int64_t total_changes = -1; // sqlite3_total_changes64(m_db): this connection's writes
    int64_t data_version = -1;  // PRAGMA data_version: other connections' commits
    bool operator==(const ListCacheKey&) const = default;
  };
  struct ListCache {
    ListCacheKey key;
    std::vector<Environment> envs;
  };
  ListCache m_list_cache[2];
  // The same answers, read without m_mutex and without a system call while nobody commits:
  // each is kept beside the WAL-index header (the -shm file's first 96 bytes, which every
  // commit of any connection, in this process or another, rewrites: sqlite.org/walformat.html)
  // that was current when it was read. Taking m_mutex and starting a read transaction
  // (file locks on the -shm file) for every dashboard poll and `idp list` was what the
  // authenticated list waited on under load (bench/api_auth).
  struct WalHeader {
    uint32_t words[12] = {};
    bool operator==(const WalHeader&) const = default;
  };
  // The header's two copies, read as SQLite reads them; nullopt when not mapped, not
  // initialised, or in the middle of a commit (the caller then takes the slow path).
  std::optional<WalHeader> wal_header() const;
  // list_environments() from the database, under m_mutex.
  Expected<std::vector<Environment>> list_environments_queried(bool include_destroyed);
  void map_wal_index();
  const uint32_t* m_wal_index = nullptr; // the WAL index's first page (SQLite's mapping), read-only
  struct KeptList {
    WalHeader header;
    std::shared_ptr<const std::vector<Environment>> envs; // nullptr: nothing kept
  };
  mutable std::mutex m_kept_mutex; // guards m_kept; held only to copy a pointer
  KeptList m_kept[2];
  std::atomic<uint64_t> m_kept_hits{0};
  // The deliveries' connection (nullptr for ":memory:", which then uses m_db under
  // m_mutex); guarded by m_delivery_mutex.
  sqlite3* m_delivery_db = nullptr;
  StatementCache m_delivery_statements; // m_delivery_db's; guarded by m_delivery_mutex
  std::string m_path;
};

} // namespace idp::store::sqlite
