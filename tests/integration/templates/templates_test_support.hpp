#pragma once
// Shared pieces of the template integration tests: a fixture with its own home (and so
// its own PostgreSQL cluster), requests through the router, psql as an app role (TCP,
// PGPASSWORD in the environment) or as the superuser (unix socket), and a check that
// nothing of the home is left running.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {

struct HttpResult {
  long status = 0;
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class TemplatesTest : public ::testing::Test {
protected:
  TemplatesTest();
  ~TemplatesTest() override;

  // A daemon on this test's home; `driver_options` go to drivers.local in its config file,
  // `extra_config` (YAML) is appended to it.
  std::unique_ptr<DaemonProcess> make_daemon(const nlohmann::json& driver_options = nlohmann::json::object(),
                                             const std::string& extra_config = "");

  // `method` `path` on environment `env` through the router.
  HttpResult http(const DaemonProcess& d, const std::string& env, const std::string& method, const std::string& path,
                  const std::string& body = "") const;
  // `idp create --repo … --branch …` (waits until ready); fails the test otherwise.
  void create(const DaemonProcess& d, const GitRepo& repo, const std::string& branch,
              const std::vector<std::string>& extra = {}) const;
  // `idp status <env> --json`.
  nlohmann::json status(const DaemonProcess& d, const std::string& env) const;
  // `idp logs <env>` (everything).
  std::string logs(const DaemonProcess& d, const std::string& env) const;
  // A variable of the environment's app, through `idp exec <env> -- printenv NAME`.
  std::string app_variable(const DaemonProcess& d, const std::string& env, const std::string& name) const;

  // The home's PostgreSQL port (<home>/db/cluster.json), 0 when none.
  int cluster_port() const;
  // The postmaster's pid from postmaster.pid, 0 when none or dead.
  pid_t postmaster_pid() const;
  // psql -c `sql` as `role` over TCP to `db`.
  util::RunResult psql_as(const std::string& role, const std::string& password, const std::string& db,
                          const std::string& sql) const;
  // psql -c `sql` as the superuser "idp" through the unix socket.
  util::RunResult psql_superuser(const std::string& sql) const;

  TempDir tmp;
  std::string home;
};

} // namespace idp::testing
