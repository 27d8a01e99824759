// The crash campaign: for each failpoint on the way of a create, a redeploy, a destroy or a
// job run's start (docs/hacking.md), `idp serve` is started with "<failpoint>=abort" and
// dies there; a daemon started again without failpoints must converge: the environment
// reaches its desired state (ready at the latest commit, or destroyed) and nothing is
// orphaned: no process of another revision, no stale Caddy route, no extra revision
// directory or checkout, no cgroup of a gone revision, no listening port or port
// reservation of a gone revision, no database or role of an environment that is gone, no
// lease left. The terraform runtime's cases (TerraformCrashTest) add: no state lock
// (record or fcntl lock), no terraform process, no work directory of a gone environment.
// Each case prints one line with its failpoint and its time.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "drivers/terraform/lock.hpp"
#include "integration/templates/templates_test_support.hpp"
#include "support/home_inspection.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/proc.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

// Named, not anonymous: the parameter types are bases of the fixtures (unity builds).
namespace crash_campaign {

enum class Phase { create, redeploy, destroy, job };

struct Case {
  std::string failpoint;
  Phase phase;
};

const char* phase_name(Phase p) {
  switch (p) {
  case Phase::create: return "create";
  case Phase::redeploy: return "redeploy";
  case Phase::destroy: return "destroy";
  case Phase::job: return "job";
  }
  return "?";
}

std::string case_name(const std::string& phase, const std::string& failpoint) {
  std::string n = phase + "_" + failpoint;
  for (auto& ch : n) {
    if (!isalnum(static_cast<unsigned char>(ch))) {
      ch = '_';
    }
  }
  return n;
}

// Sets an environment variable for what this test starts, restores it after.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const std::string& value) : m_name(name) {
    if (const char* old = std::getenv(name)) {
      m_old = old;
    }
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (m_old) {
      ::setenv(m_name, m_old->c_str(), 1);
    } else {
      ::unsetenv(m_name);
    }
  }

private:
  const char* m_name;
  std::optional<std::string> m_old;
};

// The line each case prints (the closing note's table): failpoint, outcome and time.
class CaseClock {
public:
  explicit CaseClock(std::string what) : m_what(std::move(what)), m_start(std::chrono::steady_clock::now()) {}
  ~CaseClock() {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    bool ok = !::testing::Test::HasFailure();
    std::cout << "[crash campaign] " << m_what << ": " << (ok ? "converged, 0 orphans" : "FAILED") << ", " << std::fixed
              << std::setprecision(1) << s << " s" << std::endl;
  }

private:
  std::string m_what;
  std::chrono::steady_clock::time_point m_start;
};

// Directories named `name` under /sys/fs/cgroup (each hierarchy, nested at any depth up to
// 6): where a home's revision groups live (src/drivers/local/cgroups.hpp).
std::vector<std::string> crash_cgroup_parents(const std::string& name) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it("/sys/fs/cgroup", fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) {
      continue;
    }
    if (it->path().filename() == name) {
      out.push_back(it->path().string());
      it.disable_recursion_pending();
    } else if (it.depth() >= 6) {
      it.disable_recursion_pending();
    }
  }
  return out;
}

std::set<std::string> crash_subdirs(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) {
      out.insert(e.path().filename().string());
    }
  }
  return out;
}

// Socket inode → port of every listening TCP socket (IPv4 and IPv6).
std::map<std::string, int> crash_listening_sockets() {
  std::map<std::string, int> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      ls >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A") { // TCP_LISTEN
        continue;
      }
      auto colon = local.rfind(':');
      if (colon != std::string::npos) {
        out[inode] = static_cast<int>(std::stoul(local.substr(colon + 1), nullptr, 16));
      }
    }
  }
  return out;
}

// The ports process `pid` listens on.
std::set<int> crash_listening_ports(pid_t pid, const std::map<std::string, int>& listening) {
  std::set<int> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code lec;
    std::string target = std::filesystem::read_symlink(e.path(), lec).string();
    if (util::starts_with(target, "socket:[")) {
      auto it = listening.find(target.substr(8, target.size() - 9));
      if (it != listening.end()) {
        out.insert(it->second);
      }
    }
  }
  return out;
}

// The environments holding a lease in the home's store; nullopt when sqlite3 is missing.
std::optional<std::set<std::string>> crash_leases(const std::string& home) {
  if (!util::find_executable("sqlite3")) {
    return std::nullopt;
  }
  util::Command c;
  c.argv = {"sqlite3", "-readonly", home + "/state.db", "SELECT env FROM leases"};
  auto r = util::run(c);
  std::set<std::string> out;
  if (!r || r->exit_code != 0) {
    ADD_FAILURE() << "cannot read the leases: " << (r ? r->err : r.error().message);
    return out;
  }
  for (const auto& l : util::split(r->out, '\n')) {
    if (!util::trim(l).empty()) {
      out.insert(util::trim(l));
    }
  }
  return out;
}

// No lease is left once the home is idle (the worker that converged released its own).
void crash_expect_no_leases(const std::string& home) {
  std::optional<std::set<std::string>> leases;
  bool none = wait_until([&] { return (leases = crash_leases(home)) && leases->empty(); }, 30000, 200);
  if (!leases) {
    std::cout << "[crash campaign] sqlite3 is not installed: leases not checked" << std::endl;
    return;
  }
  EXPECT_TRUE(none) << "leases left: " << util::join(std::vector<std::string>(leases->begin(), leases->end()), " ");
}

const std::string k_env = "preview-crash"; // branch feature/crash
const std::string k_keep = "preview-keep"; // branch feature/keep: keeps the cluster up in destroy cases
const std::string k_jobs = "preview-jobs"; // the scheduled-worker of the job case

// An environment that must be live at the end, and what it has.
struct LiveEnv {
  std::string name;
  bool web = true;      // a process behind a route and a port
  bool database = true; // a database and role
};

} // namespace crash_campaign
using namespace crash_campaign;

// Not in the anonymous namespace: a unity build merges test files (STYLE.md).
class CrashCampaignTest : public TemplatesTest, public ::testing::WithParamInterface<Case> {
protected:
  CrashCampaignTest()
      : remote(tmp.sub("remote.git")), work(make_example_repo(tmp.sub("work"), "api-database", "main")) {
    remote.push(work, "main");
  }

  // A daemon polling the remote; `failpoints` armed in it ("" = none).
  void start_daemon(const std::string& failpoints) {
    std::optional<ScopedEnv> fp;
    if (!failpoints.empty()) {
      fp.emplace("IDP_FAILPOINTS", failpoints);
    }
    if (!d) {
      std::string cfg = "repositories:\n  - url: " + util::json_dump(json(remote.path())) +
                        "\n    poll: true\n    poll_interval: 200ms\n";
      // A schedule minute is five real seconds: the job case's rate(1 minute) runs every 5 s.
      d = make_daemon({{"schedule_time_scale", 12}}, cfg);
    } else {
      d->start();
    }
  }

  // Commits a change on `branch` (created from main when new) and pushes; returns the commit.
  std::string push(const std::string& branch, const std::string& content) {
    if (work.git({"branch", "--list", branch}).empty()) {
      work.checkout("main");
      work.checkout_new_branch(branch);
    } else {
      work.checkout(branch);
    }
    work.write_file("NOTE.txt", content + "\n");
    std::string sha = work.commit("note: " + content);
    remote.push(work, branch);
    return sha;
  }

  bool wait_ready_at(const std::string& name, const std::string& commit, int timeout_ms) {
    return wait_until(
        [&] {
          json e = d->env(name);
          return e.is_object() && e.value("phase", "") == "ready" && e["deployed_commit"].is_string() &&
                 e["deployed_commit"] == commit;
        },
        timeout_ms, 100);
  }

  // Databases and roles of environments ("idp_…"), as the superuser sees them.
  std::set<std::string> psql_set(const std::string& sql) const {
    auto r = psql_superuser(sql);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::set<std::string> out;
    for (const auto& line : util::split(r.out, '\n')) {
      if (!util::trim(line).empty()) {
        out.insert(util::trim(line));
      }
    }
    return out;
  }

  json env_state(const std::string& env) const {
    auto text = util::read_file(home + "/envs/" + env + "/state.json");
    return text ? json::parse(*text, nullptr, false) : json();
  }

  // Everything of the home matches the live environments `live`: one revision each (its
  // processes, directory, checkout, cgroup, port and route), their databases and roles,
  // nothing of `gone` (an environment destroyed, or never to exist), no lease.
  void expect_no_orphans(const std::vector<LiveEnv>& live, const std::string& gone) {
    std::set<std::string> want_routes = {"idp-catch-all"};
    std::set<std::string> want_dbs;
    std::set<std::string> live_names;
    std::set<std::string> want_cgroups; // "<env>.<revision key>" of revisions placed in a cgroup
    std::set<int> want_reserved;        // ports in the driver's state
    size_t want_checkouts = 0;
    auto listening = crash_listening_sockets();
    for (const auto& env : live) {
      live_names.insert(env.name);
      json st = env_state(env.name);
      ASSERT_TRUE(st.is_object() && st["active"].is_object()) << env.name << ": no active revision in state.json";
      EXPECT_TRUE(st["pending"].is_null()) << env.name << ": a pending revision is left: " << st["pending"].dump();
      const json& active = st["active"];
      std::string key = active.value("key", "");
      int port = active.value("port", 0);
      if (!active.value("cgroup_dirs", json::array()).empty()) {
        want_cgroups.insert(env.name + "." + key);
      }
      if (env.web) {
        want_routes.insert("idp-env-" + env.name);
        EXPECT_GT(port, 0) << env.name << ": no port in state.json";
        want_reserved.insert(port);
      }
      if (env.database) {
        std::string db = "idp_" + env.name;
        std::replace(db.begin(), db.end(), '-', '_');
        want_dbs.insert(db);
      }
      auto revs = process_revisions(*d, env.name);
      if (env.web) {
        EXPECT_FALSE(revs.empty()) << env.name << ": no process";
      }
      for (const auto& rev : revs) {
        EXPECT_EQ(rev, key) << env.name << ": a process of revision " << rev << ", not of the active " << key;
      }
      // Ports: the processes of the environment listen on its active port, and on no other.
      std::set<int> ports;
      for (pid_t p : d->home_processes()) {
        if (util::process_env_value(p, "IDP_ENVIRONMENT").value_or("") == env.name) {
          auto pp = crash_listening_ports(p, listening);
          ports.insert(pp.begin(), pp.end());
        }
      }
      EXPECT_EQ(ports, env.web ? std::set<int>{port} : std::set<int>{})
          << env.name << ": listening ports of its processes (active port " << port << ")";
      EXPECT_EQ(revision_dirs(home, env.name).size(), 1u)
          << env.name << ": " << util::join(revision_dirs(home, env.name), " ");
      want_checkouts += 1;
    }
    EXPECT_TRUE(process_revisions(*d, gone).empty()) << "processes of " << gone << " are left";
    EXPECT_FALSE(util::path_exists(home + "/envs/" + gone)) << "files (state.json) of " << gone << " are left";
    for (const auto& env : process_environments(*d)) {
      EXPECT_TRUE(live_names.count(env)) << "processes of environment " << env << " are left";
    }
    // Port reservations: the driver's state (every state.json) names exactly the live ports.
    std::multiset<int> reserved;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(home + "/envs", ec)) {
      json st = env_state(e.path().filename().string());
      EXPECT_TRUE(live_names.count(e.path().filename().string()))
          << "state of environment " << e.path().filename().string() << " is left";
      for (const char* slot : {"active", "pending"}) {
        if (st.is_object() && st[slot].is_object() && st[slot].value("port", 0) > 0) {
          reserved.insert(st[slot].value("port", 0));
        }
      }
    }
    EXPECT_EQ(std::set<int>(reserved.begin(), reserved.end()), want_reserved);
    EXPECT_EQ(reserved.size(), want_reserved.size()) << "a port is reserved twice";
    // cgroups: each hierarchy's group of this home holds exactly the live revisions' groups.
    auto parents = crash_cgroup_parents("idp-" + d->home_id());
    if (!want_cgroups.empty()) {
      EXPECT_FALSE(parents.empty()) << "revisions are placed in cgroups, but no idp-" << d->home_id()
                                    << " group exists";
    }
    for (const auto& parent : parents) {
      std::set<std::string> groups;
      // A group is removed once its last process is gone: give exiting processes a moment.
      wait_until([&] { return (groups = crash_subdirs(parent)) == want_cgroups; }, 10000, 100);
      EXPECT_EQ(groups, want_cgroups) << "cgroups under " << parent;
    }
    // Caddy catches up with a restarted daemon's routes at once (its start config).
    std::set<std::string> routes;
    EXPECT_TRUE(wait_until([&] { return (routes = caddy_routes(home)) == want_routes; }, 30000, 100))
        << "routes: " << util::join(std::vector<std::string>(routes.begin(), routes.end()), " ");
    auto cos = checkouts(home);
    EXPECT_EQ(cos.size(), want_checkouts) << util::join(cos, " ");
    auto wts = git_worktrees(home);
    EXPECT_TRUE(wts.empty()) << "worktrees registered in the mirror: " << util::join(wts, " ");
    if (postmaster_pid() > 0) {
      EXPECT_EQ(psql_set("SELECT datname FROM pg_database WHERE datname LIKE 'idp\\_%' AND NOT datistemplate"),
                want_dbs);
      EXPECT_EQ(psql_set("SELECT rolname FROM pg_roles WHERE rolname LIKE 'idp\\_%'"), want_dbs);
    } else if (!want_dbs.empty()) {
      ADD_FAILURE() << "PostgreSQL is not running: cannot look for leftover databases";
    }
    crash_expect_no_leases(home);
  }

  // The job case: the daemon dies just after a run's shim started; the restarted daemon
  // records how that run ended, the schedule goes on, no run is left "running" without
  // its process and no job process runs without a run recorded as running.
  void job_case(const std::string& armed) {
    GitRepo jobs = make_example_repo(tmp.sub("jobs"), "scheduled-worker", "feature/jobs");
    jobs.write_file(".idp/config.yml", "template: scheduled-worker\n"
                                       "schedule_expression: rate(1 minute)\n"
                                       "environment:\n"
                                       "  JOB_SLEEP_MS: \"1500\"\n"
                                       "local:\n"
                                       "  start: \"node job.js\"\n");
    jobs.commit("every minute");
    start_daemon(armed);
    // The create returns once ready; the first run follows within a second and kills the
    // daemon (so the CLI may also see it go).
    (void)d->cli({"create", "--repo", jobs.path(), "--branch", "feature/jobs"});
    ASSERT_TRUE(wait_until([&] { return !d->running(); }, 120000, 100))
        << "the failpoint " << armed << " was not reached\n"
        << d->log();
    EXPECT_NE(d->log().find("failpoint local.job.started fired"), std::string::npos) << d->log();
    // The run the daemon died starting: schedule.json names it (with its store id).
    json schedule =
        json::parse(util::read_file(home + "/envs/" + k_jobs + "/schedule.json").value_or("{}"), nullptr, false);
    ASSERT_TRUE(schedule.is_object() && schedule["running"].is_object()) << schedule.dump(2);
    const int64_t crash_run = schedule["running"].value("id", int64_t{0});
    ASSERT_GT(crash_run, 0) << schedule.dump(2);
    start_daemon("");
    ASSERT_TRUE(d->wait_phase(k_jobs, "ready", 60000)) << util::json_dump(d->env(k_jobs), 2) << d->log();
    auto runs = [&] { return status(*d, k_jobs)["job_runs"]; };
    // That run ends recorded as it ended (succeeded), and later runs follow.
    // The status lists the last 10 runs, one every 5 s here: once seen succeeded, the
    // crash's run stays so in the store even after it leaves that window.
    json rs;
    bool crash_done = false;
    ASSERT_TRUE(wait_until(
        [&] {
          rs = runs();
          bool later_done = false;
          for (const auto& r : rs.is_array() ? rs : json::array()) {
            int64_t id = r.value("id", int64_t{0});
            crash_done = crash_done || (id == crash_run && r["status"] == "succeeded");
            later_done = later_done || (id > crash_run && r["status"] == "succeeded");
          }
          return crash_done && later_done;
        },
        60000, 250))
        << "run " << crash_run
        << " (started at the crash) is not recorded as succeeded, or no run followed: " << rs.dump(2)
        << "\nthe environment's log:\n"
        << d->cli({"logs", k_jobs, "--tail", "60"}).out << d->log();
    // Every job process belongs to a run recorded as running, and at most one runs.
    std::set<std::string> running_ids;
    std::set<std::string> process_runs;
    ASSERT_TRUE(wait_until(
        [&] {
          running_ids.clear();
          process_runs.clear();
          for (const auto& r : runs()) {
            if (r["status"] == "running") {
              running_ids.insert(r["id"].dump());
            }
          }
          for (pid_t p : d->home_processes()) {
            if (auto id = util::process_env_value(p, "IDP_JOB_RUN")) {
              process_runs.insert(*id);
            }
          }
          // A run may start or end between the two reads: compare only a settled view.
          return std::includes(running_ids.begin(), running_ids.end(), process_runs.begin(), process_runs.end()) &&
                 running_ids.size() <= 1;
        },
        30000, 50))
        << "job processes of runs "
        << util::join(std::vector<std::string>(process_runs.begin(), process_runs.end()), " ")
        << "; runs recorded running: "
        << util::join(std::vector<std::string>(running_ids.begin(), running_ids.end()), " ");
  }

  BareRepo remote;
  GitRepo work;
  std::unique_ptr<DaemonProcess> d;
};

TEST_P(CrashCampaignTest, ConvergesWithNothingOrphaned) {
  const Case c = GetParam();
  const std::string armed = c.failpoint + "=abort";
  CaseClock clock(std::string(phase_name(c.phase)) + " " + c.failpoint);
  std::string want_commit;
  std::vector<LiveEnv> live;

  if (c.phase == Phase::job) {
    job_case(armed);
    if (HasFatalFailure()) {
      return;
    }
    expect_no_orphans({{k_jobs, false, false}}, k_env);
    EXPECT_EQ(d->cli({"destroy", k_jobs, "--yes"}).exit_code, 0);
    EXPECT_EQ(d->stop(), 0);
    return;
  }
  if (c.phase == Phase::create) {
    start_daemon(armed);
    want_commit = push("feature/crash", "v1");
    live = {{k_env}};
  } else {
    start_daemon("");
    if (c.phase == Phase::destroy) {
      std::string keep = push("feature/keep", "keep");
      ASSERT_TRUE(wait_ready_at(k_keep, keep, 240000)) << d->log();
    }
    std::string c1 = push("feature/crash", "v1");
    ASSERT_TRUE(wait_ready_at(k_env, c1, 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
    // Down without cleanup (apps and PostgreSQL keep running), up again with the failpoint.
    d->kill9();
    start_daemon(armed);
    ASSERT_TRUE(wait_ready_at(k_env, c1, 120000)) << d->log();
    if (c.phase == Phase::redeploy) {
      want_commit = push("feature/crash", "v2");
      live = {{k_env}};
    } else {
      auto r = d->cli({"destroy", k_env, "--yes", "--no-wait"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      live = {{k_keep}};
    }
  }

  // The daemon dies at the failpoint.
  ASSERT_TRUE(wait_until([&] { return !d->running(); }, 240000, 100))
      << "the failpoint " << c.failpoint << " was not reached\n"
      << d->log();
  EXPECT_NE(d->log().find("failpoint " + c.failpoint + " fired"), std::string::npos) << d->log();

  // Up again without failpoints: it converges.
  start_daemon("");
  if (c.phase == Phase::destroy) {
    ASSERT_TRUE(d->wait_phase(k_env, "destroyed", 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
  } else {
    ASSERT_TRUE(wait_ready_at(k_env, want_commit, 240000)) << util::json_dump(d->env(k_env), 2) << d->log();
    EXPECT_EQ(http(*d, k_env, "GET", "/health").status, 200);
  }
  // Retiring and cleanup may finish just after the phase is written: poll for the end state.
  // The replaced revision retires in the background after its drain (its directory goes last).
  wait_until(
      [&] {
        // At most one revision left running (its shim and app are two processes of it).
        auto revs = process_revisions(*d, k_env);
        return std::set<std::string>(revs.begin(), revs.end()).size() <= 1 && checkouts(home).size() <= live.size() &&
               revision_dirs(home, k_env).size() <= 1;
      },
      30000, 100);
  expect_no_orphans(live, c.phase == Phase::destroy ? k_env : k_keep);

  EXPECT_EQ(d->stop(), 0);
}

namespace {

std::vector<Case> crash_cases() {
  std::vector<Case> out;
  for (const char* fp :
       {"local.apply.pending_recorded", "local.apply.checked_out", "local.database.role_created",
        "local.database.created", "local.apply.database_ready", "local.apply.built", "local.apply.started",
        "router.route_set", "local.apply.routed", "local.apply.switched", "engine.deploy.applied"}) {
    out.push_back({fp, Phase::create});
  }
  for (const char* fp :
       {"local.apply.pending_recorded", "local.apply.built", "local.apply.started", "router.route_set",
        "local.apply.routed", "local.apply.switched", "local.apply.old_retired", "engine.deploy.applied"}) {
    out.push_back({fp, Phase::redeploy});
  }
  for (const char* fp : {"router.route_removed", "local.destroy.route_removed", "local.destroy.files_removed",
                         "local.database.dropped", "engine.destroy.done"}) {
    out.push_back({fp, Phase::destroy});
  }
  out.push_back({"local.job.started", Phase::job});
  return out;
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Failpoints, CrashCampaignTest, ::testing::ValuesIn(crash_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return case_name(phase_name(i.param.phase), i.param.failpoint);
                         });

// --- The terraform runtime ---

namespace crash_campaign {

enum class TfPhase { create, destroy };

struct TfCase {
  std::string failpoint;
  TfPhase phase;
};

const std::string k_tf_env = "preview-infra"; // branch feature/infra, template tf-test

// Processes of terraform runs for this home: terraform (and its providers) have HOME in
// the environment's work directory (drivers/terraform/runner.hpp).
std::vector<pid_t> crash_terraform_processes(const std::string& home) {
  return util::find_processes_with_env_prefix("HOME", home + "/terraform/");
}

} // namespace crash_campaign

// The terraform runtime on the tf-test template (offline, local backend), like
// TerraformDaemonTest: the daemon dies at each step of an apply and a destroy, including
// while terraform holds the state lock; the restarted daemon converges and leaves no lock.
class TerraformCrashTest : public ::testing::TestWithParam<TfCase> {
protected:
  TerraformCrashTest() : tmp("idp-tf-crash"), home(tmp.sub("home")), repo(tmp.sub("app")) {
    (void)util::ensure_dir(home, 0700);
    repo.write_file(".idp/config.yml", "template: tf-test\nttl: 2h\n");
    repo.commit("tf-test app");
    repo.checkout_new_branch("feature/infra");
  }

  void start_daemon(const std::string& failpoints) {
    std::optional<ScopedEnv> fp;
    if (!failpoints.empty()) {
      fp.emplace("IDP_FAILPOINTS", failpoints);
    }
    if (!d) {
      d = std::make_unique<DaemonProcess>(home);
    }
    d->start();
  }

  util::RunResult create() const {
    return d->cli({"create", "--repo", repo.path(), "--branch", "feature/infra", "--runtime", "terraform"});
  }

  // Nothing of terraform is left: no terraform process of this home, no state lock (its
  // record or the fcntl lock), the work directory only of a live environment, its state
  // with exactly the template's resource; and no lease.
  void expect_no_orphans(bool live) {
    std::string work = home + "/terraform/" + k_tf_env;
    std::string state = work + "/state/terraform.tfstate";
    // The daemon's observations run `terraform state list` now and then: wait for a
    // moment with none running (an orphaned apply never ends, or holds the lock).
    std::vector<pid_t> procs;
    pid_t holder = 0;
    EXPECT_TRUE(wait_until(
        [&] {
          procs = crash_terraform_processes(home);
          holder = drivers::terraform::local_state_lock_holder(state);
          return procs.empty() && holder == 0;
        },
        60000, 20))
        << procs.size() << " terraform process(es) left; state lock held by pid " << holder;
    EXPECT_FALSE(util::path_exists(work + "/state/.terraform.tfstate.lock.info"))
        << "a state lock record is left: "
        << util::read_file(work + "/state/.terraform.tfstate.lock.info").value_or("");
    std::set<std::string> dirs;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(home + "/terraform", ec)) {
      dirs.insert(e.path().filename().string());
    }
    EXPECT_EQ(dirs, live ? std::set<std::string>{k_tf_env} : std::set<std::string>{}) << "terraform work directories";
    if (live) {
      json st = json::parse(util::read_file(state).value_or("{}"), nullptr, false);
      std::vector<std::string> resources;
      for (const auto& r : st.value("resources", json::array())) {
        resources.push_back(r.value("type", "") + "." + r.value("name", ""));
      }
      EXPECT_EQ(resources, std::vector<std::string>{"terraform_data.environment"}) << st.dump(2);
    }
    crash_expect_no_leases(home);
  }

  TempDir tmp;
  std::string home;
  GitRepo repo;
  std::unique_ptr<DaemonProcess> d;
};

TEST_P(TerraformCrashTest, ConvergesWithNoLockLeft) {
  if (!util::find_executable("tofu") && !util::find_executable("terraform")) {
    GTEST_SKIP() << "neither tofu nor terraform is installed";
  }
  const TfCase c = GetParam();
  CaseClock clock(std::string("terraform ") + (c.phase == TfPhase::create ? "create " : "destroy ") + c.failpoint);
  const std::string armed = c.failpoint + "=abort";
  if (c.phase == TfPhase::create) {
    start_daemon(armed);
    (void)create(); // the daemon dies on the way: the CLI fails
  } else {
    start_daemon("");
    auto created = create();
    ASSERT_EQ(created.exit_code, 0) << created.err << d->log();
    d->kill9();
    start_daemon(armed);
    ASSERT_TRUE(d->wait_phase(k_tf_env, "ready", 60000)) << d->log();
    auto r = d->cli({"destroy", k_tf_env, "--yes", "--no-wait"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ASSERT_TRUE(wait_until([&] { return !d->running(); }, 120000, 50))
      << "the failpoint " << c.failpoint << " was not reached\n"
      << d->log();
  EXPECT_NE(d->log().find("failpoint " + c.failpoint + " fired"), std::string::npos) << d->log();

  start_daemon("");
  if (c.phase == TfPhase::create) {
    ASSERT_TRUE(d->wait_phase(k_tf_env, "ready", 180000)) << util::json_dump(d->env(k_tf_env), 2) << d->log();
    json env = d->env(k_tf_env);
    EXPECT_EQ(env["url"], "http://preview-infra.tf-test.invalid") << env.dump(2);
    EXPECT_TRUE(env["outputs"]["id"].is_string()) << env.dump(2);
  } else {
    ASSERT_TRUE(d->wait_phase(k_tf_env, "destroyed", 180000)) << util::json_dump(d->env(k_tf_env), 2) << d->log();
  }
  expect_no_orphans(c.phase == TfPhase::create);
  EXPECT_EQ(d->stop(), 0);
}

namespace {

std::vector<TfCase> terraform_crash_cases() {
  std::vector<TfCase> out;
  // `idp create` goes through the API: engine.create.resolved is on its way.
  for (const char* fp : {"engine.create.resolved", "terraform.apply.prepared", "terraform.apply.initialised",
                         "terraform.apply.changing", "terraform.apply.applied", "engine.deploy.applied"}) {
    out.push_back({fp, TfPhase::create});
  }
  for (const char* fp : {"terraform.destroy.changing", "terraform.destroy.destroyed", "engine.destroy.done"}) {
    out.push_back({fp, TfPhase::destroy});
  }
  return out;
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Failpoints, TerraformCrashTest, ::testing::ValuesIn(terraform_crash_cases()),
                         [](const ::testing::TestParamInfo<TfCase>& i) {
                           return case_name(i.param.phase == TfPhase::create ? "create" : "destroy", i.param.failpoint);
                         });

// --- Coverage ---

namespace {

// The failpoint names of the sites in src/ (IDP_FAILPOINT, IDP_FAILPOINT_RETURN,
// IDP_APPLY_CRASH_POINT, crash_point, failpoint_error with a literal name), without the threads' "thread.*".
std::set<std::string> crash_failpoints_in_code(const std::string& src) {
  // IDP_APPLY_CRASH_POINT(run, "name") is the local driver's apply (apply.cpp).
  static const std::regex k_site(
      R"((IDP_FAILPOINT_RETURN|IDP_FAILPOINT|IDP_APPLY_CRASH_POINT|crash_point|failpoint_error)\((?:\s*\w+\s*,)?\s*"([^"]+)\")");
  std::set<std::string> out;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(src, ec), end; !ec && it != end; it.increment(ec)) {
    std::string ext = it->path().extension().string();
    if (ext != ".cpp" && ext != ".hpp") {
      continue;
    }
    std::string text = util::read_file(it->path().string()).value_or("");
    for (std::sregex_iterator m(text.begin(), text.end(), k_site), mend; m != mend; ++m) {
      std::string name = (*m)[2];
      if (!util::starts_with(name, "thread.") && name != "name") {
        out.insert(name);
      }
    }
  }
  return out;
}

// The first column of the table under "### Crash campaign sites" in docs/hacking.md.
std::set<std::string> crash_failpoints_in_docs(const std::string& doc) {
  std::set<std::string> out;
  bool in_section = false;
  for (const auto& line : util::split(util::read_file(doc).value_or(""), '\n')) {
    if (util::starts_with(line, "#")) {
      in_section = line == "### Crash campaign sites";
      continue;
    }
    if (in_section && util::starts_with(line, "| `")) {
      out.insert(line.substr(3, line.find('`', 3) - 3));
    }
  }
  return out;
}

} // namespace

// docs/hacking.md lists exactly the failpoints of the code, and the campaign crashes the
// daemon at every one of them.
TEST(CrashCampaignCoverage, EveryFailpointIsDocumentedAndCrashed) {
  const std::string root = IDP_CRASH_SOURCE_DIR;
  auto in_code = crash_failpoints_in_code(root + "/src");
  auto in_docs = crash_failpoints_in_docs(root + "/docs/hacking.md");
  EXPECT_FALSE(in_code.empty());
  EXPECT_EQ(in_docs, in_code) << "docs/hacking.md (Crash campaign sites) and the failpoints in src/ differ";
  std::set<std::string> crashed;
  for (const auto& c : crash_cases()) {
    crashed.insert(c.failpoint);
  }
  for (const auto& c : terraform_crash_cases()) {
    crashed.insert(c.failpoint);
  }
  EXPECT_EQ(crashed, in_code) << "failpoints the campaign does not crash at (or crashes at, but gone from src/)";
}
