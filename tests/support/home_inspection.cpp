#include "support/home_inspection.hpp"

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/proc.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {

std::set<std::string> caddy_routes(const std::string& home) {
  auto text = util::read_file(home + "/router/caddy.json");
  if (!text) {
    return {};
  }
  nlohmann::json cfg = nlohmann::json::parse(*text, nullptr, false);
  std::string listen = cfg.is_object() && cfg["admin"].is_object() ? cfg["admin"].value("listen", "") : "";
  util::HttpRequest req;
  if (util::starts_with(listen, "unix/")) {
    req.unix_socket = listen.substr(5);
    req.url = "http://localhost/config/apps/http/servers/idp/routes";
  } else {
    req.url = "http://" + listen + "/config/apps/http/servers/idp/routes";
  }
  auto r = util::http_request(req);
  std::set<std::string> ids;
  if (r && r->status == 200) {
    nlohmann::json routes = nlohmann::json::parse(r->body, nullptr, false);
    if (routes.is_array()) {
      for (const auto& route : routes) {
        ids.insert(route.value("@id", ""));
      }
    }
  }
  return ids;
}

std::multiset<std::string> process_revisions(const DaemonProcess& d, const std::string& env) {
  std::multiset<std::string> out;
  for (pid_t p : d.home_processes()) {
    if (util::process_env_value(p, "IDP_ENVIRONMENT").value_or("") == env) {
      out.insert(util::process_env_value(p, "IDP_REVISION").value_or("?"));
    }
  }
  return out;
}

std::set<std::string> process_environments(const DaemonProcess& d) {
  std::set<std::string> out;
  for (pid_t p : d.home_processes()) {
    if (auto env = util::process_env_value(p, "IDP_ENVIRONMENT")) {
      out.insert(*env);
    }
  }
  return out;
}

std::vector<std::string> revision_dirs(const std::string& home, const std::string& env) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(home + "/envs/" + env, ec)) {
    if (util::starts_with(e.path().filename().string(), "rev-")) {
      out.push_back(e.path().string());
    }
  }
  return out;
}

std::vector<std::string> git_worktrees(const std::string& home) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(home + "/git", ec)) {
    if (!e.is_directory()) {
      continue;
    }
    util::Command c;
    c.argv = {"git", "-C", e.path().string(), "worktree", "list", "--porcelain"};
    auto r = util::run(c);
    if (!r || r->exit_code != 0) {
      continue;
    }
    for (const auto& line : util::split(r->out, '\n')) {
      if (util::starts_with(line, "worktree ") && line.substr(9) != e.path().string()) {
        out.push_back(line.substr(9));
      }
    }
  }
  return out;
}

std::vector<std::string> checkouts(const std::string& home) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& env : std::filesystem::directory_iterator(home + "/envs", ec)) {
    for (const auto& rev : revision_dirs(home, env.path().filename().string())) {
      if (util::is_directory(rev + "/src")) {
        out.push_back(rev + "/src");
      }
    }
  }
  return out;
}

long process_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (util::starts_with(line, "VmRSS:")) {
      return std::atol(line.c_str() + 6);
    }
  }
  return 0;
}

long process_fd_count(pid_t pid) {
  std::error_code ec;
  long n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

std::string process_fd_targets(pid_t pid) {
  std::map<std::string, int> count; // "socket:[…]" collapsed to "socket", "pipe:[…]" to "pipe"
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code rec;
    std::string target = std::filesystem::read_symlink(it->path(), rec).string();
    if (rec) {
      continue; // closed meanwhile
    }
    auto colon = target.find(":[");
    count[colon == std::string::npos ? target : target.substr(0, colon)]++;
  }
  std::string out;
  for (const auto& [target, n] : count) {
    out += "  " + std::to_string(n) + " x " + target + "\n";
  }
  return out;
}

} // namespace idp::testing
