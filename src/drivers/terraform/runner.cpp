#include "drivers/terraform/runner.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <set>
#include <thread>

#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

extern char** environ;

namespace idp::drivers::terraform {

namespace {

constexpr const char* k_stream = "terraform";
constexpr const char* k_run_marker = "IDP_TF_RUN";
constexpr size_t k_error_lines = 12;

// The first "Error:" of terraform output and the lines after it (the reason), joined.
std::string error_summary(const std::string& output) {
  auto lines = util::split(output, '\n');
  size_t first = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string t = util::trim(lines[i]);
    if (util::starts_with(t, "│")) {
      t = util::trim(t.substr(std::string("│").size()));
    }
    if (util::starts_with(t, "Error:")) {
      first = i;
      break;
    }
  }
  std::vector<std::string> picked;
  if (first == lines.size()) {
    for (const auto& l : util::split(util::tail_lines(output, 5), '\n')) {
      if (!util::trim(l).empty()) {
        picked.push_back(util::trim(l));
      }
    }
  } else {
    for (size_t i = first; i < lines.size() && picked.size() < k_error_lines; ++i) {
      std::string t = util::trim(lines[i]);
      if (util::starts_with(t, "│")) {
        t = util::trim(t.substr(std::string("│").size()));
      }
      if (t.empty() || util::starts_with(t, "╷") || util::starts_with(t, "╵")) {
        continue;
      }
      if (util::starts_with(t, "Terraform acquires a state lock") ||
          util::starts_with(t, "OpenTofu acquires a state lock")) {
        break;
      }
      picked.push_back(t);
    }
  }
  return util::join(picked, "; ");
}

bool contains_any(const std::string& s, const std::vector<std::string>& needles) {
  return std::any_of(needles.begin(), needles.end(),
                     [&](const std::string& n) { return s.find(n) != std::string::npos; });
}

// "terraform_data.environment: Creating..." and the like: a resource is changing.
bool is_change_line(std::string_view line) {
  for (std::string_view verb : {": Creating...", ": Modifying...", ": Destroying..."}) {
    if (line.find(verb) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

// The daemon's own environment, the input of terraform_environment.
std::map<std::string, std::string> daemon_environment() {
  std::map<std::string, std::string> daemon_env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (auto eq = kv.find('='); eq != std::string_view::npos) {
      daemon_env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  return daemon_env;
}

} // namespace

std::string parse_lock_id(std::string_view output) {
  std::string id;
  size_t pos = 0;
  while ((pos = output.find("Lock Info:", pos)) != std::string_view::npos) {
    size_t idpos = output.find("ID:", pos);
    pos += 10;
    if (idpos == std::string_view::npos) {
      break;
    }
    // The ID is the first word after "ID:" (the line may continue in a joined summary).
    size_t start = output.find_first_not_of(" \t", idpos + 3);
    size_t end = start == std::string_view::npos ? start : output.find_first_of(" \t\r\n;", start);
    id = start == std::string_view::npos
             ? ""
             : std::string(output.substr(start, end == std::string_view::npos ? end : end - start));
  }
  return id;
}

std::map<std::string, std::string> terraform_environment(const std::map<std::string, std::string>& daemon_env,
                                                         const std::vector<std::string>& extra_allowed,
                                                         const std::string& work_dir) {
  static const std::set<std::string> k_allowed = {"PATH",
                                                  "TMPDIR",
                                                  "LANG",
                                                  "LC_ALL",
                                                  "TZ",
                                                  "SSL_CERT_FILE",
                                                  "SSL_CERT_DIR",
                                                  "HTTP_PROXY",
                                                  "HTTPS_PROXY",
                                                  "NO_PROXY",
                                                  "http_proxy",
                                                  "https_proxy",
                                                  "no_proxy",
                                                  "TF_CLI_CONFIG_FILE",
                                                  "TF_PLUGIN_CACHE_DIR",
                                                  "TF_LOG",
                                                  "TF_LOG_PROVIDER"};
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : daemon_env) {
    bool allowed = k_allowed.count(name) > 0 || util::starts_with(name, "AWS_") ||
                   std::find(extra_allowed.begin(), extra_allowed.end(), name) != extra_allowed.end();
    if (allowed) {
      out[name] = value;
    }
  }
  // HOME is the work dir, so nothing in the daemon's home is reachable through it; the AWS
  // shared files the SDK would have found there are passed by name instead.
  if (auto home = daemon_env.find("HOME"); home != daemon_env.end() && !home->second.empty()) {
    for (const auto& [var, file] :
         {std::pair<const char*, const char*>{"AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"},
          std::pair<const char*, const char*>{"AWS_CONFIG_FILE", ".aws/config"}}) {
      std::string path = util::path_join(home->second, file);
      if (!out.count(var) && util::path_exists(path)) {
        out[var] = path;
      }
    }
  }
  out["HOME"] = work_dir;
  out["TF_DATA_DIR"] = util::path_join(work_dir, "data");
  out["TF_IN_AUTOMATION"] = "1";
  out["TF_INPUT"] = "0";
  out["CHECKPOINT_DISABLE"] = "1";
  return out;
}

// --- Runner ---

Expected<RunOutcome> Runner::run(const std::string& work_dir, const std::string& root,
                                 const std::vector<std::string>& args, common::LogWriter* log,
                                 const std::atomic<bool>* cancel) const {
  util::Command cmd;
  cmd.argv = {m_opts.binary, "-chdir=" + root};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.env = terraform_environment(daemon_environment(), m_opts.env_allow, work_dir);
  cmd.clear_env = true; // only the allowlist above: no server token, webhook secret or database key
  std::string marker = util::random_hex(8);
  cmd.env[k_run_marker] = marker;
  if (log) {
    (void)log->append("system", "$ " + util::join(std::vector<std::string>(cmd.argv.begin(), cmd.argv.end()), " "));
  }

  // Cancellation: SIGTERM to terraform itself (it stops gracefully and releases its
  // lock), then, after stop_grace_ms, util::run's own TERM/KILL of the whole group.
  std::atomic<bool> hard_cancel{false};
  std::atomic<bool> done{false};
  std::atomic<bool> term_sent{false};
  std::thread watcher;
  int64_t kill_at = 0;
  if (cancel) {
    watcher = std::thread([&] {
      util::thread_main("terraform_watcher", [&] {
        while (!done.load()) {
          if (!term_sent.load() && cancel->load()) {
            for (pid_t pid : util::find_processes_with_env(k_run_marker, marker)) {
              if (util::process_group_of(pid) == pid) { // the session leader: terraform, not a provider
                ::kill(pid, SIGTERM);
              }
            }
            term_sent = true;
            kill_at = util::steady_ms() + m_opts.stop_grace_ms;
          }
          if (term_sent.load() && util::steady_ms() >= kill_at) {
            hard_cancel = true;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      });
    });
  }
  RunOutcome outcome;
  util::RunOptions ro;
  ro.timeout_ms = m_opts.command_timeout_ms;
  ro.merge_stderr = true;
  ro.cancel = &hard_cancel;
  // Failpoints of the crash campaign (docs/hacking.md): at the first line of apply or
  // destroy showing a resource being created, changed or destroyed; terraform holds the
  // state lock then, and the state is half-way. abort and delay only (no error path).
  const std::string command = args.empty() ? std::string() : args[0];
  bool changing_seen = false;
  ro.on_line = [&](std::string_view line, bool) {
    outcome.output.append(line);
    outcome.output += '\n';
    if (log) {
      (void)log->append(k_stream, line);
    }
    if (!changing_seen && is_change_line(line)) {
      changing_seen = true;
      if (command == "apply") {
        (void)IDP_FAILPOINT("terraform.apply.changing"); // nothing to return here
      } else if (command == "destroy") {
        (void)IDP_FAILPOINT("terraform.destroy.changing");
      }
    }
  };
  auto r = util::run(cmd, ro);
  done = true;
  if (watcher.joinable()) {
    watcher.join();
  }
  if (!r) {
    if (r.error().code == ErrorCode::not_found) {
      return make_error(ErrorCode::permanent, "cannot run " + util::quote(m_opts.binary) +
                                                  ": not found; install Terraform or OpenTofu, or set "
                                                  "drivers.terraform.binary");
    }
    return Unexpected(r.error());
  }
  outcome.exit_code = r->signal ? -1 : r->exit_code;
  outcome.cancelled = r->cancelled || term_sent.load();
  outcome.timed_out = r->timed_out;
  return outcome;
}

Error Runner::command_error(const std::string& what, const RunOutcome& r) const {
  std::string summary = error_summary(r.output);
  std::string cmd = m_opts.binary + " " + what;
  if (r.cancelled) {
    return Error(ErrorCode::cancelled, cmd + " was cancelled");
  }
  if (r.timed_out) {
    return Error(ErrorCode::timeout, cmd + " timed out after " + util::format_duration(m_opts.command_timeout_ms) +
                                         (summary.empty() ? "" : ": " + summary));
  }
  const std::string& out = r.output;
  if (out.find("Error acquiring the state lock") != std::string::npos) {
    std::string id = parse_lock_id(out);
    return Error(ErrorCode::conflict, cmd + ": the state is locked" + (id.empty() ? "" : " (lock ID " + id + ")") +
                                          " by another operation; if none is running, break it with idp unlock" +
                                          (summary.empty() ? "" : ": " + summary));
  }
  std::string msg =
      cmd + " failed" + (summary.empty() ? " (exit code " + std::to_string(r.exit_code) + ")" : ": " + summary);
  static const std::vector<std::string> k_invalid = {"Invalid value for variable",
                                                     "No value for required variable",
                                                     "Invalid value for input variable",
                                                     "Variables not allowed",
                                                     "Invalid variable",
                                                     "Invalid multi-line string"};
  if (contains_any(out, k_invalid)) {
    return Error(ErrorCode::invalid_config, msg);
  }
  static const std::vector<std::string> k_transient = {"connection refused",
                                                       "connection reset",
                                                       "i/o timeout",
                                                       "TLS handshake timeout",
                                                       "no such host",
                                                       "Client.Timeout",
                                                       "RequestError: send request failed",
                                                       "ThrottlingException",
                                                       "Throttling:",
                                                       "Rate exceeded",
                                                       "RequestLimitExceeded",
                                                       "TooManyRequests",
                                                       "ServiceUnavailable",
                                                       "InternalError",
                                                       "InternalFailure",
                                                       "StatusCode: 500",
                                                       "StatusCode: 502",
                                                       "StatusCode: 503",
                                                       "StatusCode: 504",
                                                       "DependencyViolation",
                                                       "Failed to query available provider packages",
                                                       "Failed to install provider",
                                                       "context deadline exceeded",
                                                       "is currently in use",
                                                       "OperationAbortedException",
                                                       "ConflictingOperation",
                                                       "Error refreshing state"};
  if (contains_any(out, k_transient)) {
    return Error(ErrorCode::transient, msg);
  }
  return Error(ErrorCode::permanent, msg);
}

Expected<nlohmann::json> Runner::read_outputs(const std::string& work_dir, const std::string& root,
                                              common::LogWriter* log) const {
  // Output values go to status.json, not to the log: they may be large.
  IDP_TRY_ASSIGN(RunOutcome r, run(work_dir, root, {"output", "-json", "-no-color"}, nullptr, nullptr));
  if (r.exit_code != 0) {
    if (log) {
      (void)log->append(k_stream, r.output);
    }
    return Unexpected(command_error("output", r));
  }
  // stdout and stderr are merged: the JSON object is the part from the first '{'
  // (a CLI-config warning may come first).
  auto brace = r.output.find('{');
  auto j = nlohmann::json::parse(brace == std::string::npos ? "{}" : r.output.substr(brace), nullptr, false);
  if (!j.is_object()) {
    return make_error(ErrorCode::permanent, m_opts.binary + " output -json: not a JSON object");
  }
  nlohmann::json flat = nlohmann::json::object();
  for (const auto& [k, v] : j.items()) {
    bool sensitive = v.is_object() && v.value("sensitive", false);
    // Secrets never reach the store or the API.
    flat[k] = sensitive ? nlohmann::json("(sensitive)") : (v.is_object() && v.contains("value") ? v["value"] : v);
  }
  return flat;
}

std::optional<size_t> Runner::state_resource_count(const std::string& work_dir, const std::string& root) const {
  if (!util::path_exists(util::path_join(work_dir, "data/terraform.tfstate"))) {
    return std::nullopt; // never initialised
  }
  auto r = run(work_dir, root, {"state", "list", "-no-color"}, nullptr, nullptr);
  if (!r || r->exit_code != 0) {
    return std::nullopt;
  }
  size_t n = 0;
  for (const auto& line : util::split(r->output, '\n')) {
    std::string t = util::trim(line);
    // Resource addresses: "terraform_data.x", "module.m.aws_x.y", "data.aws_x.y".
    if (!t.empty() && t.find(' ') == std::string::npos && t.find('.') != std::string::npos &&
        !util::starts_with(t, "data.") && t.find(".data.") == std::string::npos) {
      ++n;
    }
  }
  return n;
}

} // namespace idp::drivers::terraform
