#include "drivers/terraform/terraform_driver.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <algorithm>
#include <cstring>
#include <ctime>
#include <set>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/names.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

extern char** environ;

namespace idp::drivers::terraform {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_stream = "terraform";
constexpr const char* k_run_marker = "IDP_TF_RUN";
constexpr size_t k_error_lines = 12;

util::Millis now_ms() { return util::SystemClock().now_ms(); }

std::string hcl_string(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if ((c == '$' || c == '%') && i + 1 < s.size() && s[i + 1] == '{') {
      out += c;
      out += c; // "$${" is a literal "${"
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string lexical_normal(const std::string& p) { return fs::path(p).lexically_normal().string(); }

// Copies `from` to `to` recursively, leaving out what belongs to a previous run or to
// the driver (.terraform, state files, *override.tf*).
Expected<void> copy_module(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) {
    return make_error(ErrorCode::io_error, "cannot create " + util::quote(to.string()) + ": " + ec.message());
  }
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    std::string name = entry.path().filename().string();
    if (name == ".terraform" || util::ends_with(name, ".tfstate") || util::ends_with(name, ".tfstate.backup") ||
        name.find("override.tf") != std::string::npos) {
      continue;
    }
    if (entry.is_directory()) {
      IDP_TRY(copy_module(entry.path(), to / name));
    } else {
      fs::copy_file(entry.path(), to / name, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        return make_error(ErrorCode::io_error, "cannot copy " + util::quote(entry.path().string()) + ": " + ec.message());
      }
    }
  }
  if (ec) {
    return make_error(ErrorCode::io_error, "cannot read " + util::quote(from.string()) + ": " + ec.message());
  }
  return {};
}

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
      if (util::starts_with(t, "Terraform acquires a state lock") || util::starts_with(t, "OpenTofu acquires a state lock")) {
        break;
      }
      picked.push_back(t);
    }
  }
  return util::join(picked, "; ");
}

bool contains_any(const std::string& s, const std::vector<std::string>& needles) {
  return std::any_of(needles.begin(), needles.end(), [&](const std::string& n) { return s.find(n) != std::string::npos; });
}

std::string month_start(const std::tm& tm) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-01", tm.tm_year + 1900, tm.tm_mon + 1);
  return buf;
}

std::string ymd(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

} // namespace

// --- EnvSettings ---

nlohmann::json EnvSettings::to_json() const {
  return {{"template", template_name},    {"template_dir", template_dir}, {"region", region},
          {"backend", backend},           {"state_bucket", state_bucket},
          {"state_region", state_region}, {"dynamodb_table", dynamodb_table},
          {"state_key", state_key},       {"s3_endpoint", s3_endpoint},
          {"dynamodb_endpoint", dynamodb_endpoint}};
}

EnvSettings EnvSettings::from_json(const nlohmann::json& j) {
  EnvSettings s;
  s.template_name = j.value("template", "");
  s.template_dir = j.value("template_dir", "");
  s.region = j.value("region", "");
  s.backend = j.value("backend", "local");
  s.state_bucket = j.value("state_bucket", "");
  s.state_region = j.value("state_region", "");
  s.dynamodb_table = j.value("dynamodb_table", "");
  s.state_key = j.value("state_key", "");
  s.s3_endpoint = j.value("s3_endpoint", "");
  s.dynamodb_endpoint = j.value("dynamodb_endpoint", "");
  return s;
}

// --- free functions ---

nlohmann::json build_tfvars(const core::Environment& env, const core::AppConfig& c, const nlohmann::json& template_values,
                            const ModuleInfo& module, const std::string& region, const TerraformOptions& opts) {
  nlohmann::json all = {
      {"environment_name", env.name},
      {"owner", env.owner.empty() ? "unknown" : env.owner},
      {"template", env.template_name},
      // The ORIGINAL creation time on every apply: the idp:created-at tag never churns.
      {"created_at", util::format_iso8601(env.created_at)},
      {"expires_at", util::format_iso8601(env.expires_at)},
      {"cpu", c.cpu},
      {"memory", c.memory},
      {"log_retention_days", c.log_retention_days},
      {"container_port", c.container_port},
      {"health_check_path", c.health_check_path},
      {"container_image", c.container_image},
      {"environment_variables", c.environment},
      {"secret_variables", c.secrets},
      {"use_shared_networking", c.use_shared_networking.value_or(opts.use_shared_networking)},
      {"spa_fallback", c.static_site.spa},
  };
  if (!region.empty()) {
    all["aws_region"] = region;
  }
  if (!c.schedule_expression.empty()) {
    all["schedule_expression"] = c.schedule_expression;
  }
  if (!c.s3_bucket_arn.empty()) {
    all["s3_bucket_arn"] = c.s3_bucket_arn;
  }
  if (!opts.acm_certificate_arn.empty()) {
    all["acm_certificate_arn"] = opts.acm_certificate_arn;
  }
  if (!opts.route53_zone_id.empty()) {
    all["route53_zone_id"] = opts.route53_zone_id;
  }
  if (!opts.preview_domain.empty()) {
    all["preview_domain"] = opts.preview_domain;
  }
  if (!opts.permissions_boundary_arn.empty()) {
    all["permissions_boundary_arn"] = opts.permissions_boundary_arn;
  }
  for (const auto& [k, v] : opts.variables) {
    all[k] = v;
  }
  if (template_values.is_object()) {
    for (const auto& [k, v] : template_values.items()) {
      all[k] = v;
    }
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : all.items()) {
    if (module.declares(k)) {
      out[k] = v;
    }
  }
  return out;
}

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
    id = start == std::string_view::npos ? "" : std::string(output.substr(start, end == std::string_view::npos ? end : end - start));
  }
  return id;
}

// --- TerraformDriver ---

TerraformDriver::TerraformDriver(DriverContext ctx, TerraformOptions opts)
    : m_ctx(std::move(ctx)), m_opts(std::move(opts)), m_home(util::absolute_path(m_ctx.home)) {}

std::string TerraformDriver::work_dir(const std::string& env) const {
  return util::path_join(util::path_join(m_home, "terraform"), env);
}

std::mutex& TerraformDriver::env_mutex(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mutex);
  auto& m = m_env_mutexes[env];
  if (!m) {
    m = std::make_shared<std::mutex>();
  }
  return *m;
}

std::unique_ptr<common::LogWriter> TerraformDriver::env_log(const std::string& env) const {
  common::LogFileOptions lo;
  lo.max_bytes = m_opts.log_max_bytes;
  lo.keep = m_opts.log_keep;
  return std::make_unique<common::LogWriter>(util::path_join(work_dir(env), "logs"), "app.log", lo, m_ctx.clock);
}

Expected<std::string> TerraformDriver::template_module(const std::string& template_name,
                                                      const std::string& template_dir) const {
  if (!template_dir.empty()) {
    std::string p = util::path_join(template_dir, "terraform");
    if (!util::is_directory(p)) {
      return make_error(ErrorCode::invalid_config, "template " + util::quote(template_name) + " (" + template_dir +
                                                       ") has no terraform/ module");
    }
    return util::absolute_path(p);
  }
  std::vector<std::string> dirs(m_opts.templates_path.rbegin(), m_opts.templates_path.rend());
  dirs.push_back(m_opts.templates_dir);
  for (const auto& d : dirs) {
    std::string p = util::path_join(util::path_join(d, template_name), "terraform");
    if (util::is_directory(p)) {
      return util::absolute_path(p);
    }
  }
  return make_error(ErrorCode::invalid_config, "template " + util::quote(template_name) +
                                                   " has no terraform/ module (looked in " +
                                                   util::join(dirs, ", ") + ")");
}

std::optional<EnvSettings> TerraformDriver::pinned_settings(const std::string& env) const {
  auto text = util::read_file(util::path_join(work_dir(env), "settings.json"));
  if (!text) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  return EnvSettings::from_json(j);
}

Expected<EnvSettings> TerraformDriver::settings_for(const core::Environment& env, const core::AppConfig& config,
                                                    const ModuleInfo& module) const {
  std::string region = config.region.empty() ? m_opts.region : config.region;
  if (auto pinned = pinned_settings(env.name)) {
    if (!config.region.empty() && !pinned->region.empty() && config.region != pinned->region) {
      return make_error(ErrorCode::invalid_config,
                        ".idp/config.yml: key \"region\": environment " + util::quote(env.name) + " lives in " +
                            util::quote(pinned->region) + "; destroy it to move it to " + util::quote(config.region));
    }
    return *pinned;
  }
  auto it = module.variables.find("aws_region");
  if (region.empty() && it != module.variables.end() && !it->second.has_default) {
    return make_error(ErrorCode::invalid_config,
                      "template " + util::quote(env.template_name) +
                          " needs an AWS region: set \"region\" in .idp/config.yml or the driver option "
                          "drivers.terraform.region (or AWS_REGION in the server's environment)");
  }
  EnvSettings s;
  s.template_name = env.template_name;
  s.region = module.declares("aws_region") ? region : "";
  s.backend = m_opts.backend;
  if (s.backend == "s3") {
    s.state_bucket = m_opts.state_bucket;
    s.state_region = m_opts.backend_region();
    s.dynamodb_table = m_opts.dynamodb_table;
    s.state_key = m_opts.state_key_prefix + "/" + env.name + "/" + (s.region.empty() ? "default" : s.region) +
                  "/terraform.tfstate";
    s.s3_endpoint = m_opts.s3_endpoint;
    s.dynamodb_endpoint = m_opts.dynamodb_endpoint;
  }
  return s;
}

Expected<TerraformDriver::Prepared> TerraformDriver::prepare(const core::Environment& env, const core::AppConfig& config,
                                                             const nlohmann::json& template_values,
                                                             const std::string& template_dir) {
  IDP_TRY(core::validate_env_name(env.name));
  IDP_TRY(m_opts.check_secret_arns(config.secrets));
  Prepared p;
  std::string tmpl_name = env.template_name;
  // The engine's catalog decides (apply, plan); without it (destroy, unlock) the directory
  // pinned at the last apply, so all of them use the same module.
  std::string tmpl_root = template_dir;
  if (auto pinned = pinned_settings(env.name); pinned && !pinned->template_name.empty()) {
    tmpl_name = pinned->template_name;
    if (tmpl_root.empty()) {
      tmpl_root = pinned->template_dir;
    }
  }
  IDP_TRY_ASSIGN(std::string tmpl_dir, template_module(tmpl_name, tmpl_root));
  IDP_TRY_ASSIGN(p.module, inspect_module(tmpl_dir));
  IDP_TRY_ASSIGN(p.settings, settings_for(env, config, p.module));
  p.settings.template_dir = util::absolute_path(fs::path(tmpl_dir).parent_path().string());

  // The copy must sit where the template's relative module sources still resolve: at the
  // same path relative to the common ancestor of the template and every module it calls.
  fs::path tmpl = fs::path(lexical_normal(tmpl_dir));
  fs::path root_anchor = tmpl;
  std::vector<fs::path> targets;
  for (const auto& src : p.module.module_sources) {
    if (!util::starts_with(src, "./") && !util::starts_with(src, "../")) {
      continue;
    }
    fs::path target = (tmpl / src).lexically_normal();
    targets.push_back(target);
    fs::path common;
    auto a = root_anchor.begin();
    auto b = target.begin();
    for (; a != root_anchor.end() && b != target.end() && *a == *b; ++a, ++b) {
      common /= *a;
    }
    root_anchor = common;
  }
  std::string work = work_dir(env.name);
  fs::path src_root = fs::path(work) / "src";
  fs::path rel = tmpl.lexically_relative(root_anchor);
  p.root = (src_root / rel).lexically_normal().string();

  // A lock file from an earlier init keeps provider versions stable across applies.
  std::string lock_file = util::path_join(p.root, ".terraform.lock.hcl");
  auto old_lock = util::read_file(lock_file);
  IDP_TRY(util::remove_all(src_root.string()));
  IDP_TRY(copy_module(tmpl, p.root));
  if (old_lock && !util::path_exists(lock_file)) {
    IDP_TRY(util::write_file_atomic(lock_file, *old_lock));
  }
  for (const auto& target : targets) {
    fs::path trel = target.lexically_relative(root_anchor);
    fs::path cur_src = root_anchor;
    fs::path cur_dst = src_root;
    for (const auto& part : trel) {
      cur_src /= part;
      cur_dst /= part;
      std::error_code ec;
      if (fs::exists(fs::symlink_status(cur_dst, ec))) {
        if (fs::is_symlink(fs::symlink_status(cur_dst, ec))) {
          break; // already reached through a link
        }
        continue; // a real directory of the copy: go deeper
      }
      fs::create_directories(cur_dst.parent_path(), ec);
      fs::create_directory_symlink(cur_src, cur_dst, ec);
      if (ec) {
        return make_error(ErrorCode::io_error, "cannot link " + util::quote(cur_dst.string()) + ": " + ec.message());
      }
      break;
    }
  }

  std::string backend;
  if (p.settings.backend == "local") {
    backend = "terraform {\n  backend \"local\" {\n    path = " +
              hcl_string(util::path_join(work, "state/terraform.tfstate")) + "\n  }\n}\n";
  } else {
    backend = "terraform {\n  backend \"s3\" {\n";
    if (!p.settings.s3_endpoint.empty() || !p.settings.dynamodb_endpoint.empty()) {
      // Emulators (s3rver, dynalite, MinIO): their endpoints, path-style requests, and no
      // calls to STS, IMDS or the account lookup.
      backend += "    endpoints = {\n";
      if (!p.settings.s3_endpoint.empty()) {
        backend += "      s3 = " + hcl_string(p.settings.s3_endpoint) + "\n";
      }
      if (!p.settings.dynamodb_endpoint.empty()) {
        backend += "      dynamodb = " + hcl_string(p.settings.dynamodb_endpoint) + "\n";
      }
      backend += "    }\n    use_path_style              = true\n    skip_credentials_validation = true\n"
                 "    skip_requesting_account_id  = true\n    skip_metadata_api_check     = true\n"
                 "    skip_region_validation      = true\n    skip_s3_checksum            = true\n";
    }
    backend += "  }\n}\n";
  }
  IDP_TRY(util::ensure_dir(util::path_join(work, "state")));
  IDP_TRY(util::write_file_atomic(util::path_join(p.root, "backend_override.tf"), backend));
  IDP_TRY(util::write_file_atomic(util::path_join(work, "settings.json"), util::json_dump(p.settings.to_json(), 2) + "\n"));
  p.tfvars = util::path_join(work, "terraform.tfvars.json");
  nlohmann::json vars = build_tfvars(env, config, template_values, p.module, p.settings.region, m_opts);
  IDP_TRY(util::write_file_atomic(p.tfvars, util::json_dump(vars, 2) + "\n", 0600));
  return p;
}

std::vector<std::string> TerraformDriver::init_args(const EnvSettings& s) const {
  std::vector<std::string> args = {"init", "-input=false", "-no-color", "-reconfigure"};
  if (!m_opts.plugin_dir.empty()) {
    args.push_back("-plugin-dir=" + m_opts.plugin_dir);
  }
  if (s.backend == "s3") {
    args.push_back("-backend-config=bucket=" + s.state_bucket);
    args.push_back("-backend-config=key=" + s.state_key);
    args.push_back("-backend-config=region=" + s.state_region);
    args.push_back("-backend-config=encrypt=true");
    if (!s.dynamodb_table.empty()) {
      args.push_back("-backend-config=dynamodb_table=" + s.dynamodb_table);
    }
  }
  return args;
}

std::map<std::string, std::string> terraform_environment(const std::map<std::string, std::string>& daemon_env,
                                                         const std::vector<std::string>& extra_allowed,
                                                         const std::string& work_dir) {
  static const std::set<std::string> k_allowed = {
      "PATH", "TMPDIR", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
      "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
      "TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR", "TF_LOG", "TF_LOG_PROVIDER"};
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
    for (const auto& [var, file] : {std::pair<const char*, const char*>{"AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"},
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

std::map<std::string, std::string> TerraformDriver::command_env(const std::string& env) const {
  std::map<std::string, std::string> daemon_env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (auto eq = kv.find('='); eq != std::string_view::npos) {
      daemon_env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  return terraform_environment(daemon_env, m_opts.env_allow, work_dir(env));
}

Expected<TerraformDriver::RunOutcome> TerraformDriver::run_tf(const std::string& env, const std::string& root,
                                                              const std::vector<std::string>& args,
                                                              common::LogWriter* log,
                                                              const std::atomic<bool>* cancel) const {
  util::Command cmd;
  cmd.argv = {m_opts.binary, "-chdir=" + root};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.env = command_env(env);
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
  ro.on_line = [&](std::string_view line, bool) {
    outcome.output.append(line);
    outcome.output += '\n';
    if (log) {
      (void)log->append(k_stream, line);
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

Error TerraformDriver::command_error(const std::string& what, const RunOutcome& r) const {
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
  std::string msg = cmd + " failed" + (summary.empty() ? " (exit code " + std::to_string(r.exit_code) + ")" : ": " + summary);
  static const std::vector<std::string> k_invalid = {
      "Invalid value for variable", "No value for required variable", "Invalid value for input variable",
      "Variables not allowed", "Invalid variable", "Invalid multi-line string"};
  if (contains_any(out, k_invalid)) {
    return Error(ErrorCode::invalid_config, msg);
  }
  static const std::vector<std::string> k_transient = {
      "connection refused", "connection reset", "i/o timeout", "TLS handshake timeout", "no such host",
      "Client.Timeout", "RequestError: send request failed", "ThrottlingException", "Throttling:", "Rate exceeded",
      "RequestLimitExceeded", "TooManyRequests", "ServiceUnavailable", "InternalError", "InternalFailure",
      "StatusCode: 500", "StatusCode: 502", "StatusCode: 503", "StatusCode: 504", "DependencyViolation",
      "Failed to query available provider packages", "Failed to install provider", "context deadline exceeded",
      "is currently in use", "OperationAbortedException", "ConflictingOperation", "Error refreshing state"};
  if (contains_any(out, k_transient)) {
    return Error(ErrorCode::transient, msg);
  }
  return Error(ErrorCode::permanent, msg);
}

Expected<nlohmann::json> TerraformDriver::read_outputs(const std::string& env, const std::string& root,
                                                       common::LogWriter* log) const {
  // Output values go to status.json, not to the log: they may be large.
  IDP_TRY_ASSIGN(RunOutcome r, run_tf(env, root, {"output", "-json", "-no-color"}, nullptr, nullptr));
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

std::optional<size_t> TerraformDriver::state_resource_count(const std::string& env, const std::string& root) const {
  if (!util::path_exists(util::path_join(work_dir(env), "data/terraform.tfstate"))) {
    return std::nullopt; // never initialised
  }
  auto r = run_tf(env, root, {"state", "list", "-no-color"}, nullptr, nullptr);
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

Expected<void> TerraformDriver::start(const std::vector<core::Environment>& live) {
  std::string dir = util::path_join(m_home, "terraform");
  IDP_TRY(util::ensure_dir(dir));
  std::set<std::string> keep;
  for (const auto& e : live) {
    keep.insert(e.name);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_directory() || keep.count(name)) {
      continue;
    }
    // Not live in the store: whatever is left (resources, state) is an orphan.
    auto pinned = pinned_settings(name);
    core::Environment orphan;
    orphan.name = name;
    orphan.template_name = pinned ? pinned->template_name : "";
    std::lock_guard<std::mutex> g(env_mutex(name));
    auto destroyed = destroy_locked(orphan, nullptr);
    if (destroyed) {
      spdlog::info("terraform: destroyed leftovers of environment {} (not live)", name);
    } else {
      spdlog::warn("terraform: environment {} is not live, but destroying its leftovers failed: {}", name,
                   destroyed.error().full_message());
    }
  }
  return {};
}

Expected<void> TerraformDriver::plan(const DeploySpec& spec) {
  IDP_TRY(core::validate_env_name(spec.env.name));
  // Secrets become ECS valueFrom references: only ARNs mean anything to AWS (a name of the
  // server's secret store is injected by the local runtime only).
  for (const auto& [var, ref] : spec.config.secrets) {
    if (!core::is_secret_arn(ref)) {
      return make_error(ErrorCode::invalid_config, "secrets." + var +
                                                       ": the terraform runtime takes an ARN (Secrets Manager or SSM), "
                                                       "got the secret store name " + util::quote(ref));
    }
  }
  IDP_TRY(m_opts.check_secret_arns(spec.config.secrets));
  IDP_TRY_ASSIGN(std::string tmpl_dir, template_module(spec.env.template_name, spec.template_dir));
  IDP_TRY_ASSIGN(ModuleInfo module, inspect_module(tmpl_dir));
  IDP_TRY_ASSIGN(EnvSettings settings, settings_for(spec.env, spec.config, module));
  nlohmann::json vars = build_tfvars(spec.env, spec.config, spec.template_values, module, settings.region, m_opts);
  for (const auto& [name, var] : module.variables) {
    if (!var.has_default && !vars.contains(name)) {
      return make_error(ErrorCode::invalid_config, "template " + util::quote(spec.env.template_name) +
                                                       " needs the variable " + util::quote(name) +
                                                       ", which idp cannot supply (set drivers.terraform.var_" + name +
                                                       ")");
    }
  }
  return {};
}

Expected<ApplyResult> TerraformDriver::apply(const DeploySpec& spec, Progress& progress) {
  const std::string& name = spec.env.name;
  std::lock_guard<std::mutex> g(env_mutex(name));
  IDP_TRY(plan(spec));
  auto log = env_log(name);
  std::string work = work_dir(name);
  auto fail = [&](const Error& e) -> Expected<ApplyResult> {
    (void)log->append("system", "apply failed: " + e.message);
    nlohmann::json status = nlohmann::json::object();
    if (auto t = util::read_file(util::path_join(work, "status.json"))) {
      status = nlohmann::json::parse(*t, nullptr, false);
      if (!status.is_object()) {
        status = nlohmann::json::object();
      }
    }
    status["last_error"] = e.message;
    status["last_error_code"] = std::string(error_code_name(e.code));
    status["last_apply_ok"] = false;
    (void)util::write_file_atomic(util::path_join(work, "status.json"), util::json_dump(status, 2) + "\n");
    return Unexpected(e.with_context("environment " + util::quote(name)));
  };
  (void)log->append("system", "apply of " + (spec.env.commit.empty() ? std::string("(no commit)") : spec.env.commit) +
                                  " with template " + util::quote(spec.env.template_name));
  progress.step("preparing the terraform working directory");
  auto prepared = prepare(spec.env, spec.config, spec.template_values, spec.template_dir);
  if (!prepared) {
    return fail(prepared.error());
  }
  progress.step("terraform init");
  IDP_TRY_ASSIGN(RunOutcome init, run_tf(name, prepared->root, init_args(prepared->settings), log.get(),
                                         progress.cancel_flag()));
  if (init.exit_code != 0) {
    return fail(command_error("init", init));
  }
  progress.step("terraform apply");
  progress.revision_status(core::RevisionStatus::starting, "terraform apply");
  std::vector<std::string> args = {"apply", "-input=false", "-no-color", "-auto-approve",
                                   "-lock-timeout=" + std::to_string(m_opts.lock_timeout_ms / 1000) + "s",
                                   "-var-file=" + prepared->tfvars};
  IDP_TRY_ASSIGN(RunOutcome applied, run_tf(name, prepared->root, args, log.get(), progress.cancel_flag()));
  if (applied.exit_code != 0 || applied.cancelled) {
    return fail(command_error("apply", applied));
  }
  progress.step("terraform output");
  auto outputs = read_outputs(name, prepared->root, log.get());
  if (!outputs) {
    return fail(outputs.error());
  }
  ApplyResult result;
  if (outputs->contains("endpoint") && (*outputs)["endpoint"].is_string()) {
    result.url = (*outputs)["endpoint"].get<std::string>();
  }
  result.outputs = *outputs;
  nlohmann::json status = {{"last_apply_ok", true},
                           {"applied_at", util::format_iso8601(now_ms())},
                           {"outputs", *outputs},
                           {"cloud", prepared->module.providers.count("aws") > 0}};
  IDP_TRY(util::write_file_atomic(util::path_join(work, "status.json"), util::json_dump(status, 2) + "\n"));
  (void)log->append("system", "applied" + (result.url.empty() ? std::string() : ": " + result.url));
  return result;
}

std::optional<AwsClient> TerraformDriver::aws_client(const std::string& region) const {
  auto creds = util::aws_credentials_from_env();
  if (!creds) {
    return std::nullopt;
  }
  std::map<std::string, std::string> eps;
  if (!m_opts.s3_endpoint.empty()) {
    eps["s3"] = m_opts.s3_endpoint;
  }
  if (!m_opts.dynamodb_endpoint.empty()) {
    eps["dynamodb"] = m_opts.dynamodb_endpoint;
  }
  return AwsClient(*creds, region, m_opts.aws_endpoint, eps, m_ctx.clock);
}

Expected<Observation> TerraformDriver::observe_ecs(const std::string& region, const nlohmann::json& outputs) const {
  Observation obs;
  std::string cluster = outputs.value("cluster_name", outputs.value("cluster_arn", ""));
  std::string service = outputs.value("service_name", "");
  auto client = aws_client(region);
  if (!client) {
    obs.health = Health::unknown;
    obs.detail = "no AWS credentials in the server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): "
                 "cannot ask ECS about service " + util::quote(service);
    return obs;
  }
  auto resp = client->ecs_describe_services(cluster, {service});
  if (!resp) {
    obs.health = Health::unknown;
    obs.detail = "ECS: " + resp.error().message;
    return obs;
  }
  auto services = resp->value("services", nlohmann::json::array());
  if (services.empty()) {
    obs.health = Health::not_running;
    obs.detail = "ECS service " + util::quote(service) + " not found in cluster " + util::quote(cluster);
    return obs;
  }
  const auto& s = services[0];
  int running = s.value("runningCount", 0);
  int desired = s.value("desiredCount", 0);
  int pending = s.value("pendingCount", 0);
  obs.status = {{"cluster", cluster},
                {"service", service},
                {"status", s.value("status", "")},
                {"running_count", running},
                {"desired_count", desired},
                {"pending_count", pending},
                {"deployments", nlohmann::json::array()}};
  for (const auto& d : s.value("deployments", nlohmann::json::array())) {
    obs.status["deployments"].push_back({{"status", d.value("status", "")},
                                         {"rollout_state", d.value("rolloutState", "")},
                                         {"rollout_reason", d.value("rolloutStateReason", "")},
                                         {"task_definition", d.value("taskDefinition", "")},
                                         {"running_count", d.value("runningCount", 0)},
                                         {"failed_tasks", d.value("failedTasks", 0)}});
  }
  if (s.value("status", "") != "ACTIVE" || desired == 0) {
    obs.health = Health::not_running;
    obs.detail = "ECS service " + util::quote(service) + " is " + s.value("status", "?") + " with " +
                 std::to_string(desired) + " desired task(s)";
    return obs;
  }
  std::string tg;
  for (const auto& lb : s.value("loadBalancers", nlohmann::json::array())) {
    tg = lb.value("targetGroupArn", "");
  }
  int healthy_targets = 0;
  std::vector<std::string> bad;
  if (!tg.empty()) {
    auto targets = client->elbv2_describe_target_health(tg);
    if (targets) {
      nlohmann::json tj = nlohmann::json::array();
      for (const auto& t : *targets) {
        tj.push_back({{"id", t.id}, {"port", t.port}, {"state", t.state}, {"reason", t.reason},
                      {"description", t.description}});
        if (t.state == "healthy") {
          ++healthy_targets;
        } else {
          bad.push_back(t.id + ":" + std::to_string(t.port) + " " + t.state +
                        (t.description.empty() ? "" : " (" + t.description + ")"));
        }
      }
      obs.status["targets"] = tj;
    } else {
      obs.warnings.push_back("target health: " + targets.error().message);
    }
  }
  std::string counts = std::to_string(running) + "/" + std::to_string(desired) + " task(s) running";
  if (running < desired || (!tg.empty() && healthy_targets == 0)) {
    obs.health = Health::unhealthy;
    obs.detail = counts + (bad.empty() ? "" : "; targets: " + util::join(bad, ", "));
    return obs;
  }
  obs.health = Health::healthy;
  obs.detail = counts + (tg.empty() ? "" : ", " + std::to_string(healthy_targets) + " healthy target(s)");
  return obs;
}

Expected<Observation> TerraformDriver::observe(const core::Environment& env) {
  Observation obs;
  std::string work = work_dir(env.name);
  auto pinned = pinned_settings(env.name);
  if (!pinned) {
    obs.health = Health::not_running;
    obs.detail = "not applied";
    return obs;
  }
  nlohmann::json status = nlohmann::json::object();
  if (auto t = util::read_file(util::path_join(work, "status.json"))) {
    status = nlohmann::json::parse(*t, nullptr, false);
    if (!status.is_object()) {
      status = nlohmann::json::object();
    }
  }
  bool ever_applied = status.contains("outputs");
  if (status.contains("last_error") && !status.value("last_apply_ok", false)) {
    obs.warnings.push_back("last apply failed: " + status.value("last_error", ""));
  }
  nlohmann::json outputs = status.value("outputs", nlohmann::json::object());
  if (status.value("cloud", false) && outputs.contains("service_name") && outputs["service_name"].is_string()) {
    std::string region = outputs.value("aws_region", pinned->region);
    IDP_TRY_ASSIGN(Observation o, observe_ecs(region, outputs));
    o.warnings.insert(o.warnings.end(), obs.warnings.begin(), obs.warnings.end());
    return o;
  }
  // No service to ask (tf-test, scheduled-worker, static-site): the state tells.
  std::string root;
  for (const auto& entry : fs::recursive_directory_iterator(
           util::path_join(work, "src"), fs::directory_options::skip_permission_denied)) {
    if (entry.path().filename() == "backend_override.tf") {
      root = entry.path().parent_path().string();
      break;
    }
  }
  auto count = root.empty() ? std::nullopt : state_resource_count(env.name, root);
  obs.status = {{"resources", count ? nlohmann::json(*count) : nlohmann::json()}, {"backend", pinned->backend}};
  if (!count) {
    obs.health = ever_applied ? Health::unknown : Health::not_running;
    obs.detail = ever_applied ? "cannot read the state" : "not applied";
    return obs;
  }
  if (*count == 0) {
    obs.health = Health::not_running;
    obs.detail = "the state has no resources";
    return obs;
  }
  if (!ever_applied) {
    obs.health = Health::unhealthy;
    obs.detail = std::to_string(*count) + " resource(s) from a failed first apply";
    return obs;
  }
  obs.health = Health::healthy;
  obs.detail = std::to_string(*count) + " resource(s) in the state";
  return obs;
}

Expected<void> TerraformDriver::destroy(const core::Environment& env, Progress& progress) {
  std::lock_guard<std::mutex> g(env_mutex(env.name));
  return destroy_locked(env, &progress);
}

Expected<void> TerraformDriver::destroy_locked(const core::Environment& env, Progress* progress) {
  IDP_TRY(core::validate_env_name(env.name));
  std::string work = work_dir(env.name);
  auto pinned = pinned_settings(env.name);
  if (!pinned && m_opts.backend == "local") {
    // Local state lives in the work directory: without it nothing was ever applied.
    IDP_TRY(util::remove_all(work));
    return {};
  }
  auto config = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
  core::AppConfig cfg = config ? *config : core::AppConfig{};
  core::Environment e = env;
  if (pinned && !pinned->template_name.empty()) {
    e.template_name = pinned->template_name;
  }
  if (e.template_name.empty()) {
    return make_error(ErrorCode::permanent, "environment " + util::quote(env.name) +
                                                ": cannot destroy: its template is unknown (no settings.json)");
  }
  if (e.created_at == 0) {
    e.created_at = now_ms();
    e.expires_at = e.created_at;
  }
  auto log = env_log(env.name);
  (void)log->append("system", "destroy");
  if (progress) {
    progress->step("preparing the terraform working directory");
  }
  IDP_TRY_ASSIGN(Prepared p, prepare(e, cfg, nlohmann::json::object()));
  const std::atomic<bool>* cancel = progress ? progress->cancel_flag() : nullptr;
  if (progress) {
    progress->step("terraform init");
  }
  IDP_TRY_ASSIGN(RunOutcome init, run_tf(env.name, p.root, init_args(p.settings), log.get(), cancel));
  if (init.exit_code != 0) {
    return Unexpected(command_error("init", init).with_context("environment " + util::quote(env.name)));
  }
  if (progress) {
    progress->step("terraform destroy");
  }
  std::vector<std::string> args = {"destroy", "-input=false", "-no-color", "-auto-approve",
                                   "-lock-timeout=" + std::to_string(m_opts.lock_timeout_ms / 1000) + "s",
                                   "-var-file=" + p.tfvars};
  IDP_TRY_ASSIGN(RunOutcome destroyed, run_tf(env.name, p.root, args, log.get(), cancel));
  if (destroyed.exit_code != 0 || destroyed.cancelled) {
    return Unexpected(command_error("destroy", destroyed).with_context("environment " + util::quote(env.name)));
  }
  if (p.settings.backend == "s3") {
    // The state object and its digest item: without deleting the digest, re-creating the
    // same name fails with "state data in S3 does not have the expected content".
    auto client = aws_client(p.settings.state_region);
    if (!client) {
      return make_error(ErrorCode::invalid_config,
                        "environment " + util::quote(env.name) +
                            ": destroyed, but the state object cannot be deleted: no AWS credentials in the "
                            "server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
    }
    IDP_TRY(client->s3_delete_object(p.settings.state_bucket, p.settings.state_key, p.settings.state_region));
    if (!p.settings.dynamodb_table.empty()) {
      IDP_TRY(client->dynamodb_delete_lock_item(p.settings.dynamodb_table, p.settings.lock_id() + "-md5",
                                                p.settings.state_region));
    }
  }
  log.reset();
  IDP_TRY(util::remove_all(work));
  return {};
}

Expected<LogChunk> TerraformDriver::read_logs(const core::Environment& env, const LogQuery& q) {
  // Cursor: "<local cursor>" or "<local cursor>|cw:<next start ms>".
  std::string local_cursor = q.cursor;
  util::Millis cw_from = q.since;
  bool had_cw = false;
  if (auto bar = q.cursor.rfind("|cw:"); bar != std::string::npos) {
    local_cursor = q.cursor.substr(0, bar);
    cw_from = std::max<util::Millis>(cw_from, std::atoll(q.cursor.c_str() + bar + 4));
    had_cw = true;
  }
  common::LogReader reader(util::path_join(work_dir(env.name), "logs"), "app.log");
  LogQuery lq = q;
  lq.cursor = local_cursor;
  lq.tail = 0;
  IDP_TRY_ASSIGN(LogChunk chunk, reader.read(lq));

  nlohmann::json status = nlohmann::json::object();
  if (auto t = util::read_file(util::path_join(work_dir(env.name), "status.json"))) {
    status = nlohmann::json::parse(*t, nullptr, false);
  }
  bool cloud = status.is_object() && status.value("cloud", false);
  nlohmann::json outputs = status.is_object() ? status.value("outputs", nlohmann::json::object()) : nlohmann::json();
  std::string cw_cursor;
  if (cloud && outputs.is_object() && outputs.contains("log_group")) {
    std::string region = outputs.value("aws_region", "");
    if (auto client = aws_client(region.empty() ? m_opts.region : region)) {
      std::string group = outputs.value("log_group", "/ecs/idp-" + env.name);
      std::string token;
      util::Millis last = cw_from;
      for (int page = 0; page < 10; ++page) {
        auto r = client->logs_filter_log_events(group, cw_from, token);
        if (!r) {
          chunk.lines.push_back({now_ms(), "system", "cloudwatch logs: " + r.error().message});
          break;
        }
        for (const auto& e : r->events) {
          chunk.lines.push_back({e.timestamp, "stdout", e.message});
          last = std::max(last, e.timestamp + 1);
        }
        token = r->next_token;
        if (token.empty()) {
          break;
        }
      }
      cw_cursor = "|cw:" + std::to_string(last);
    }
  } else if (had_cw) {
    cw_cursor = "|cw:" + std::to_string(cw_from);
  }
  std::stable_sort(chunk.lines.begin(), chunk.lines.end(), [](const LogLine& a, const LogLine& b) { return a.at < b.at; });
  if (q.tail > 0 && chunk.lines.size() > q.tail) {
    chunk.lines.erase(chunk.lines.begin(), chunk.lines.end() - static_cast<ptrdiff_t>(q.tail));
  }
  if (!cw_cursor.empty()) {
    chunk.cursor += cw_cursor;
  }
  return chunk;
}

Expected<std::string> TerraformDriver::unlock(const core::Environment& env) {
  IDP_TRY(core::validate_env_name(env.name));
  std::string work = work_dir(env.name);
  auto pinned = pinned_settings(env.name);
  EnvSettings s;
  if (pinned) {
    s = *pinned;
  } else if (m_opts.backend == "local") {
    return "environment " + util::quote(env.name) + " is not locked (it has no terraform state)";
  }

  std::string id;
  std::string holder;
  if (s.backend == "local") {
    std::string state = util::path_join(work, "state/terraform.tfstate");
    std::string info_path = util::path_join(work, "state/.terraform.tfstate.lock.info");
    auto info_text = util::read_file(info_path);
    if (!info_text) {
      return "environment " + util::quote(env.name) + " is not locked";
    }
    auto info = nlohmann::json::parse(*info_text, nullptr, false);
    id = info.is_object() ? info.value("ID", "") : "";
    // The local backend locks with fcntl: the lock lives exactly as long as its process.
    int fd = ::open(state.c_str(), O_RDONLY | O_CLOEXEC);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    bool held = fd >= 0 && ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    pid_t pid = held ? fl.l_pid : 0;
    if (fd >= 0) {
      ::close(fd);
    }
    if (held) {
      return make_error(ErrorCode::conflict,
                        "environment " + util::quote(env.name) + ": state lock " + util::quote(id) +
                            " is held by running process " + std::to_string(pid) +
                            "; a local-state lock ends with its process (stop it, or cancel the operation)");
    }
    IDP_TRY(util::remove_all(info_path));
    return "environment " + util::quote(env.name) + ": removed the stale lock record " + util::quote(id) +
           " (no process held the lock)";
  }

  // s3: the lock item in DynamoDB, else the lock ID of the last lock error in the log.
  if (!s.dynamodb_table.empty()) {
    if (auto client = aws_client(s.state_region)) {
      auto item = client->dynamodb_get_lock_item(s.dynamodb_table, s.lock_id(), s.state_region);
      if (item && !*item) {
        return "environment " + util::quote(env.name) + " is not locked";
      }
      if (item && (**item).contains("Info")) {
        auto info = nlohmann::json::parse((**item)["Info"].value("S", ""), nullptr, false);
        if (info.is_object()) {
          id = info.value("ID", "");
          holder = info.value("Operation", "") + " by " + info.value("Who", "?") + " since " + info.value("Created", "?");
        }
      }
    }
  }
  if (id.empty()) {
    common::LogReader reader(util::path_join(work, "logs"), "app.log");
    if (auto chunk = reader.read({})) {
      std::string text;
      for (const auto& l : chunk->lines) {
        text += l.text + "\n";
      }
      id = parse_lock_id(text);
    }
  }
  if (id.empty()) {
    return "environment " + util::quote(env.name) + ": no state lock found";
  }
  // force-unlock needs an initialised working directory; an apply waiting for this very
  // lock has one already, so init only when it is missing (first apply failed in init).
  std::string root;
  if (util::is_directory(util::path_join(work, "src"))) {
    for (const auto& entry : fs::recursive_directory_iterator(util::path_join(work, "src"))) {
      if (entry.path().filename() == "backend_override.tf") {
        root = entry.path().parent_path().string();
        break;
      }
    }
  }
  auto log = env_log(env.name);
  if (root.empty() || !util::path_exists(util::path_join(work, "data/terraform.tfstate"))) {
    // Initialising rewrites the working directory: never beside an operation of ours
    // that may be initialising or applying in it right now.
    std::unique_lock<std::mutex> g(env_mutex(env.name), std::try_to_lock);
    if (!g.owns_lock()) {
      return make_error(ErrorCode::conflict,
                        "environment " + util::quote(env.name) +
                            ": an operation of this server is preparing its working directory; the lock it "
                            "holds ends with it (wait for it, or cancel it, then unlock again if needed)");
    }
    auto cfg = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
    core::Environment e = env;
    e.template_name = s.template_name.empty() ? env.template_name : s.template_name;
    IDP_TRY_ASSIGN(Prepared p, prepare(e, cfg ? *cfg : core::AppConfig{}, nlohmann::json::object()));
    root = p.root;
    IDP_TRY_ASSIGN(RunOutcome init, run_tf(env.name, root, init_args(s), log.get(), nullptr));
    if (init.exit_code != 0) {
      return Unexpected(command_error("init", init).with_context("environment " + util::quote(env.name)));
    }
  }
  (void)log->append("system", "breaking state lock " + id);
  IDP_TRY_ASSIGN(RunOutcome r, run_tf(env.name, root, {"force-unlock", "-force", "-no-color", id}, log.get(), nullptr));
  if (r.exit_code != 0) {
    if (r.output.find("failed to retrieve lock info") != std::string::npos ||
        r.output.find("No lock") != std::string::npos) {
      return "environment " + util::quote(env.name) + " is not locked (lock " + util::quote(id) + " is gone)";
    }
    return Unexpected(command_error("force-unlock", r).with_context("environment " + util::quote(env.name)));
  }
  return "environment " + util::quote(env.name) + ": broke state lock " + util::quote(id) +
         (holder.empty() ? "" : " (" + holder + ")");
}

Expected<nlohmann::json> TerraformDriver::exec(const core::Environment& env, const std::vector<std::string>& argv) {
  return make_error(ErrorCode::invalid_argument, "exec is not supported on terraform runtime; use ECS Exec "
                                                 "(aws ecs execute-command) with enable_execute_command = true");
}

Expected<nlohmann::json> TerraformDriver::cost(const core::Environment& env) {
  auto client = aws_client("us-east-1");
  if (!client) {
    return make_error(ErrorCode::invalid_config, "cost needs AWS credentials in the server's environment "
                                                 "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
  }
  std::time_t now = static_cast<std::time_t>((m_ctx.clock ? m_ctx.clock->now_ms() : now_ms()) / 1000);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::string start = month_start(tm);
  std::string today = ymd(now);
  std::string end = ymd(now + 86400); // end is exclusive: include today
  if (start == end) {
    start = today;
  }
  IDP_TRY_ASSIGN(nlohmann::json r, client->ce_get_cost_and_usage("idp:environment", env.name, start, end));
  double mtd = 0;
  std::string unit = "USD";
  nlohmann::json days = nlohmann::json::array();
  std::vector<double> complete; // days before today
  for (const auto& p : r.value("ResultsByTime", nlohmann::json::array())) {
    std::string day = p.value("TimePeriod", nlohmann::json::object()).value("Start", "");
    auto total = p.value("Total", nlohmann::json::object()).value("UnblendedCost", nlohmann::json::object());
    double amount = std::atof(total.value("Amount", "0").c_str());
    unit = total.value("Unit", unit);
    mtd += amount;
    days.push_back({{"date", day}, {"amount", amount}, {"estimated", p.value("Estimated", false)}});
    if (day < today) {
      complete.push_back(amount);
    }
  }
  // Daily burn: the mean of the last (up to) 3 complete days; today is still accruing.
  double burn = 0;
  size_t n = std::min<size_t>(3, complete.size());
  for (size_t i = complete.size() - n; i < complete.size(); ++i) {
    burn += complete[i];
  }
  burn = n > 0 ? burn / static_cast<double>(n) : mtd;
  int days_in_month = 31;
  for (int d = 28; d <= 31; ++d) {
    std::tm probe = tm;
    probe.tm_mday = d;
    probe.tm_hour = 12;
    std::time_t t = ::timegm(&probe);
    std::tm back{};
    ::gmtime_r(&t, &back);
    if (back.tm_mon == tm.tm_mon) {
      days_in_month = d;
    }
  }
  int remaining = days_in_month - tm.tm_mday; // days after today
  double today_amount = days.empty() ? 0 : days.back().value("amount", 0.0);
  double projected = mtd + burn * remaining + std::max(0.0, burn - today_amount);
  return nlohmann::json{{"environment", env.name},
                        {"currency", unit},
                        {"month_to_date", mtd},
                        {"daily_burn", burn},
                        {"projected_month", projected},
                        {"period", {{"start", start}, {"end", end}}},
                        {"days", days},
                        {"source", "AWS Cost Explorer, tag idp:environment (activate it as a cost allocation tag)"}};
}

} // namespace idp::drivers::terraform
