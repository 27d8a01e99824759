#include "templates_test_support.hpp"

#include <csignal>
#include <sys/stat.h>

#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::testing {

TemplatesTest::TemplatesTest() : tmp("idp-templates") {
  // The cluster runs as an unprivileged user, which must be able to walk to
  // <home>/postgres: the test directory lets it search (the home itself stays 0700; the
  // daemon grants that user search permission on it).
  ::chmod(tmp.path().c_str(), 0711);
  home = tmp.sub("home");
  (void)util::ensure_dir(home, 0700);
}

TemplatesTest::~TemplatesTest() {
  // Whatever the test did, nothing of this home may keep running.
  pid_t pm = postmaster_pid();
  if (pm > 0) {
    ADD_FAILURE() << "PostgreSQL (pid " << pm << ") was left running";
    ::kill(pm, SIGQUIT);
    wait_until([&] { return !util::process_alive(pm); }, 10000);
    ::kill(pm, SIGKILL);
  }
}

std::unique_ptr<DaemonProcess> TemplatesTest::make_daemon(const nlohmann::json& driver_options,
                                                          const std::string& extra_config) {
  std::string cfg;
  if (!driver_options.empty()) {
    cfg = "drivers:\n  local:\n";
    for (const auto& [k, v] : driver_options.items()) {
      cfg += "    " + k + ": " + (v.is_string() ? v.get<std::string>() : v.dump()) + "\n";
    }
  }
  cfg += extra_config;
  std::string path = tmp.sub("server.yml");
  (void)util::write_file_atomic(path, cfg);
  auto d = std::make_unique<DaemonProcess>(home, std::vector<std::string>{"--config", path});
  d->start();
  return d;
}

HttpResult TemplatesTest::http(const DaemonProcess& d, const std::string& env, const std::string& method,
                               const std::string& path, const std::string& body) const {
  util::HttpRequest req;
  req.method = method;
  req.url = "http://127.0.0.1:" + std::to_string(d.router_port()) + path;
  req.headers = {{"Host", env + ".preview.localhost:" + std::to_string(d.router_port())}};
  if (!body.empty()) {
    req.headers.push_back({"Content-Type", "application/json"});
    req.body = body;
  }
  req.timeout_ms = 10000;
  auto r = util::http_request(req);
  if (!r) {
    return {0, r.error().message};
  }
  return {r->status, r->body};
}

void TemplatesTest::create(const DaemonProcess& d, const GitRepo& repo, const std::string& branch,
                           const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {"create", "--repo", repo.path(), "--branch", branch};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = d.cli(args);
  ASSERT_EQ(r.exit_code, 0) << "idp create --branch " << branch << ": " << r.err << "\n" << d.log();
}

nlohmann::json TemplatesTest::status(const DaemonProcess& d, const std::string& env) const {
  auto r = d.cli({"status", env, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string TemplatesTest::logs(const DaemonProcess& d, const std::string& env) const {
  auto r = d.cli({"logs", env, "--tail", "100000"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

std::string TemplatesTest::app_variable(const DaemonProcess& d, const std::string& env, const std::string& name) const {
  auto r = d.cli({"exec", env, "--", "printenv", name});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return util::trim(r.out);
}

int TemplatesTest::cluster_port() const {
  auto text = util::read_file(home + "/db/cluster.json");
  if (!text) {
    return 0;
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  return j.is_object() ? j.value("port", 0) : 0;
}

pid_t TemplatesTest::postmaster_pid() const {
  auto text = util::read_file(home + "/postgres/data/postmaster.pid");
  if (!text) {
    return 0;
  }
  pid_t pid = static_cast<pid_t>(std::atol(util::split(*text, '\n')[0].c_str()));
  return pid > 0 && util::process_alive(pid) ? pid : 0;
}

util::RunResult TemplatesTest::psql_as(const std::string& role, const std::string& password, const std::string& db,
                                       const std::string& sql) const {
  util::Command c;
  c.argv = {
      "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", std::to_string(cluster_port()),
      "-U",   role, "-d", db,   "-c", sql};
  c.env = {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "5"}};
  c.unset_env = {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"};
  util::RunOptions o;
  o.timeout_ms = 30000;
  auto r = util::run(c, o);
  return r ? *r : util::RunResult{};
}

util::RunResult TemplatesTest::psql_superuser(const std::string& sql) const {
  util::Command c;
  c.argv = {"psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            home + "/postgres/run",
            "-p",
            std::to_string(cluster_port()),
            "-U",
            "idp",
            "-d",
            "postgres",
            "-c",
            sql};
  c.unset_env = {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE"};
  util::RunOptions o;
  o.timeout_ms = 30000;
  auto r = util::run(c, o);
  return r ? *r : util::RunResult{};
}

} // namespace idp::testing
