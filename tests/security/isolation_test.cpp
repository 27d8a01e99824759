// Issue 9, isolation of repository code on the local runtime (must-show point 3): with a
// root daemon, an environment's code runs as a uid of its own and cannot read the
// server's secrets, another environment's checkout or the daemon's environment, cannot
// use PostgreSQL as its superuser, and a fork bomb stays inside its cgroup while the other
// environment keeps serving. The probes go through `idp exec`, which runs as the same uid
// as the app; one check reads the app process's own credentials from /proc.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

// Outside the anonymous namespace: in a unity build the TEST_F classes deriving from it
// would otherwise trip -Wsubobject-linkage.
class SecurityIsolationTest : public ::testing::Test {
protected:
  SecurityIsolationTest() : tmp("idp-sec-iso") {}

  // A daemon whose local driver has `options` (YAML lines under drivers.local).
  void start_daemon(const std::string& options) {
    // PostgreSQL's user must reach the home (as in the database tests); the environments'
    // uids would get a search-only ACL entry on a 0700 parent from the driver anyway.
    ::chmod(tmp.path().c_str(), 0711);
    (void)util::ensure_dir(tmp.sub("home"));
    std::string cfg = tmp.sub("server.yml");
    (void)util::write_file_atomic(cfg, "drivers:\n  local:\n" + options);
    d = std::make_unique<DaemonProcess>(tmp.sub("home"), std::vector<std::string>{"--config", cfg});
    d->start();
  }

  void create(const GitRepo& repo, const std::string& branch, const std::string& name) {
    auto r = d->cli({"create", "--repo", repo.path(), "--branch", branch, "--name", name});
    ASSERT_EQ(r.exit_code, 0) << "idp create " << name << ": " << r.out << r.err << "\n" << d->log();
  }

  // `sh -c script` in the environment through `idp exec`: what it printed on stdout.
  std::string probe(const std::string& env, const std::string& script) {
    auto r = d->cli({"exec", env, "--", "sh", "-c", script});
    last_err = r.err;
    return r.out;
  }

  // "DENIED" when `command` (run by the environment) fails, "READ" when it succeeds.
  std::string attempt(const std::string& env, const std::string& command) {
    return util::trim(probe(env, command + " >/dev/null 2>&1 && echo READ || echo DENIED"));
  }

  json status(const std::string& env) {
    auto r = d->cli({"status", env, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  // The first file named `name` under <home>/envs/<env> (read as root, the test's user).
  std::string file_of(const std::string& env, const std::string& name) {
    auto found = find_files(d->home() + "/envs/" + env, [&](const std::filesystem::directory_entry& e) {
      return e.path().filename() == name && e.path().string().find("node_modules") == std::string::npos;
    });
    return found.empty() ? "" : found[0];
  }

  // The Uid: line of /proc/<pid>/status: real, effective, saved, filesystem.
  static std::vector<std::string> proc_field(pid_t pid, const std::string& field) {
    auto text = util::read_file("/proc/" + std::to_string(pid) + "/status");
    if (!text) {
      return {};
    }
    for (const auto& line : util::split(*text, '\n')) {
      if (util::starts_with(line, field + ":")) {
        std::vector<std::string> out;
        for (const auto& w : util::split(util::trim(line.substr(field.size() + 1)), '\t')) {
          if (!util::trim(w).empty()) {
            out.push_back(util::trim(w));
          }
        }
        return out;
      }
    }
    return {};
  }

  TempDir tmp;
  std::unique_ptr<DaemonProcess> d;
  std::string last_err;
};

TEST_F(SecurityIsolationTest, AnAppCannotReachTheServersSecretsOtherEnvironmentsOrTheSuperuser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "isolation of environments needs a root daemon";
  }
  // A small pids.max so the fork bomb below is stopped early and cannot hurt the machine.
  start_daemon("    pids_max: 64\n    uid_range: \"3700000-3700099\"\n");
  GitRepo db_app = make_example_repo(tmp.sub("db-app"), "api-database", "main");
  GitRepo web_app = make_example_repo(tmp.sub("web-app"), "api-service", "main");
  create(db_app, "main", "iso-a");
  create(web_app, "main", "iso-b");
  const std::string home = d->home();
  ASSERT_EQ(d->get_via_router("iso-b", "/health").first, 200);
  ASSERT_EQ(d->get_via_router("iso-a", "/health").first, 200) << "the app reaches its database over TCP";

  // Who the code runs as: a uid of its own from the range, no capabilities, no_new_privs.
  std::string ids =
      util::trim(probe("iso-a", "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status"));
  auto lines = util::split(ids, '\n');
  ASSERT_GE(lines.size(), 5u) << ids << last_err;
  uid_t uid_a = static_cast<uid_t>(std::stoul(lines[0]));
  EXPECT_GE(uid_a, 3700000u);
  EXPECT_LE(uid_a, 3700099u);
  EXPECT_EQ(lines[1], lines[0]) << "gid = uid";
  EXPECT_NE(ids.find("CapEff:\t0000000000000000"), std::string::npos) << ids;
  EXPECT_NE(ids.find("CapBnd:\t0000000000000000"), std::string::npos) << ids;
  EXPECT_NE(ids.find("NoNewPrivs:\t1"), std::string::npos) << ids;
  uid_t uid_b = static_cast<uid_t>(std::stoul(util::trim(probe("iso-b", "id -u"))));
  EXPECT_NE(uid_a, uid_b) << "each environment has its own uid";
  EXPECT_EQ(util::trim(probe("iso-a", "printf %s \"$HOME\"")), home + "/envs/iso-a/home");

  // The app process itself (started by the shim, which stays root) runs as the same uid.
  std::string pid_file = file_of("iso-b", "app.pid");
  ASSERT_FALSE(pid_file.empty());
  pid_t app_b = static_cast<pid_t>(std::stol(util::trim(*util::read_file(pid_file))));
  auto uids = proc_field(app_b, "Uid");
  ASSERT_EQ(uids.size(), 4u);
  for (const auto& u : uids) {
    EXPECT_EQ(u, std::to_string(uid_b)) << "real, effective, saved and filesystem uid of the app";
  }
  EXPECT_EQ(proc_field(app_b, "NoNewPrivs"), std::vector<std::string>{"1"});
  EXPECT_EQ(proc_field(app_b, "CapEff"), std::vector<std::string>{"0000000000000000"});

  // Positive controls: the probes can read what is theirs, so a DENIED below is the
  // permission, not a broken probe.
  EXPECT_EQ(attempt("iso-a", "cat server.js"), "READ");
  EXPECT_EQ(attempt("iso-a", "touch \"$HOME/x\""), "READ");

  // The server's secrets.
  ASSERT_TRUE(util::path_exists(home + "/db/master.key"));
  ASSERT_TRUE(util::path_exists(home + "/state.db"));
  ASSERT_TRUE(util::path_exists(home + "/admin.token"));
  EXPECT_EQ(attempt("iso-a", "cat '" + home + "/db/master.key'"), "DENIED");
  EXPECT_EQ(attempt("iso-a", "cat '" + home + "/state.db'"), "DENIED");
  EXPECT_EQ(attempt("iso-a", "cat '" + home + "/admin.token'"), "DENIED");
  EXPECT_EQ(attempt("iso-a", "ls '" + home + "'"), "DENIED") << "search only: no listing of the home";
  EXPECT_EQ(attempt("iso-a", "ls '" + home + "/git'"), "DENIED") << "the git mirrors";
  EXPECT_EQ(attempt("iso-a", "cat /proc/" + std::to_string(d->pid()) + "/environ"), "DENIED");
  // Another environment's checkout, revision directory and HOME.
  std::string other = file_of("iso-b", "server.js");
  ASSERT_FALSE(other.empty());
  EXPECT_EQ(attempt("iso-a", "cat '" + other + "'"), "DENIED");
  EXPECT_EQ(attempt("iso-a", "ls '" + home + "/envs/iso-b'"), "DENIED");
  EXPECT_EQ(attempt("iso-a", "ls '" + home + "/envs/iso-b/home'"), "DENIED");
  // Its own revision's records (app.pid, exit.json) stay the daemon's: search only.
  EXPECT_EQ(attempt("iso-a", "ls ..; cat ../app.pid"), "DENIED");

  // PostgreSQL as its superuser: through the unix socket (peer auth maps only the
  // daemon's OS user, and the socket's directory is the cluster user's, 0700), and over TCP.
  std::string psql = util::path_exists("/usr/lib/postgresql/15/bin/psql") ? "/usr/lib/postgresql/15/bin/psql" : "psql";
  std::string socket_dir = home + "/postgres/run";
  ASSERT_TRUE(util::is_directory(socket_dir));
  std::string port = util::trim(probe("iso-a", "printf %s \"$DB_PORT\""));
  ASSERT_FALSE(port.empty());
  EXPECT_EQ(attempt("iso-a", psql + " -w -h '" + socket_dir + "' -p " + port + " -U idp -d postgres -c 'select 1'"),
            "DENIED");
  EXPECT_EQ(
      attempt("iso-a", "PGPASSWORD= " + psql + " -w -h 127.0.0.1 -p " + port + " -U idp -d postgres -c 'select 1'"),
      "DENIED");
  // Its own role over TCP works (positive control for the psql probe).
  EXPECT_EQ(attempt("iso-a", psql + " -w -c 'select 1'"), "READ") << last_err;

  // A fork bomb (bounded: at most 200 sleeps) fails once the revision's pids.max is hit.
  std::string bomb = probe("iso-a", "n=0; while [ $n -lt 200 ]; do sleep 300 >/dev/null 2>&1 </dev/null & n=$((n+1)); "
                                    "done; echo spawned $n");
  EXPECT_EQ(bomb.find("spawned 200"), std::string::npos) << "pids.max did not stop the fork bomb: " << bomb;
  // The other environment keeps serving, through its URL.
  EXPECT_EQ(d->get_via_router("iso-b", "/health").first, 200);

  // Destroy stops everything that runs as the environment's uid (the sleeps too) and
  // frees the uid; the other environment still serves.
  auto destroyed = d->cli({"destroy", "iso-a", "--yes"});
  EXPECT_EQ(destroyed.exit_code, 0) << destroyed.out << destroyed.err;
  EXPECT_TRUE(wait_until(
      [&] {
        for (const auto& e : std::filesystem::directory_iterator("/proc")) {
          auto u = proc_field(static_cast<pid_t>(std::atoi(e.path().filename().c_str())), "Uid");
          if (!u.empty() && u[0] == std::to_string(uid_a)) {
            return false;
          }
        }
        return true;
      },
      20000))
      << "processes of uid " << uid_a << " survived the destroy";
  EXPECT_EQ(d->get_via_router("iso-b", "/health").first, 200);
  auto uids_file = util::read_file(home + "/uids.json");
  ASSERT_TRUE(uids_file.has_value());
  EXPECT_EQ(uids_file->find("iso-a"), std::string::npos) << *uids_file;
  EXPECT_EQ(d->cli({"destroy", "iso-b", "--yes"}).exit_code, 0); // frees its machine-wide uid claim
}

TEST_F(SecurityIsolationTest, WithoutIsolationStatusWarnsThatAppsAreNotIsolated) {
  // A non-root daemon cannot switch users; "isolation: off" takes the same path as root.
  start_daemon(::geteuid() == 0 ? "    isolation: \"off\"\n" : "    pids_max: 64\n");
  GitRepo web_app = make_example_repo(tmp.sub("web-app"), "api-service", "main");
  create(web_app, "main", "plain");
  json st = status("plain");
  ASSERT_TRUE(st.is_object());
  std::string warnings = st.contains("warnings") ? st["warnings"].dump() : "";
  EXPECT_NE(warnings.find("apps are not isolated"), std::string::npos) << st.dump();
  auto text = d->cli({"status", "plain"});
  EXPECT_NE(text.out.find("apps are not isolated"), std::string::npos) << text.out;
  // And the app runs as the daemon's own user.
  EXPECT_EQ(util::trim(probe("plain", "id -u")), std::to_string(::geteuid()));
}
