#include "drivers/local/local_driver_support.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <filesystem>
#include <unistd.h>

#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

const std::vector<std::string>& passthrough_variables() {
  static const std::vector<std::string> k_vars = {
      "PATH",     "HOME",       "USER",        "LOGNAME",  "LANG",          "LC_ALL",
      "LC_CTYPE", "TZ",         "TMPDIR",      "SHELL",    "http_proxy",    "https_proxy",
      "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"};
  return k_vars;
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

Expected<void> check_env_name(std::string_view name) {
  if (!valid_env_name(name)) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid environment name " + util::quote(name) + ": expected lowercase letters, digits and '-'");
  }
  return {};
}

bool vector_has(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string kind_for(const DeploySpec& spec) {
  if (vector_has(spec.components, "web")) {
    return "web";
  }
  if (vector_has(spec.components, "static")) {
    return "static";
  }
  if (vector_has(spec.components, "schedule")) {
    return "job";
  }
  return "none";
}

bool safe_relative_path(const std::string& p) {
  if (p.empty() || p[0] == '/') {
    return false;
  }
  for (const auto& part : util::split(p, '/')) {
    if (part == "..") {
      return false;
    }
  }
  return true;
}

std::string content_hash(const DeploySpec& spec) {
  const auto& c = spec.config;
  // The seed's SQL the engine hands drivers without a checkout is the file at the commit
  // and path hashed below already; left out, so hashes stay what they were before it came.
  nlohmann::json values = spec.template_values;
  if (values.is_object()) {
    values.erase("database_seed");
  }
  nlohmann::json j = {{"commit", spec.env.commit},
                      {"repo", spec.env.repo},
                      {"components", spec.components},
                      {"template_values", values},
                      {"health_check_path", c.health_check_path},
                      {"cpu", c.cpu},
                      {"memory", c.memory},
                      {"log_retention_days", c.log_retention_days},
                      {"environment", c.environment},
                      {"secrets", c.secrets},
                      {"local", {{"build", c.local.build}, {"start", c.local.start}}},
                      {"static", {{"dir", c.static_site.dir}, {"spa", c.static_site.spa}}},
                      {"schedule_expression", c.schedule_expression},
                      {"database", {{"seed", c.database.seed}}}};
  if (c.public_preview) {
    j["public"] = true; // only when set: older records' hashes stay what they were
  }
  return util::sha256_hex(util::json_dump(j)).substr(0, 16);
}

std::string format_secs(int64_t ms) {
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

util::Millis wall_now_ms() { return util::SystemClock().now_ms(); }

std::string self_exe_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "idp";
}

std::string helper_exe_for(const std::string& self_exe) {
  std::string sibling = util::path_join(util::parent_dir(self_exe), k_helper_program);
  return ::access(sibling.c_str(), X_OK) == 0 && !util::is_directory(sibling) ? sibling : self_exe;
}

std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return out;
  }
  while (auto* ent = ::readdir(d)) {
    std::string n = ent->d_name;
    if (n != "." && n != ".." && util::is_directory(util::path_join(dir, n))) {
      out.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> process_environment(pid_t pid) {
  std::map<std::string, std::string> out;
  auto s = util::read_file("/proc/" + std::to_string(pid) + "/environ");
  if (!s) {
    return out;
  }
  size_t start = 0;
  while (start < s->size()) {
    size_t end = s->find('\0', start);
    if (end == std::string::npos) {
      end = s->size();
    }
    std::string kv = s->substr(start, end - start);
    auto eq = kv.find('=');
    if (eq != std::string::npos) {
      out[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    start = end + 1;
  }
  return out;
}

std::string exit_description(const std::string& dir) {
  auto text = util::read_file(util::path_join(dir, "exit.json"));
  if (!text) {
    return "the app is not running";
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    return "the app is not running";
  }
  int sig = j.value("signal", 0);
  if (sig != 0) {
    return "the app was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "the app exited with code " + std::to_string(j.value("code", -1));
}

Error git_error(const Error& e) {
  // A missing commit or an invalid repository will not appear by retrying; a failed
  // fetch might (the remote was unreachable).
  ErrorCode code = e.code == ErrorCode::not_found || e.code == ErrorCode::invalid_argument ? ErrorCode::permanent
                   : e.code == ErrorCode::transient                                        ? ErrorCode::transient
                                                                                           : ErrorCode::permanent;
  return Error(code, e.message);
}

std::string canonical_home(const std::string& home) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(home), ec);
  std::string s = ec ? util::absolute_path(home) : p.string();
  while (s.size() > 1 && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

std::vector<std::string> procs_files_of(const InstanceRecord& inst) {
  std::vector<std::string> out;
  for (const auto& d : inst.cgroup_dirs) {
    out.push_back(util::path_join(d, "cgroup.procs"));
  }
  return out;
}

} // namespace idp::drivers::local
