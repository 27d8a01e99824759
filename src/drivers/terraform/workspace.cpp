#include "drivers/terraform/workspace.hpp"

#include <filesystem>

#include "core/names.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::terraform {

namespace fs = std::filesystem;

namespace {

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
        return make_error(ErrorCode::io_error,
                          "cannot copy " + util::quote(entry.path().string()) + ": " + ec.message());
      }
    }
  }
  if (ec) {
    return make_error(ErrorCode::io_error, "cannot read " + util::quote(from.string()) + ": " + ec.message());
  }
  return {};
}

} // namespace

// --- EnvSettings ---

nlohmann::json EnvSettings::to_json() const {
  return {{"template", template_name},
          {"template_dir", template_dir},
          {"region", region},
          {"backend", backend},
          {"state_bucket", state_bucket},
          {"state_region", state_region},
          {"dynamodb_table", dynamodb_table},
          {"state_key", state_key},
          {"s3_endpoint", s3_endpoint},
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

nlohmann::json build_tfvars(const core::Environment& env, const core::AppConfig& c,
                            const nlohmann::json& template_values, const ModuleInfo& module, const std::string& region,
                            const TerraformOptions& opts) {
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
  if (auto team = opts.team_of.find(env.owner); team != opts.team_of.end()) {
    all["team"] = team->second; // tagged idp:team: AWS Budgets and Cost Explorer by team
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
  if (env.untrusted()) {
    // Last: neither drivers.terraform.var_* nor the template's values may widen it.
    all["egress_cidrs"] = opts.untrusted_egress_cidrs;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : all.items()) {
    if (module.declares(k)) {
      out[k] = v;
    }
  }
  return out;
}

// --- Workspace ---

std::string Workspace::base_dir() const { return util::path_join(m_home, "terraform"); }

std::string Workspace::dir(const std::string& env) const { return util::path_join(base_dir(), env); }

Expected<std::string> Workspace::template_module(const std::string& template_name,
                                                 const std::string& template_dir) const {
  if (!template_dir.empty()) {
    std::string p = util::path_join(template_dir, "terraform");
    if (!util::is_directory(p)) {
      return make_error(ErrorCode::invalid_config,
                        "template " + util::quote(template_name) + " (" + template_dir + ") has no terraform/ module");
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
                                                   " has no terraform/ module (looked in " + util::join(dirs, ", ") +
                                                   ")");
}

std::optional<EnvSettings> Workspace::pinned_settings(const std::string& env) const {
  auto text = util::read_file(util::path_join(dir(env), "settings.json"));
  if (!text) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  return EnvSettings::from_json(j);
}

Expected<EnvSettings> Workspace::settings_for(const core::Environment& env, const core::AppConfig& config,
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

Expected<Workspace::Prepared> Workspace::prepare(const core::Environment& env, const core::AppConfig& config,
                                                 const nlohmann::json& template_values,
                                                 const std::string& template_dir) const {
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
  std::string work = dir(env.name);
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
  IDP_TRY(
      util::write_file_atomic(util::path_join(work, "settings.json"), util::json_dump(p.settings.to_json(), 2) + "\n"));
  p.tfvars = util::path_join(work, "terraform.tfvars.json");
  nlohmann::json vars = build_tfvars(env, config, template_values, p.module, p.settings.region, m_opts);
  IDP_TRY(util::write_file_atomic(p.tfvars, util::json_dump(vars, 2) + "\n", 0600));
  return p;
}

std::string Workspace::prepared_root(const std::string& env) const {
  std::string src = util::path_join(dir(env), "src");
  if (!util::is_directory(src)) {
    return "";
  }
  std::error_code ec;
  for (fs::recursive_directory_iterator it(src, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->path().filename() == "backend_override.tf") {
      return it->path().parent_path().string();
    }
  }
  return "";
}

std::vector<std::string> Workspace::init_args(const EnvSettings& s) const {
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

} // namespace idp::drivers::terraform
