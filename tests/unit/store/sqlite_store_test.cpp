// What only SqliteStore has: the file, its schema migrations, WAL, and sharing the file
// with another connection. The StateStore behaviour itself is in tests/contract/.

#include "store/sqlite/sqlite_store.hpp"

#include <atomic>
#include <fcntl.h>
#include <latch>
#include <sqlite3.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "contract/store_contract.hpp" // IDP_ASSERT_OK / IDP_ASSERT_OK_ASSIGN
#include "store/sqlite/migrations.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::store::sqlite {
namespace {

using core::Environment;
using core::Event;
using core::Phase;
using Rows = std::vector<std::vector<std::string>>;

// A second, plain connection to the file: another process, or someone with `sqlite3`.
class RawDb {
public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(m_db);
    }
  }
  ~RawDb() { sqlite3_close(m_db); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // "" on success, the SQLite message otherwise.
  std::string exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = rc == SQLITE_OK ? "" : (err != nullptr ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return msg;
  }

  // Every row as text (NULL as "NULL"); empty on error, which is reported as a failure.
  Rows query(const std::string& sql) {
    Rows rows;
    char* err = nullptr;
    auto collect = [](void* out, int n, char** values, char**) {
      std::vector<std::string> row;
      for (int i = 0; i < n; ++i) {
        row.emplace_back(values[i] != nullptr ? values[i] : "NULL");
      }
      static_cast<Rows*>(out)->push_back(std::move(row));
      return 0;
    };
    if (sqlite3_exec(m_db, sql.c_str(), collect, &rows, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err != nullptr ? err : "?");
    }
    sqlite3_free(err);
    return rows;
  }

private:
  sqlite3* m_db = nullptr;
};

Environment make_env(const std::string& name) {
  Environment e;
  e.name = name;
  e.repo = "/src/app";
  e.branch = name;
  e.source_key = "/src/app\n" + name;
  e.commit = "c0ffee";
  e.created_at = 1000;
  return e;
}

Rows versions_1_to_latest() {
  Rows out;
  for (int v = 1; v <= latest_schema_version(); ++v) {
    out.push_back({std::to_string(v)});
  }
  return out;
}

class SqliteStoreTest : public ::testing::Test {
protected:
  std::string db_path() const { return m_tmp.sub("state.db"); }

  std::unique_ptr<SqliteStore> open_or_fail() {
    auto opened = SqliteStore::open(db_path());
    if (!opened) {
      ADD_FAILURE() << opened.error().full_message();
      return nullptr;
    }
    return std::move(*opened);
  }

private:
  testing::TempDir m_tmp{"idp-sqlite-test"};
};

TEST_F(SqliteStoreTest, OpensPrivateInMemoryDatabases) {
  IDP_ASSERT_OK_ASSIGN(auto a, SqliteStore::open(":memory:"));
  IDP_ASSERT_OK_ASSIGN(auto b, SqliteStore::open(":memory:"));
  IDP_ASSERT_OK(a->insert_environment(make_env("only-in-a"), {}));
  IDP_ASSERT_OK_ASSIGN(auto got, a->get_environment("only-in-a"));
  EXPECT_EQ(got.repo, "/src/app");
  auto other = b->get_environment("only-in-a");
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::not_found);
}

TEST_F(SqliteStoreTest, NewDatabaseRecordsEveryMigrationOnce) {
  ASSERT_GE(latest_schema_version(), 1);
  EXPECT_EQ(static_cast<size_t>(latest_schema_version()), migrations().size());
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);

  RawDb raw(db_path());
  EXPECT_EQ(raw.query("SELECT version FROM schema_migrations ORDER BY version"), versions_1_to_latest());
  int64_t before_test = util::SystemClock().now_ms() - 60'000;
  for (const auto& row : raw.query("SELECT applied_at FROM schema_migrations")) {
    EXPECT_GT(std::stoll(row[0]), before_test) << "applied_at is unix milliseconds";
  }
}

TEST_F(SqliteStoreTest, ReopeningAppliesNothingAndKeepsTheData) {
  Rows applied;
  {
    auto store = open_or_fail();
    ASSERT_NE(store, nullptr);
    IDP_ASSERT_OK(store->insert_environment(make_env("kept"), {Event{0, "", 5, "cli:alice", "create", "", "", ""}}));
    IDP_ASSERT_OK(store->set_setting("router.port", "8080"));
    IDP_ASSERT_OK(store->try_acquire_lease("kept", "worker-1", 1000, 500));
    applied = RawDb(db_path()).query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    auto store = open_or_fail();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(RawDb(db_path()).query("SELECT version, applied_at FROM schema_migrations ORDER BY version"), applied);

    IDP_ASSERT_OK_ASSIGN(auto env, store->get_environment("kept"));
    EXPECT_EQ(env.source_key, "/src/app\nkept");
    IDP_ASSERT_OK_ASSIGN(auto events, store->list_events(EventQuery{}));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].actor, "cli:alice");
    IDP_ASSERT_OK_ASSIGN(auto port, store->get_setting("router.port"));
    EXPECT_EQ(port, std::optional<std::string>("8080"));
    IDP_ASSERT_OK_ASSIGN(auto lease, store->get_lease("kept"));
    ASSERT_TRUE(lease.has_value());
    EXPECT_EQ(lease->owner, "worker-1");
  }
}

TEST_F(SqliteStoreTest, AppliesOnlyTheMissingMigrations) {
  ASSERT_GE(latest_schema_version(), 2) << "this test needs a database one migration behind";
  {
    // A database as the previous idp release left it: schema version 1, with data.
    RawDb raw(db_path());
    ASSERT_EQ(raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, "
                       "applied_at INTEGER NOT NULL)"),
              "");
    ASSERT_EQ(raw.exec(std::string(migrations()[0])), "");
    ASSERT_EQ(raw.exec("INSERT INTO schema_migrations VALUES (1, 12345)"), "");
    ASSERT_EQ(raw.exec("INSERT INTO settings VALUES ('router.port', '8080')"), "");
  }
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);

  RawDb raw(db_path());
  EXPECT_EQ(raw.query("SELECT version FROM schema_migrations ORDER BY version"), versions_1_to_latest());
  EXPECT_EQ(raw.query("SELECT applied_at FROM schema_migrations WHERE version = 1"), Rows{{"12345"}});
  IDP_ASSERT_OK_ASSIGN(auto port, store->get_setting("router.port"));
  EXPECT_EQ(port, std::optional<std::string>("8080"));
  // What the later migrations added works.
  IDP_ASSERT_OK(store->insert_environment(make_env("worker"), {}));
  IDP_ASSERT_OK_ASSIGN(bool recorded, store->record_delivery("d-1", 100));
  EXPECT_TRUE(recorded);
  core::JobRun run;
  run.env = "worker";
  run.status = "running";
  IDP_ASSERT_OK(store->insert_job_run(run));
}

// Issue 16: revisions numbered per environment. A database of schema 5 (global ids only)
// gets its existing revisions numbered 1, 2, … within each environment, in id order, and
// new ones continue from there.
TEST_F(SqliteStoreTest, RevisionNumbersMigrationNumbersExistingRowsPerEnvironment) {
  ASSERT_GE(latest_schema_version(), 6);
  {
    RawDb raw(db_path());
    ASSERT_EQ(raw.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY NOT NULL, "
                       "applied_at INTEGER NOT NULL)"),
              "");
    for (int v = 1; v <= 5; ++v) {
      ASSERT_EQ(raw.exec(std::string(migrations()[static_cast<size_t>(v - 1)])), "");
      ASSERT_EQ(raw.exec("INSERT INTO schema_migrations VALUES (" + std::to_string(v) + ", 1)"), "");
    }
    for (const char* env : {"a", "b"}) {
      ASSERT_EQ(raw.exec(std::string("INSERT INTO environments VALUES ('") + env +
                         "', '/r', 'b', 'api-service', 'local', 'o', '', 'ready', 'present', 'c', 'c', 1, 1, '', "
                         "NULL, '{}', '{}', '', '[]', 0, 0, 1, 2, 3, 0, 0)"),
                "");
    }
    // Interleaved, as a global counter left them: a=1, b=2, a=3, a=4, b=5.
    for (const char* env : {"a", "b", "a", "a", "b"}) {
      ASSERT_EQ(raw.exec(std::string("INSERT INTO revisions (env, commit_sha, generation, status, message, log_tail, "
                                     "created_at, finished_at) VALUES ('") +
                         env + "', 'c', 1, 'superseded', '', '', 1, 2)"),
                "");
    }
  }
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  RawDb raw(db_path());
  EXPECT_EQ(raw.query("SELECT id, env, number FROM revisions ORDER BY id"),
            (Rows{{"1", "a", "1"}, {"2", "b", "1"}, {"3", "a", "2"}, {"4", "a", "3"}, {"5", "b", "2"}}));
  core::Revision next;
  next.env = "b";
  next.commit = "d";
  IDP_ASSERT_OK_ASSIGN(auto id, store->insert_revision(next));
  IDP_ASSERT_OK_ASSIGN(auto got, store->get_revision(id));
  EXPECT_EQ(got.id, 6);
  EXPECT_EQ(got.number, 3);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerIdp) {
  {
    auto store = open_or_fail();
    ASSERT_NE(store, nullptr);
    IDP_ASSERT_OK(store->set_setting("router.port", "8080"));
  }
  const int future = latest_schema_version() + 1;
  ASSERT_EQ(RawDb(db_path()).exec("INSERT INTO schema_migrations VALUES (" + std::to_string(future) + ", 1)"), "");

  for (int attempt = 0; attempt < 2; ++attempt) {
    auto opened = SqliteStore::open(db_path());
    ASSERT_FALSE(opened.has_value());
    EXPECT_EQ(opened.error().code, ErrorCode::permanent);
    const std::string& msg = opened.error().message;
    EXPECT_EQ(msg.rfind("sqlite: open \"" + db_path() + "\": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("schema version " + std::to_string(future) + " is newer than this idp supports (" +
                       std::to_string(latest_schema_version()) + ")"),
              std::string::npos)
        << msg;
  }
  // Left as it was.
  RawDb raw(db_path());
  EXPECT_EQ(raw.query("SELECT COUNT(*) FROM schema_migrations"), Rows{{std::to_string(future)}});
  EXPECT_EQ(raw.query("SELECT value FROM settings WHERE key = 'router.port'"), Rows{{"8080"}});
}

TEST_F(SqliteStoreTest, DatabaseIsInWalMode) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK(store->set_setting("k", "v"));
  // journal_mode=WAL is persistent: a fresh connection sees it without asking for it.
  EXPECT_EQ(RawDb(db_path()).query("PRAGMA journal_mode"), Rows{{"wal"}});
  EXPECT_TRUE(util::path_exists(db_path() + "-wal"));
}

TEST_F(SqliteStoreTest, ReadsAreNotBlockedByAnotherConnectionsWriteTransaction) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK(store->insert_environment(make_env("readable"), {}));
  RawDb writer(db_path());
  ASSERT_EQ(writer.exec("BEGIN IMMEDIATE; UPDATE environments SET message = 'uncommitted'"), "");
  IDP_ASSERT_OK_ASSIGN(auto env, store->get_environment("readable"));
  EXPECT_EQ(env.message, "");
  ASSERT_EQ(writer.exec("COMMIT"), "");
  IDP_ASSERT_OK_ASSIGN(auto after, store->get_environment("readable"));
  EXPECT_EQ(after.message, "uncommitted");
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileSeeEachOthersWrites) {
  auto first = open_or_fail();
  auto second = open_or_fail();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);

  IDP_ASSERT_OK(first->insert_environment(make_env("shared"), {}));
  IDP_ASSERT_OK_ASSIGN(auto seen, second->get_environment("shared"));
  EXPECT_EQ(seen.phase, Phase::pending);

  IDP_ASSERT_OK(second->update_environment("shared", [](Environment& env, std::vector<Event>&) -> Expected<void> {
    env.phase = Phase::ready;
    return {};
  }));
  IDP_ASSERT_OK_ASSIGN(auto back, first->get_environment("shared"));
  EXPECT_EQ(back.phase, Phase::ready);

  // Uniqueness and leases hold across connections, not just within one.
  auto dup = second->insert_environment(make_env("shared"), {});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::already_exists);
  IDP_ASSERT_OK_ASSIGN(bool held, first->try_acquire_lease("shared", "daemon-1", 1000, 500));
  EXPECT_TRUE(held);
  IDP_ASSERT_OK_ASSIGN(bool stolen, second->try_acquire_lease("shared", "daemon-2", 1200, 500));
  EXPECT_FALSE(stolen);
}

// The list is kept in memory between changes (dashboard polls): a change by this store,
// by another connection to the file (another process), or in a column the list shows
// is seen by the next list, with and without destroyed environments.
TEST_F(SqliteStoreTest, TheKeptListFollowsEveryChangeWhoeverMakesIt) {
  auto first = open_or_fail();
  auto second = open_or_fail();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto names = [](const std::vector<Environment>& envs) {
    std::vector<std::string> out;
    for (const auto& e : envs) {
      out.push_back(e.name + ":" + std::string(core::phase_name(e.phase)));
    }
    return out;
  };
  IDP_ASSERT_OK(first->insert_environment(make_env("a"), {}));
  IDP_ASSERT_OK_ASSIGN(auto one, first->list_environments(false));
  EXPECT_EQ(names(one), std::vector<std::string>({"a:pending"}));
  IDP_ASSERT_OK_ASSIGN(auto again, first->list_environments(false));
  EXPECT_EQ(names(again), std::vector<std::string>({"a:pending"}));
  EXPECT_EQ(first->kept_list_hits_for_test(), 1u) << "nothing changed: the kept list, without a query";

  IDP_ASSERT_OK(second->insert_environment(make_env("b"), {}));
  IDP_ASSERT_OK_ASSIGN(auto two, first->list_environments(false));
  EXPECT_EQ(names(two), std::vector<std::string>({"a:pending", "b:pending"})) << "another connection's insert";

  IDP_ASSERT_OK(first->update_environment("a", [](Environment& env, std::vector<Event>&) -> Expected<void> {
    env.phase = Phase::destroyed;
    return {};
  }));
  IDP_ASSERT_OK_ASSIGN(auto live, first->list_environments(false));
  EXPECT_EQ(names(live), std::vector<std::string>({"b:pending"})) << "this store's update";
  IDP_ASSERT_OK_ASSIGN(auto all, first->list_environments(true));
  EXPECT_EQ(names(all), std::vector<std::string>({"a:destroyed", "b:pending"}));

  RawDb raw(db_path());
  ASSERT_EQ(raw.exec("UPDATE environments SET phase = 'ready' WHERE name = 'b'"), "");
  IDP_ASSERT_OK_ASSIGN(auto edited, first->list_environments(false));
  EXPECT_EQ(names(edited), std::vector<std::string>({"b:ready"})) << "a change by hand, outside any store";

  // A delivery goes through the store's own second connection: the list stays right.
  IDP_ASSERT_OK(first->insert_delivery_keys({{"delivery:1", 1000}}));
  IDP_ASSERT_OK(second->update_environment("b", [](Environment& env, std::vector<Event>&) -> Expected<void> {
    env.phase = Phase::failed;
    return {};
  }));
  IDP_ASSERT_OK_ASSIGN(auto failed, first->list_environments(false));
  EXPECT_EQ(names(failed), std::vector<std::string>({"b:failed"}));
  EXPECT_EQ(first->kept_list_hits_for_test(), 1u) << "every list after a change was read again";
  IDP_ASSERT_OK_ASSIGN(auto still, first->list_environments(false));
  EXPECT_EQ(names(still), std::vector<std::string>({"b:failed"}));
  EXPECT_EQ(first->kept_list_hits_for_test(), 2u);
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileContendWithoutLostUpdatesOrBusyErrors) {
  auto first = open_or_fail();
  auto second = open_or_fail();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  IDP_ASSERT_OK(first->insert_environment(make_env("contended"), {}));

  constexpr int k_threads_per_store = 2;
  constexpr int k_increments = 100;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mutex;
  std::latch start(2 * k_threads_per_store);
  std::vector<std::thread> threads;
  for (SqliteStore* store : {first.get(), second.get()}) {
    for (int t = 0; t < k_threads_per_store; ++t) {
      threads.emplace_back([&, store] {
        start.arrive_and_wait();
        for (int i = 0; i < k_increments; ++i) {
          auto r = store->update_environment("contended", [](Environment& env, std::vector<Event>& events) {
            int seen = env.attempts;
            std::this_thread::yield();
            env.attempts = seen + 1;
            events.push_back(Event{0, "", 1, "engine", "increment", "", "", ""});
            return Expected<void>();
          });
          if (!r && failures++ == 0) {
            std::lock_guard lock(failure_mutex);
            first_failure = r.error().full_message();
          }
        }
      });
    }
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0) << first_failure;
  IDP_ASSERT_OK_ASSIGN(auto env, second->get_environment("contended"));
  EXPECT_EQ(env.attempts, 2 * k_threads_per_store * k_increments);
  EventQuery q;
  q.limit = 100000;
  IDP_ASSERT_OK_ASSIGN(auto events, first->list_events(q));
  EXPECT_EQ(events.size(), static_cast<size_t>(2 * k_threads_per_store * k_increments));
}

TEST_F(SqliteStoreTest, LockHeldPastTheBusyTimeoutIsTransient) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  RawDb other(db_path());
  ASSERT_EQ(other.exec("BEGIN IMMEDIATE"), "");

  int64_t started = util::steady_ms();
  auto r = store->set_setting("router.port", "8080");
  int64_t waited = util::steady_ms() - started;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
  EXPECT_EQ(r.error().message, "sqlite: set setting \"router.port\": database is locked");
  EXPECT_GE(waited, 4500) << "the store should wait about 5 s for the lock before giving up";

  ASSERT_EQ(other.exec("ROLLBACK"), "");
  IDP_ASSERT_OK(store->set_setting("router.port", "8080"));
}

TEST_F(SqliteStoreTest, OpenFailureSaysWhichFile) {
  const std::string path = db_path() + ".d/missing-dir/state.db";
  auto opened = SqliteStore::open(path);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::io_error);
  EXPECT_EQ(opened.error().message, "sqlite: open \"" + path + "\": unable to open database file");
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotADatabase) {
  ASSERT_TRUE(util::write_file_atomic(db_path(), std::string(4096, 'x')).has_value());
  auto opened = SqliteStore::open(db_path());
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::io_error);
  EXPECT_NE(opened.error().message.find("file is not a database"), std::string::npos) << opened.error().message;
}

TEST_F(SqliteStoreTest, RowsEditedIntoNonsenseAreErrorsNotCrashes) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK(store->insert_environment(make_env("bad-phase"), {}));
  IDP_ASSERT_OK(store->insert_environment(make_env("bad-warnings"), {}));
  RawDb raw(db_path());
  ASSERT_EQ(raw.exec("UPDATE environments SET phase = 'exploded' WHERE name = 'bad-phase'"), "");
  ASSERT_EQ(raw.exec("UPDATE environments SET warnings_json = '{not json' WHERE name = 'bad-warnings'"), "");

  auto phase = store->get_environment("bad-phase");
  ASSERT_FALSE(phase.has_value());
  EXPECT_EQ(phase.error().code, ErrorCode::io_error);
  EXPECT_EQ(phase.error().message,
            "sqlite: get environment \"bad-phase\": environment \"bad-phase\" has unknown phase \"exploded\"");

  auto warnings = store->get_environment("bad-warnings");
  ASSERT_FALSE(warnings.has_value());
  EXPECT_EQ(warnings.error().code, ErrorCode::io_error);

  auto listed = store->list_environments(true);
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(listed.error().code, ErrorCode::io_error);
}

// An acknowledged write must survive a power loss: the state store commits with
// synchronous=FULL unless asked otherwise (NORMAL exists for bench/durability).
TEST_F(SqliteStoreTest, CommitsAreSyncedInFullByDefault) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK_ASSIGN(int level, store->synchronous_level_for_test());
  EXPECT_EQ(level, 2) << "PRAGMA synchronous should be FULL (2)";
  store.reset();

  SqliteOptions normal;
  normal.synchronous = SyncMode::normal;
  IDP_ASSERT_OK_ASSIGN(auto relaxed, SqliteStore::open(db_path(), normal));
  IDP_ASSERT_OK_ASSIGN(int relaxed_level, relaxed->synchronous_level_for_test());
  EXPECT_EQ(relaxed_level, 1);
}

// Statements are prepared once per connection and reused; one that failed (a constraint)
// works again on its next use, and a read left no transaction open behind it (a write
// from another connection goes through).
TEST_F(SqliteStoreTest, PreparedStatementsAreReusedAndLeaveNothingOpen) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK(store->list_environments(true));
  size_t kept = store->kept_statements_for_test();
  EXPECT_GT(kept, 0u);
  for (int i = 0; i < 3; ++i) {
    IDP_ASSERT_OK(store->list_environments(true));
  }
  EXPECT_EQ(store->kept_statements_for_test(), kept) << "the same query should reuse its statement";

  ApiToken t;
  t.id = "tok_1";
  t.hash = std::string(64, 'a');
  t.name = "one";
  t.role = "admin";
  t.owner = "one";
  IDP_ASSERT_OK(store->insert_api_token(t));
  auto again = store->insert_api_token(t); // same id: a constraint failure
  ASSERT_FALSE(again.has_value());
  t.id = "tok_2";
  t.hash = std::string(64, 'b');
  IDP_ASSERT_OK(store->insert_api_token(t));
  IDP_ASSERT_OK_ASSIGN(auto found, store->find_api_token(std::string(64, 'b')));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, "tok_2");

  IDP_ASSERT_OK_ASSIGN(auto other, SqliteStore::open(db_path()));
  IDP_ASSERT_OK(other->set_setting("k", "v"));
  IDP_ASSERT_OK_ASSIGN(auto v, store->get_setting("k"));
  EXPECT_EQ(v.value_or(""), "v");
}

// Webhook delivery keys are a replay guard, not state: they go through a connection of
// their own with synchronous=NORMAL (a burst of webhooks waits for no fsync), written to
// the same file, where a second store sees them.
TEST_F(SqliteStoreTest, DeliveryKeysAreWrittenWithoutAnFsyncToTheSameFile) {
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK_ASSIGN(int state_level, store->synchronous_level_for_test());
  IDP_ASSERT_OK_ASSIGN(int delivery_level, store->synchronous_level_for_test(true));
  EXPECT_EQ(state_level, 2);
  EXPECT_EQ(delivery_level, 1) << "the deliveries' connection should be synchronous=NORMAL";
  IDP_ASSERT_OK(store->insert_delivery_keys({{"d-1", 1000}, {"sha256:aa", 1000}}));
  IDP_ASSERT_OK_ASSIGN(auto other, SqliteStore::open(db_path()));
  IDP_ASSERT_OK_ASSIGN(bool again, other->any_delivery_recorded({"d-2", "sha256:aa"}));
  EXPECT_TRUE(again) << "the body hash recorded by the first store is seen by the second";
}

// Another process reading the file while the store is open (an operator's sqlite3, a
// test's) must not take it for the last user: the store once mapped the -shm file
// through an fd of its own and closed it, which drops every POSIX lock the process held on
// the file, SQLite's "a connection is here" lock included. The other process then
// truncated the -shm (the store's mapping raised SIGBUS) and, closing, checkpointed and
// deleted the WAL the store was still writing to: later writes were lost to other readers.
TEST_F(SqliteStoreTest, AnotherProcessReadingTheFileLeavesTheStoresWalAndIndexAlone) {
  if (!util::path_exists("/usr/bin/sqlite3")) {
    GTEST_SKIP() << "the sqlite3 command is not installed (scripts/install-deps.sh installs it)";
  }
  auto store = open_or_fail();
  ASSERT_NE(store, nullptr);
  IDP_ASSERT_OK(store->insert_environment(make_env("before"), {}));
  IDP_ASSERT_OK(store->list_environments(false)); // reads the WAL index
  // SQLite's dead-man switch: every process with a connection holds a read lock on byte
  // 128 of the -shm file; a process that finds it free takes itself for the first user and
  // truncates the file. Asked from another process (a process never conflicts with itself).
  const std::string shm = db_path() + "-shm";
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open(shm.c_str(), O_RDWR | O_CLOEXEC);
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = 128;
    probe.l_len = 1;
    ::_exit(fd < 0 || ::fcntl(fd, F_GETLK, &probe) != 0 ? 2 : probe.l_type == F_UNLCK ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the store holds no lock on the -shm file; 2: it could not be probed";
  auto sqlite3 = [&](const std::string& sql) {
    util::Command c;
    c.argv = {"/usr/bin/sqlite3", db_path(), sql};
    auto r = util::run(c);
    EXPECT_TRUE(r && r->exit_code == 0) << (r ? r->err : r.error().message);
    return r ? r->out : std::string();
  };
  EXPECT_EQ(sqlite3("SELECT name FROM environments ORDER BY name"), "before\n");
  EXPECT_TRUE(util::path_exists(db_path() + "-wal")) << "the WAL of an open store was deleted";
  IDP_ASSERT_OK(store->insert_environment(make_env("after"), {}));
  IDP_ASSERT_OK_ASSIGN(auto listed, store->list_environments(false));
  EXPECT_EQ(listed.size(), 2u);
  EXPECT_EQ(sqlite3("SELECT name FROM environments ORDER BY name"), "after\nbefore\n")
      << "a write of the store after another process read the file is lost to other readers";
}

} // namespace
} // namespace idp::store::sqlite
