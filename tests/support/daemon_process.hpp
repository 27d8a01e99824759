#pragma once
// A real `idp serve` for integration tests: own temporary home, API on port 0, its own
// router port; driven through the real CLI binary and HTTP.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include "util/subprocess.hpp"

namespace idp::testing {

class DaemonProcess {
public:
  // `home` must exist. Extra flags are appended to `idp serve`.
  explicit DaemonProcess(std::string home, std::vector<std::string> extra_flags = {});
  // IDP_LOG_LEVEL for the daemon: tests read its debug lines; benchmarks set "info", a
  // user's default, so that they measure what a user runs.
  std::string log_level = "debug";
  std::string listen = "127.0.0.1:0";            // the API's --listen; a fixed port stays across restarts
  std::map<std::string, std::string> daemon_env; // set in `idp serve`'s environment (before start())
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Starts the daemon and waits until <home>/daemon.json names a live API (throws on timeout).
  void start();
  // SIGTERM and wait for a clean exit; returns its exit code.
  int stop();
  // SIGKILL, no cleanup at all (the crash tests).
  void kill9();
  bool running() const;

  const std::string& home() const { return m_home; }
  const std::string& api_url() const { return m_api_url; }
  int router_port() const { return m_router_port; }
  pid_t pid() const { return m_pid; }
  std::string log() const; // what the daemon printed so far

  // Runs the idp CLI against this daemon, with `env` set in its environment.
  util::RunResult cli(const std::vector<std::string>& args, const std::string& stdin_data = "",
                      const std::map<std::string, std::string>& env = {}) const;
  // GET/POST/DELETE on the API with the admin token; returns status and parsed JSON body
  // (null when not JSON).
  std::pair<long, nlohmann::json> api(const std::string& method, const std::string& path,
                                      const std::string& body = "") const;
  // The same with `token` ("" = no Authorization header) and extra headers (a
  // Content-Type given here replaces the default application/json).
  std::pair<long, nlohmann::json> api_as(const std::string& token, const std::string& method, const std::string& path,
                                         const std::string& body = "",
                                         const std::vector<std::pair<std::string, std::string>>& headers = {}) const;
  // The admin token `idp serve` wrote to <home>/admin.token ("" before it did).
  std::string admin_token() const;
  // The webhook listener's URL (daemon.json's webhook_url: a server config with
  // webhook_listen), "" when there is none.
  std::string webhook_url() const;
  // "Authorization: Bearer <admin token>", for tests that make their own requests.
  std::pair<std::string, std::string> admin_auth_header() const;
  // An environment as JSON (GET), or null when missing.
  nlohmann::json env(const std::string& name) const;
  // Polls until the environment's phase is `phase` (true) or the timeout passes (false).
  bool wait_phase(const std::string& name, const std::string& phase, int timeout_ms) const;
  // GET through the router with Host <env>.<domain>.
  std::pair<long, std::string> get_via_router(const std::string& env, const std::string& path) const;

  // Live processes started for this home (by the IDP_HOME_ID marker the drivers set).
  std::vector<pid_t> home_processes() const;
  // Live Caddy processes of this home.
  std::vector<pid_t> router_processes() const;
  std::string home_id() const;

private:
  std::string m_home;
  std::vector<std::string> m_flags;
  pid_t m_pid = -1;
  std::string m_log_path;
  std::string m_api_url;
  int m_router_port = 0;
};

} // namespace idp::testing
