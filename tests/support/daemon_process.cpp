#include "support/daemon_process.hpp"

#include <csignal>
#include <fcntl.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::testing {

DaemonProcess::DaemonProcess(std::string home, std::vector<std::string> extra_flags)
    : m_home(std::move(home)), m_flags(std::move(extra_flags)), m_log_path(m_home + "/serve.out") {}

DaemonProcess::~DaemonProcess() {
  if (running()) {
    stop();
  }
  // Never leave anything of this home running, whatever the test did.
  util::terminate_processes(home_processes(), 2000);
  util::terminate_processes(router_processes(), 2000);
}

std::string DaemonProcess::home_id() const { return util::sha256_hex(util::absolute_path(m_home)).substr(0, 12); }

std::vector<pid_t> DaemonProcess::home_processes() const {
  return util::find_processes_with_env("IDP_HOME_ID", home_id());
}

std::vector<pid_t> DaemonProcess::router_processes() const {
  return util::find_processes_with_env("IDP_ROUTER_HOME_ID", home_id());
}

void DaemonProcess::start() {
  (void)util::remove_all(m_home + "/daemon.json");
  util::Command c;
  c.argv = {idp_binary(), "serve", "--home", m_home, "--listen", listen};
  c.argv.insert(c.argv.end(), m_flags.begin(), m_flags.end());
  c.env = daemon_env;
  c.env["IDP_LOG_LEVEL"] = log_level;
  c.unset_env = {"IDP_SERVER", "IDP_HOME"};
  int fd = ::open(m_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  util::SpawnOptions so;
  so.stdout_fd = fd;
  so.stderr_fd = fd;
  so.detach = false;
  so.new_session = true;
  auto pid = util::spawn(c, so);
  ::close(fd);
  if (!pid) {
    throw std::runtime_error("cannot start idp serve: " + pid.error().message);
  }
  m_pid = *pid;
  bool up = wait_until(
      [&] {
        if (!running()) {
          return true;
        }
        auto text = util::read_file(m_home + "/daemon.json");
        if (!text) {
          return false;
        }
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (!j.is_object() || j.value("pid", 0) != m_pid) {
          return false;
        }
        m_api_url = j.value("api_url", "");
        m_router_port = j.value("router_port", 0);
        return true;
      },
      60000, 20);
  if (!up || !running()) {
    throw std::runtime_error("idp serve did not come up; its output:\n" + log());
  }
}

bool DaemonProcess::running() const {
  if (m_pid <= 0) {
    return false;
  }
  int status = 0;
  pid_t r = ::waitpid(m_pid, &status, WNOHANG);
  if (r == m_pid) {
    const_cast<DaemonProcess*>(this)->m_pid = -1;
    return false;
  }
  return r == 0;
}

int DaemonProcess::stop() {
  if (m_pid <= 0) {
    return -1;
  }
  ::kill(m_pid, SIGTERM);
  auto rc = util::wait_child(m_pid, 60000);
  if (!rc) {
    ::kill(m_pid, SIGKILL);
    rc = util::wait_child(m_pid, 10000);
  }
  m_pid = -1;
  return rc.value_or(-1);
}

void DaemonProcess::kill9() {
  if (m_pid <= 0) {
    return;
  }
  ::kill(m_pid, SIGKILL);
  util::wait_child(m_pid, 10000);
  m_pid = -1;
}

std::string DaemonProcess::log() const { return util::read_file(m_log_path).value_or(""); }

util::RunResult DaemonProcess::cli(const std::vector<std::string>& args, const std::string& stdin_data,
                                   const std::map<std::string, std::string>& env) const {
  util::Command c;
  c.argv = {idp_binary()};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.env = env;
  c.env["IDP_SERVER"] = m_api_url;
  c.env["NO_COLOR"] = "1";
  c.env["IDP_TOKEN"] = admin_token();
  util::RunOptions o;
  o.timeout_ms = 180000;
  if (!stdin_data.empty()) {
    o.stdin_data = stdin_data;
  }
  auto r = util::run(c, o);
  if (!r) {
    throw std::runtime_error("cannot run idp: " + r.error().message);
  }
  return *r;
}

std::string DaemonProcess::admin_token() const {
  return util::trim(util::read_file(m_home + "/admin.token").value_or(""));
}

std::string DaemonProcess::webhook_url() const {
  auto info = nlohmann::json::parse(util::read_file(m_home + "/daemon.json").value_or("{}"), nullptr, false);
  return info.is_object() ? info.value("webhook_url", "") : "";
}

std::pair<std::string, std::string> DaemonProcess::admin_auth_header() const {
  return {"Authorization", "Bearer " + admin_token()};
}

std::pair<long, nlohmann::json> DaemonProcess::api(const std::string& method, const std::string& path,
                                                   const std::string& body) const {
  return api_as(admin_token(), method, path, body);
}

std::pair<long, nlohmann::json>
DaemonProcess::api_as(const std::string& token, const std::string& method, const std::string& path,
                      const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers) const {
  util::HttpRequest req;
  req.method = method;
  req.url = m_api_url + path;
  req.body = body;
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    has_type = has_type || util::to_lower(k) == "content-type";
    req.headers.emplace_back(k, v);
  }
  if (!body.empty() && !has_type) {
    req.headers.emplace_back("Content-Type", "application/json");
  }
  if (!token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + token);
  }
  auto r = util::http_request(req);
  if (!r) {
    return {0, nullptr};
  }
  return {r->status, nlohmann::json::parse(r->body, nullptr, false)};
}

nlohmann::json DaemonProcess::env(const std::string& name) const {
  auto [status, body] = api("GET", "/api/v1/environments/" + name);
  return status == 200 ? body : nlohmann::json(nullptr);
}

bool DaemonProcess::wait_phase(const std::string& name, const std::string& phase, int timeout_ms) const {
  return wait_until(
      [&] {
        auto e = env(name);
        return e.is_object() && e.value("phase", "") == phase;
      },
      timeout_ms, 50);
}

std::pair<long, std::string> DaemonProcess::get_via_router(const std::string& env, const std::string& path) const {
  util::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(m_router_port) + path;
  req.headers = {{"Host", env + ".preview.localhost:" + std::to_string(m_router_port)}};
  req.timeout_ms = 5000;
  auto r = util::http_request(req);
  if (!r) {
    return {0, r.error().message};
  }
  return {r->status, r->body};
}

} // namespace idp::testing
