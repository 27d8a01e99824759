// Names, passwords and ACLs of the database component (no server), then one real cluster:
// escaping, role isolation, supervision, adoption.
#include "drivers/local/databases.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <thread>

#include "drivers/local/search_access.hpp"
#include "local_test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;
using idp::testing::wait_until;

TEST(DatabaseNamesTest, EnvironmentNamesBecomeIdentifiers) {
  EXPECT_EQ(database_name_for("pr-1"), "idp_pr_1");
  EXPECT_EQ(database_name_for("preview-feature-x"), "idp_preview_feature_x");
  EXPECT_TRUE(is_environment_database_name(database_name_for("a")));
  EXPECT_FALSE(is_environment_database_name("idp")) << "the superuser";
  EXPECT_FALSE(is_environment_database_name(seed_template_name("/r", "x"))) << "templates are not environments";
  EXPECT_FALSE(is_environment_database_name("postgres"));
}

TEST(DatabaseNamesTest, LongNamesKeepWithinPostgresLimitAndStayDistinct) {
  std::string a(63, 'a');
  std::string b = std::string(62, 'a') + "b";
  EXPECT_LE(database_name_for(a).size(), 63u);
  EXPECT_LE(database_name_for(b).size(), 63u);
  EXPECT_NE(database_name_for(a), database_name_for(b));
  EXPECT_EQ(database_name_for(a), database_name_for(a)) << "deterministic: destroy finds it again";
  std::string fits(59, 'x'); // "idp_" + 59 = 63
  EXPECT_EQ(database_name_for(fits), "idp_" + fits);
}

TEST(DatabaseNamesTest, SeedTemplateDependsOnRepositoryAndContent) {
  std::string t = seed_template_name("/repos/app", "CREATE TABLE t ();");
  EXPECT_EQ(t.rfind("idpseed_", 0), 0u);
  EXPECT_EQ(t.size(), 8u + 16u);
  EXPECT_EQ(t, seed_template_name("/repos/app", "CREATE TABLE t ();"));
  EXPECT_NE(t, seed_template_name("/repos/other", "CREATE TABLE t ();"));
  EXPECT_NE(t, seed_template_name("/repos/app", "CREATE TABLE u ();"));
}

TEST(DatabasePasswordTest, DerivedFromKeyRoleAndSalt) {
  std::string key = util::random_hex(32);
  std::string p = derive_database_password(key, "idp_pr_1", "salt1");
  EXPECT_EQ(p.size(), 32u);
  EXPECT_EQ(p.find_first_not_of("0123456789abcdef"), std::string::npos) << "URL-safe";
  EXPECT_EQ(p, derive_database_password(key, "idp_pr_1", "salt1")) << "the same after a restart";
  EXPECT_NE(p, derive_database_password(key, "idp_pr_1", "salt2")) << "a re-created environment gets a new one";
  EXPECT_NE(p, derive_database_password(key, "idp_pr_2", "salt1"));
  EXPECT_NE(p, derive_database_password(util::random_hex(32), "idp_pr_1", "salt1"));
  EXPECT_EQ(database_url("127.0.0.1", 5433, "idp_a", "pw", "idp_a"), "postgresql://idp_a:pw@127.0.0.1:5433/idp_a");
}

// The master key is read or created outside the manager's mutex, so two first users may
// race to create it: whoever links master.key first wins and every caller (here eight
// managers of one home, as the database component and the secret store are two readers)
// derives passwords from that one key. A key written by rename instead would be replaced
// by the second writer after the first had used its own.
TEST(DatabaseMasterKeyTest, RacingFirstUsersAgreeOnOneKey) {
  TempDir tmp{"idp-master-key"};
  ClusterOptions o;
  o.dir = tmp.sub("postgres");
  o.state_dir = tmp.sub("db");
  o.home = tmp.path();
  PostgresCluster cluster(o); // never started: the key needs no server
  DatabaseRecord rec;
  rec.name = "idp_race";
  rec.salt = "s";
  for (int round = 0; round < 20; ++round) {
    std::string key_path = tmp.sub("db/round-" + std::to_string(round) + "/master.key");
    constexpr int k_racers = 8;
    std::vector<std::unique_ptr<DatabaseManager>> managers;
    for (int i = 0; i < k_racers; ++i) {
      managers.push_back(std::make_unique<DatabaseManager>(cluster, key_path));
    }
    std::vector<std::string> passwords(k_racers);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < k_racers; ++i) {
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < k_racers) {
          std::this_thread::yield(); // start together: the race is the point
        }
        auto pw = managers[i]->password_for(rec);
        passwords[i] = pw ? *pw : "error: " + pw.error().message;
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    auto key = util::read_file(key_path);
    ASSERT_TRUE(key.has_value());
    std::string expected = derive_database_password(util::trim(*key), rec.name, rec.salt);
    for (int i = 0; i < k_racers; ++i) {
      ASSERT_EQ(passwords[i], expected) << "round " << round << ", caller " << i;
    }
    struct stat st {};
    ASSERT_EQ(::stat(key_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(tmp.sub("db/round-" + std::to_string(round)))) {
      left.push_back(e.path().filename().string());
    }
    EXPECT_EQ(left, std::vector<std::string>{"master.key"}) << "no temporary file is left";
  }
  // A malformed key is an error for every caller, and is left as it is.
  std::string bad_path = tmp.sub("db/bad/master.key");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("db/bad"), 0700));
  ASSERT_TRUE(util::write_file_atomic(bad_path, "short\n", 0600));
  DatabaseManager bad(cluster, bad_path);
  auto pw = bad.password_for(rec);
  ASSERT_FALSE(pw.has_value());
  EXPECT_NE(pw.error().message.find("malformed database master key"), std::string::npos) << pw.error().message;
  EXPECT_EQ(util::read_file(bad_path).value_or(""), "short\n");
}

// Entries of a "system.posix_acl_access" value: (tag, perm, id).
std::vector<std::tuple<int, int, uint32_t>> acl_entries(const std::string& v) {
  std::vector<std::tuple<int, int, uint32_t>> out;
  for (size_t at = 4; at + 8 <= v.size(); at += 8) {
    auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(v[at + i])); };
    out.emplace_back(u8(0) | (u8(1) << 8), u8(2) | (u8(3) << 8), u8(4) | (u8(5) << 8) | (u8(6) << 16) | (u8(7) << 24));
  }
  return out;
}

TEST(SearchAccessTest, AclFromModeAddsSearchOnlyForTheUser) {
  auto e = acl_entries(acl_with_search_entry("", 0700, 101));
  std::vector<std::tuple<int, int, uint32_t>> want = {
      {0x01, 7, 0xFFFFFFFFu}, {0x02, 1, 101u}, {0x04, 0, 0xFFFFFFFFu}, {0x10, 1, 0xFFFFFFFFu}, {0x20, 0, 0xFFFFFFFFu}};
  EXPECT_EQ(e, want);
}

TEST(SearchAccessTest, AfterChmodTheMaskIsWidenedWithoutGrantingMore) {
  // An ACL whose group had r-x, then `chmod 0700` (mask ---), as the daemon's start does.
  std::string first = acl_with_search_entry("", 0750, 101);
  std::string masked = first;
  for (size_t at = 4; at + 8 <= masked.size(); at += 8) {
    if (masked[at] == 0x10) {
      masked[at + 2] = 0;
    }
  }
  auto e = acl_entries(acl_with_search_entry(masked, 0700, 101));
  for (const auto& [tag, perm, id] : e) {
    if (tag == 0x04) {
      EXPECT_EQ(perm, 0) << "the group stays without access";
    }
    if (tag == 0x02) {
      EXPECT_EQ(perm, 1);
      EXPECT_EQ(id, 101u);
    }
    if (tag == 0x10) {
      EXPECT_EQ(perm, 1);
    }
  }
  EXPECT_EQ(acl_with_search_entry(acl_with_search_entry(masked, 0700, 101), 0700, 101),
            acl_with_search_entry(masked, 0700, 101))
      << "idempotent";
}

std::optional<std::pair<uid_t, gid_t>> unprivileged_user() {
  for (const char* name : {"postgres", "nobody"}) {
    if (auto* pw = ::getpwnam(name)) {
      return std::make_pair(pw->pw_uid, pw->pw_gid);
    }
  }
  return std::nullopt;
}

TEST(SearchAccessTest, GrantLetsAnotherUserReachOnlyThroughTheDirectory) {
  auto user = unprivileged_user();
  if (::geteuid() != 0 || !user) {
    GTEST_SKIP() << "needs root and an unprivileged user";
  }
  TempDir dir("idp-acl");
  ::chmod(dir.path().c_str(), 0711);
  ASSERT_TRUE(util::ensure_dir(dir.sub("home/inner"), 0700));
  ::chmod(dir.sub("home").c_str(), 0700);
  ::chown(dir.sub("home/inner").c_str(), user->first, user->second);
  auto blocked = check_reachable_by(dir.sub("home/inner"), user->first, user->second, "someone");
  ASSERT_FALSE(blocked.has_value());
  EXPECT_NE(blocked.error().message.find("may not search \"" + dir.sub("home") + "\""), std::string::npos)
      << blocked.error().message;
  auto granted = grant_search_permission(dir.sub("home"), user->first);
  ASSERT_TRUE(granted.has_value()) << granted.error().message;
  EXPECT_TRUE(check_reachable_by(dir.sub("home/inner"), user->first, user->second, "someone").has_value());
  // Making the home private again (every daemon start, every run_as) keeps the grant: a
  // chmod to 0700 would clear the ACL's mask, and a running app or PostgreSQL would lose
  // its way in until granted again (a restarted daemon's job run failed "Cannot find
  // module" so).
  ASSERT_TRUE(util::ensure_dir(dir.sub("home"), 0700));
  EXPECT_TRUE(check_reachable_by(dir.sub("home/inner"), user->first, user->second, "someone").has_value());
  struct stat st {};
  ASSERT_EQ(::stat(dir.sub("home").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07, 0u) << "others still get nothing";
  // It may search the home, but not list it.
  util::Command ls;
  ls.argv = {"ls", dir.sub("home")};
  util::RunOptions o;
  o.uid = static_cast<int>(user->first);
  o.gid = static_cast<int>(user->second);
  auto r = util::run(ls, o);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->exit_code, 0) << r->out;
}

// A home with more isolated environments than a directory's ACL can hold (ext4 keeps it
// in one block: about 500 entries) still lets every one of them in: a full ACL falls back
// to o+x (search for every user, no listing), said in a note. The 504th environment of a
// 1,000-environment home failed "cannot set an ACL … No space left on device" before.
TEST(SearchAccessTest, AFullAclFallsBackToSearchForEveryUserAndSaysSo) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root (ACL entries for other uids on a directory it owns)";
  }
  TempDir dir("idp-acl-full");
  ::chmod(dir.path().c_str(), 0711);
  ASSERT_TRUE(util::ensure_dir(dir.sub("home"), 0700));
  ::chmod(dir.sub("home").c_str(), 0700);
  constexpr uid_t k_first = 3900000;
  constexpr int k_uids = 2000; // more than ext4's block, less than what XFS or tmpfs would take
  std::vector<std::string> notes;
  for (int i = 0; i < k_uids; ++i) {
    auto granted = grant_search_permission(dir.sub("home"), k_first + static_cast<uid_t>(i));
    ASSERT_TRUE(granted.has_value()) << i << ": " << granted.error().message;
    if (!granted->empty()) {
      notes.push_back(*granted);
    }
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.sub("home").c_str(), &st), 0);
  ASSERT_LE(notes.size(), 1u) << "once searchable by everyone, no more entries are tried";
  if (notes.empty()) {
    GTEST_SKIP() << "this filesystem held " << k_uids << " ACL entries on one directory";
  }
  EXPECT_NE(notes[0].find("the ACL of \"" + dir.sub("home") + "\" is full ("), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("made it searchable (o+x) for every user"), std::string::npos) << notes[0];
  EXPECT_EQ(st.st_mode & 07, 01u) << "search for others, never read or write";
  // The last uid, which has no entry, reaches through it; the first keeps its entry.
  ASSERT_TRUE(util::ensure_dir(dir.sub("home/inner"), 0700));
  ::chown(dir.sub("home/inner").c_str(), k_first + k_uids - 1, k_first + k_uids - 1);
  auto last = check_reachable_by(dir.sub("home/inner"), k_first + k_uids - 1, k_first + k_uids - 1, "last");
  EXPECT_TRUE(last.has_value()) << last.error().message;
  ::chown(dir.sub("home/inner").c_str(), k_first, k_first);
  auto first = check_reachable_by(dir.sub("home/inner"), k_first, k_first, "first");
  EXPECT_TRUE(first.has_value()) << first.error().message;
}

TEST(SubprocessUserTest, RunAsAnotherUser) {
  auto user = unprivileged_user();
  if (::geteuid() != 0 || !user) {
    GTEST_SKIP() << "needs root and an unprivileged user";
  }
  util::Command c;
  c.argv = {"id", "-u"};
  util::RunOptions o;
  o.uid = static_cast<int>(user->first);
  o.gid = static_cast<int>(user->second);
  auto r = util::run(c, o);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, std::to_string(user->first) + "\n");
  c.argv = {"id", "-G"};
  r = util::run(c, o);
  EXPECT_EQ(r->out, std::to_string(user->second) + "\n") << "no supplementary groups of root kept";
}

// A mutex guards memory, never I/O: while the server is starting (here a stand-in
// `postgres` that never becomes ready), port() and pid(), which observe() uses, answer at
// once instead of waiting for the start to finish or time out.
TEST(PostgresClusterLockTest, QueriesAnswerWhileTheServerStarts) {
  TempDir tmp{"idp-cluster-lock"};
  ::chmod(tmp.path().c_str(), 0711);
  std::string home = tmp.sub("home");
  ASSERT_TRUE(util::ensure_dir(home, 0700));
  std::string bin = home + "/bin";
  ASSERT_TRUE(util::ensure_dir(bin, 0755));
  ASSERT_TRUE(util::write_file_atomic(bin + "/initdb",
                                      "#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ \"$1\" = -D ]; then mkdir -p \"$2\" && "
                                      "echo 15 > \"$2/PG_VERSION\"; fi; shift; done\n",
                                      0755));
  ASSERT_TRUE(util::write_file_atomic(bin + "/postgres", "#!/bin/sh\nexec sleep 120\n", 0755));
  ClusterOptions o;
  o.dir = home + "/postgres";
  o.state_dir = home + "/db";
  o.home = home;
  o.bin_dir = bin;
  o.start_timeout_ms = 60000;
  PostgresCluster cluster(o);
  std::atomic<bool> done{false};
  std::thread starter([&] {
    (void)cluster.ensure_running();
    done = true;
  });
  EXPECT_TRUE(wait_until([&] { return cluster.pid() > 0; }, 20000));
  EXPECT_GT(cluster.port(), 0);
  EXPECT_FALSE(done.load()) << "the start is still waiting for the server";
  pid_t stand_in = cluster.pid();
  if (stand_in > 0) {
    ::kill(stand_in, SIGKILL); // ends the wait for readiness
  }
  starter.join();
  cluster.stop();
}

// --- a real cluster ---

class ClusterTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!find_postgres_bin_dir("")) {
      GTEST_SKIP() << "PostgreSQL is not installed";
    }
    ::chmod(tmp.path().c_str(), 0711); // the cluster's user must reach the home
    home = tmp.sub("home");
    ASSERT_TRUE(util::ensure_dir(home, 0700));
    ClusterOptions o;
    o.dir = home + "/postgres";
    o.state_dir = home + "/db";
    o.home = home;
    o.cluster_name = "idp-unit-" + util::random_hex(4);
    cluster = std::make_unique<PostgresCluster>(o);
    dbs = std::make_unique<DatabaseManager>(*cluster, home + "/db/master.key");
  }
  void TearDown() override {
    if (cluster) {
      cluster->stop();
      EXPECT_EQ(cluster->pid(), 0);
    }
  }

  // psql as `role` over TCP, PGPASSWORD in its environment; exit code and output.
  util::RunResult psql(const std::string& role, const std::string& password, const std::string& db,
                       const std::string& sql) {
    util::Command c;
    c.argv = {"psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", std::to_string(cluster->port()),
              "-U",   role, "-d", db,   "-c", sql};
    c.env = {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "5"}};
    util::RunOptions o;
    o.timeout_ms = 30000;
    auto r = util::run(c, o);
    return r ? *r : util::RunResult{};
  }

  TempDir tmp{"idp-cluster"};
  std::string home;
  std::unique_ptr<PostgresCluster> cluster;
  std::unique_ptr<DatabaseManager> dbs;
};

TEST_F(ClusterTest, RolesReachOnlyTheirDatabaseAndHostileNamesAreEscaped) {
  ASSERT_TRUE(cluster->ensure_running().has_value());
  EXPECT_GT(cluster->init_ms(), 0);
  std::printf("initdb %lld ms, start %lld ms\n", static_cast<long long>(cluster->init_ms()),
              static_cast<long long>(cluster->start_ms()));
  ASSERT_TRUE(dbs->harden().has_value());
  DatabaseRecord a{database_name_for("pr-a"), "s1", "", "", ""};
  DatabaseRecord b{database_name_for("pr-b"), "s2", "", "", ""};
  std::vector<std::string> notes;
  auto note = [&](const std::string& l) { notes.push_back(l); };
  ASSERT_EQ(dbs->ensure(a, std::nullopt, note).value_or("?"), "created empty");
  ASSERT_EQ(dbs->ensure(b, std::nullopt, note).value_or("?"), "created empty");
  EXPECT_EQ(dbs->ensure(a, std::nullopt, note).value_or("?"), "") << "idempotent";
  std::string pa = *dbs->password_for(a);
  std::string pb = *dbs->password_for(b);

  auto own = psql(a.name, pa, a.name, "CREATE TABLE t (x int); INSERT INTO t VALUES (1); SELECT count(*) FROM t");
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(own.out, "1\n");
  auto other = psql(a.name, pa, b.name, "SELECT 1");
  EXPECT_NE(other.exit_code, 0);
  EXPECT_NE(other.err.find("pg_hba.conf"), std::string::npos) << other.err;
  EXPECT_NE(psql(a.name, pa, "postgres", "SELECT 1").exit_code, 0);
  EXPECT_NE(psql(a.name, pb, a.name, "SELECT 1").exit_code, 0) << "another role's password";
  EXPECT_NE(psql("idp", pa, "postgres", "SELECT 1").exit_code, 0) << "no superuser over TCP";

  // A name and a value made to break out of quotes.
  auto admin = cluster->admin();
  ASSERT_TRUE(admin.has_value());
  std::string evil = "x\"; DROP DATABASE idp_pr_a; --'";
  auto ident = admin->identifier(evil);
  auto lit = admin->literal("it's \"quoted\"; DROP ROLE idp_pr_a; --");
  ASSERT_TRUE(ident && lit);
  ASSERT_TRUE(admin->exec("CREATE ROLE " + *ident + " NOLOGIN; COMMENT ON ROLE " + *ident + " IS " + *lit, "escape")
                  .has_value());
  auto rows = admin->query("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", {evil}, "q");
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0][0].value_or(""), "it's \"quoted\"; DROP ROLE idp_pr_a; --");
  EXPECT_TRUE(dbs->exists(a.name).value_or(false)) << "nothing was injected";
  ASSERT_TRUE(admin->exec("DROP ROLE " + *ident, "drop").has_value());

  // The password never reaches the server: only its SCRAM verifier.
  auto verifier = admin->query("SELECT rolpassword FROM pg_authid WHERE rolname = $1", {a.name}, "q");
  ASSERT_TRUE(verifier.has_value());
  EXPECT_EQ((*verifier)[0][0].value_or("").rfind("SCRAM-SHA-256$", 0), 0u);
  auto log = util::read_file(cluster->server_log()).value_or("");
  EXPECT_EQ(log.find(pa), std::string::npos) << "the password is not in the server log";

  ASSERT_TRUE(dbs->drop(a.name).has_value());
  ASSERT_TRUE(dbs->drop(a.name).has_value()) << "idempotent";
  EXPECT_FALSE(dbs->exists(a.name).value_or(true));
  auto envs = dbs->list_environment_databases();
  ASSERT_TRUE(envs.has_value());
  EXPECT_EQ(*envs, std::set<std::string>({b.name}));
}

TEST_F(ClusterTest, SeedIsAppliedOnceThenCloned) {
  ASSERT_TRUE(cluster->ensure_running().has_value());
  SeedSource seed{"/repos/app", "db/seed.sql",
                  "CREATE TABLE notes (id serial PRIMARY KEY, text text); INSERT INTO notes (text) VALUES ('seeded');"};
  DatabaseRecord a{database_name_for("pr-a"), "s1", "", "", ""};
  DatabaseRecord b{database_name_for("pr-b"), "s2", "", "", ""};
  std::vector<std::string> notes;
  auto note = [&](const std::string& l) { notes.push_back(l); };
  auto ca = dbs->ensure(a, seed, note);
  ASSERT_TRUE(ca.has_value()) << ca.error().message;
  EXPECT_NE(ca->find("seeded by this environment"), std::string::npos) << *ca;
  auto cb = dbs->ensure(b, seed, note);
  ASSERT_TRUE(cb.has_value()) << cb.error().message;
  EXPECT_EQ(*cb, "cloned from template " + seed_template_name(seed.repo, seed.content));
  int applied = 0;
  for (const auto& n : notes) {
    applied += n.find("applied seed") != std::string::npos;
  }
  EXPECT_EQ(applied, 1);
  // The clone's objects belong to its role: it may write and even drop them.
  auto r = psql(b.name, *dbs->password_for(b), b.name,
                "INSERT INTO notes (text) VALUES ('mine'); SELECT count(*) FROM notes; DROP TABLE notes");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
  // A broken seed is permanent, names the file and leaves no template behind.
  SeedSource bad{"/repos/app", "db/bad.sql", "CREATE TABLE x (; "};
  DatabaseRecord c{database_name_for("pr-c"), "s3", "", "", ""};
  auto cc = dbs->ensure(c, bad, note);
  ASSERT_FALSE(cc.has_value());
  EXPECT_EQ(cc.error().code, ErrorCode::permanent);
  EXPECT_NE(cc.error().message.find("database.seed \"db/bad.sql\""), std::string::npos) << cc.error().message;
  EXPECT_FALSE(dbs->exists(seed_template_name(bad.repo, bad.content)).value_or(true));
}

TEST_F(ClusterTest, SupervisorRestartsAKilledServerAndARestartAdoptsIt) {
  ASSERT_TRUE(cluster->ensure_running().has_value());
  pid_t first = cluster->pid();
  ASSERT_GT(first, 0);
  ::kill(first, SIGKILL);
  // pid() shows the new server as soon as it is started, restarts() once it is ready.
  ASSERT_TRUE(wait_until([&] { return cluster->restarts() == 1; }, 30000))
      << util::read_file(cluster->server_log()).value_or("");
  EXPECT_GT(cluster->pid(), 0);
  EXPECT_NE(cluster->pid(), first);
  EXPECT_TRUE(cluster->admin().has_value());
  pid_t second = cluster->pid();
  int port = cluster->port();

  // A new daemon (new cluster object) adopts the running server instead of starting one.
  cluster->detach();
  ClusterOptions o;
  o.dir = home + "/postgres";
  o.state_dir = home + "/db";
  o.home = home;
  o.cluster_name = "idp-unit-adopt";
  auto again = std::make_unique<PostgresCluster>(o);
  ASSERT_TRUE(again->ensure_running().has_value());
  EXPECT_EQ(again->pid(), second);
  EXPECT_EQ(again->port(), port) << "the port is kept";
  EXPECT_EQ(again->init_ms(), 0) << "no second initdb";
  again->stop();
  EXPECT_FALSE(util::process_alive(second));
  cluster.reset();
}

} // namespace
} // namespace idp::drivers::local
