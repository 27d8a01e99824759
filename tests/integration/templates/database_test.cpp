// api-database on the local runtime: each environment gets its own database and role in
// the home's PostgreSQL, reachable only by that role; seeds are applied once and cloned;
// the data survives a kill -9 of the daemon.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "templates_test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// Every file under `dir` whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  return find_files(dir, [&](const std::filesystem::directory_entry& e) {
    std::string s = e.path().string();
    std::error_code ec;
    // The cluster's data files hold only the SCRAM verifier; apps' own files are theirs.
    if (contains(s, "/postgres/data") || contains(s, "/node_modules/") || !e.is_regular_file(ec)) {
      return false;
    }
    auto text = util::read_file(s);
    return text && contains(*text, needle);
  });
}

} // namespace

TEST_F(TemplatesTest, ApiDatabaseEnvironmentsEachReachOnlyTheirOwnData) {
  auto d = make_daemon();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-database", "feature/notes-a");
  int64_t t0 = util::steady_ms();
  create(*d, repo, "feature/notes-a");
  int64_t first_ms = util::steady_ms() - t0;
  repo.checkout_new_branch("feature/notes-b");
  t0 = util::steady_ms();
  create(*d, repo, "feature/notes-b");
  std::printf("first api-database environment ready in %lld ms (initdb + npm ci + start), second in %lld ms\n",
              static_cast<long long>(first_ms), static_cast<long long>(util::steady_ms() - t0));
  const std::string a = "preview-notes-a", b = "preview-notes-b";

  // Each writes and reads its own notes through its URL.
  EXPECT_EQ(http(*d, a, "GET", "/health").status, 200);
  auto posted = http(*d, a, "POST", "/notes", R"({"text":"written in a"})");
  ASSERT_EQ(posted.status, 201) << posted.body;
  ASSERT_EQ(http(*d, b, "POST", "/notes", R"({"text":"written in b"})").status, 201);
  ASSERT_EQ(http(*d, b, "POST", "/notes", R"({"text":"second in b"})").status, 201);
  json notes_a = http(*d, a, "GET", "/notes").json();
  json notes_b = http(*d, b, "GET", "/notes").json();
  ASSERT_EQ(notes_a.size(), 1u) << notes_a.dump();
  EXPECT_EQ(notes_a[0]["text"], "written in a");
  ASSERT_EQ(notes_b.size(), 2u) << notes_b.dump();
  EXPECT_EQ(notes_b[0]["text"], "written in b");
  int id = posted.json()["id"];
  EXPECT_EQ(http(*d, a, "GET", "/notes/" + std::to_string(id)).json()["text"], "written in a");
  EXPECT_EQ(http(*d, a, "DELETE", "/notes/" + std::to_string(id)).status, 204);
  EXPECT_EQ(http(*d, a, "GET", "/notes/" + std::to_string(id)).status, 404);

  // The app got DB_* and DATABASE_URL; each role reaches only its own database.
  json sa = status(*d, a);
  const std::string db_a = sa["outputs"]["db_name"], db_b = status(*d, b)["outputs"]["db_name"];
  EXPECT_EQ(db_a, "idp_preview_notes_a");
  EXPECT_EQ(sa["outputs"]["db_port"], cluster_port());
  std::string pw_a = app_variable(*d, a, "DB_PASSWORD"), pw_b = app_variable(*d, b, "DB_PASSWORD");
  ASSERT_EQ(pw_a.size(), 32u);
  EXPECT_EQ(app_variable(*d, a, "DB_USER"), db_a);
  EXPECT_EQ(app_variable(*d, a, "DATABASE_URL"),
            "postgresql://" + db_a + ":" + pw_a + "@127.0.0.1:" + std::to_string(cluster_port()) + "/" + db_a);
  auto own = psql_as(db_a, pw_a, db_a, "SELECT count(*) FROM notes");
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_EQ(own.out, "0\n");
  auto cross = psql_as(db_a, pw_a, db_b, "SELECT count(*) FROM notes");
  EXPECT_NE(cross.exit_code, 0) << "role a read database b: " << cross.out;
  auto cross_back = psql_as(db_b, pw_b, db_a, "SELECT 1");
  EXPECT_NE(cross_back.exit_code, 0);
  EXPECT_NE(psql_as(db_a, pw_a, "postgres", "SELECT 1").exit_code, 0) << "nor the cluster's own databases";
  EXPECT_NE(psql_as(db_a, pw_b, db_a, "SELECT 1").exit_code, 0) << "b's password does not open a";
  // CONNECT is revoked from PUBLIC on every database we made (defence behind pg_hba).
  auto acl = psql_superuser("SELECT datname FROM pg_database WHERE datname <> 'template0' AND "
                            "has_database_privilege('public', oid, 'CONNECT') ORDER BY 1");
  EXPECT_EQ(acl.exit_code, 0) << acl.err;
  EXPECT_EQ(acl.out, "") << "databases open to every role";

  // The passwords appear nowhere: not in the daemon's output, the API, the CLI, the
  // events, the logs or any file of the home (state.db included).
  for (const auto& pw : {pw_a, pw_b}) {
    EXPECT_FALSE(contains(d->log(), pw));
    EXPECT_FALSE(contains(status(*d, a).dump() + status(*d, b).dump(), pw));
    EXPECT_FALSE(contains(d->cli({"list", "--json"}).out, pw));
    EXPECT_FALSE(contains(d->api("GET", "/api/v1/environments/" + a + "/events").second.dump(), pw));
    EXPECT_FALSE(contains(logs(*d, a) + logs(*d, b), pw));
    EXPECT_EQ(files_containing(home, pw), std::vector<std::string>{});
  }

  // Destroy removes the database and the role.
  ASSERT_EQ(d->cli({"destroy", a, "--yes"}).exit_code, 0);
  auto left = psql_superuser("SELECT 'db' FROM pg_database WHERE datname = '" + db_a +
                             "' UNION ALL SELECT 'role' FROM pg_roles WHERE rolname = '" + db_a + "'");
  EXPECT_EQ(left.exit_code, 0) << left.err;
  EXPECT_EQ(left.out, "") << "left behind: " << left.out;
  EXPECT_NE(psql_as(db_a, pw_a, db_a, "SELECT 1").exit_code, 0);
  EXPECT_EQ(http(*d, b, "GET", "/notes").json().size(), 2u) << "b is untouched";
  ASSERT_EQ(d->cli({"destroy", b, "--yes"}).exit_code, 0);
  EXPECT_EQ(d->stop(), 0);
  EXPECT_EQ(postmaster_pid(), 0) << "PostgreSQL stops with the daemon";
  EXPECT_TRUE(d->home_processes().empty());
}

TEST_F(TemplatesTest, SeededRepositoryClonesTheSeededTemplate) {
  auto d = make_daemon();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-database", "feature/seed-a");
  std::string cfg = *util::read_file(repo.path() + "/.idp/config.yml");
  cfg += "database:\n  seed: db/seed.sql\n";
  repo.write_file(".idp/config.yml", cfg);
  repo.commit("seed the database");
  auto validated = d->cli({"config", "validate", repo.path() + "/.idp/config.yml"});
  EXPECT_EQ(validated.exit_code, 0) << validated.out << validated.err;
  create(*d, repo, "feature/seed-a");
  // Two more at once: both clone the same template concurrently.
  repo.checkout_new_branch("feature/seed-b");
  repo.checkout_new_branch("feature/seed-c");
  for (const char* br : {"feature/seed-b", "feature/seed-c"}) {
    auto r = d->cli({"create", "--repo", repo.path(), "--branch", br, "--no-wait"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  for (const char* env : {"preview-seed-b", "preview-seed-c"}) {
    ASSERT_TRUE(d->wait_phase(env, "ready", 300000)) << env << ": " << d->env(env).dump(2) << "\n" << logs(*d, env);
  }

  json oa = status(*d, "preview-seed-a")["outputs"];
  std::string tmpl = oa["db_seed_template"];
  EXPECT_EQ(tmpl.rfind("idpseed_", 0), 0u) << oa.dump();
  EXPECT_EQ(oa["db_created"], "cloned from template " + tmpl + " (seeded by this environment)");
  for (const char* env : {"preview-seed-b", "preview-seed-c"}) {
    json o = status(*d, env)["outputs"];
    EXPECT_EQ(o["db_created"], "cloned from template " + tmpl) << env << " was not seeded again";
    std::string log = logs(*d, env);
    EXPECT_TRUE(contains(log, "cloned from template " + tmpl)) << log;
    EXPECT_FALSE(contains(log, "applied seed")) << log;
    // The seed's data is there, and the notes table belongs to the environment's role.
    json notes = http(*d, env, "GET", "/notes").json();
    ASSERT_EQ(notes.size(), 2u) << notes.dump();
    EXPECT_EQ(notes[0]["text"], "welcome to your preview environment");
    EXPECT_EQ(http(*d, env, "POST", "/notes", R"({"text":"own note"})").status, 201);
  }
  EXPECT_TRUE(contains(logs(*d, "preview-seed-a"), "applied seed \"db/seed.sql\""));
  EXPECT_EQ(http(*d, "preview-seed-b", "GET", "/notes").json().size(), 3u);
  EXPECT_EQ(http(*d, "preview-seed-a", "GET", "/notes").json().size(), 2u) << "clones are independent";
  // The seeded objects belong to the environment's role, not to the seed role.
  std::string role_b = status(*d, "preview-seed-b")["outputs"]["db_user"];
  auto owner = psql_as(role_b, app_variable(*d, "preview-seed-b", "DB_PASSWORD"), role_b,
                       "SELECT tableowner FROM pg_tables WHERE tablename = 'notes'");
  EXPECT_EQ(owner.exit_code, 0) << owner.err;
  EXPECT_EQ(owner.out, role_b + "\n");
  auto template_conn =
      psql_superuser("SELECT datallowconn, datistemplate FROM pg_database WHERE datname = '" + tmpl + "'");
  EXPECT_EQ(template_conn.out, "f|t\n") << "the template takes no connections, so clones never wait";
  for (const char* env : {"preview-seed-a", "preview-seed-b", "preview-seed-c"}) {
    ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
  }
  EXPECT_EQ(d->stop(), 0);
}

TEST_F(TemplatesTest, Kill9WithDatabasesLiveKeepsEveryEnvironmentsData) {
  auto d = make_daemon({}, "health_interval: 1s\n");
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-database", "feature/crash-a");
  create(*d, repo, "feature/crash-a");
  repo.checkout_new_branch("feature/crash-b");
  create(*d, repo, "feature/crash-b");
  ASSERT_EQ(http(*d, "preview-crash-a", "POST", "/notes", R"({"text":"a before the crash"})").status, 201);
  ASSERT_EQ(http(*d, "preview-crash-b", "POST", "/notes", R"({"text":"b before the crash"})").status, 201);
  pid_t pm = postmaster_pid();
  ASSERT_GT(pm, 0);
  auto notes_of = [&](const std::string& env) {
    json n = http(*d, env, "GET", "/notes").json();
    return n.is_array() && !n.empty() ? n[0].value("text", "") : std::string();
  };

  // 1. The daemon dies; PostgreSQL and the apps keep running; a new daemon adopts them.
  d->kill9();
  EXPECT_EQ(postmaster_pid(), pm) << "PostgreSQL outlives the daemon, like the apps";
  d->start();
  ASSERT_TRUE(wait_until([&] { return notes_of("preview-crash-a") == "a before the crash"; }, 60000)) << d->log();
  EXPECT_EQ(notes_of("preview-crash-b"), "b before the crash");
  EXPECT_EQ(postmaster_pid(), pm) << "adopted, not restarted";
  EXPECT_TRUE(contains(d->log(), "adopted the running PostgreSQL")) << d->log();

  // 2. Both die (a stale postmaster.pid is left behind): the new daemon starts it again.
  d->kill9();
  ::kill(pm, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return postmaster_pid() == 0; }, 10000));
  d->start();
  ASSERT_TRUE(wait_until([&] { return postmaster_pid() > 0 && postmaster_pid() != pm; }, 60000)) << d->log();
  for (const char* env : {"preview-crash-a", "preview-crash-b"}) {
    std::string want = std::string(env).substr(14) + " before the crash";
    ASSERT_TRUE(wait_until([&] { return notes_of(env) == want; }, 90000))
        << env << ": " << http(*d, env, "GET", "/notes").body << "\n"
        << d->log();
    EXPECT_EQ(http(*d, env, "POST", "/notes", R"({"text":"after"})").status, 201);
  }

  // 3. The app dies: the restarted app gets its credentials again (derived, never stored).
  json outputs = status(*d, "preview-crash-a")["outputs"];
  pid_t app = outputs.value("pid", 0);
  ASSERT_GT(app, 0) << outputs.dump();
  ::kill(app, SIGKILL);
  ASSERT_TRUE(wait_until(
      [&] {
        json o = status(*d, "preview-crash-a")["outputs"];
        return o.value("pid", 0) != app && o.value("pid", 0) > 0 && notes_of("preview-crash-a") == "a before the crash";
      },
      60000, 200))
      << d->log();

  for (const char* env : {"preview-crash-a", "preview-crash-b"}) {
    ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
  }
  EXPECT_EQ(d->stop(), 0);
  EXPECT_EQ(postmaster_pid(), 0);
}
