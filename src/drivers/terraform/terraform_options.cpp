#include "drivers/terraform/terraform_options.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>

#include "core/option_table.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

#ifndef IDP_BUILTIN_TEMPLATES_DIR
#define IDP_BUILTIN_TEMPLATES_DIR "/usr/share/idp/templates"
#endif

namespace idp::drivers::terraform {

namespace {

constexpr const char* k_auto_plugin_dir = "/opt/tf-plugins";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

using core::OptionMessage;
// Parses one option into the options: nothing on success, else "expected …, got …".
using Setter = std::function<OptionMessage(const nlohmann::json&, TerraformOptions&)>;

// "expected <what>, got <value>".
OptionMessage expected(std::string_view what, const nlohmann::json& v) {
  return "expected " + std::string(what) + ", got " + core::describe_config_value(v);
}

Setter string_opt(std::string TerraformOptions::*field, bool non_empty = false) {
  return [field, non_empty](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
    if (!v.is_string() || (non_empty && v.get<std::string>().empty())) {
      return expected(non_empty ? "a non-empty string" : "a string", v);
    }
    o.*field = v.get<std::string>();
    return std::nullopt;
  };
}

Setter ms_opt(int64_t TerraformOptions::*field, int64_t min) {
  return [field, min](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
    return core::option_values::whole_number_into(
        v, min, INT64_MAX, "a duration (or milliseconds) of at least " + std::to_string(min) + "ms", o.*field);
  };
}

Setter endpoint_opt(std::string TerraformOptions::*field) {
  return [field](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
    if (!v.is_string() ||
        !(util::starts_with(v.get<std::string>(), "http://") || util::starts_with(v.get<std::string>(), "https://"))) {
      return expected("an http:// or https:// URL", v);
    }
    std::string s = v.get<std::string>();
    while (!s.empty() && s.back() == '/') {
      s.pop_back();
    }
    o.*field = s;
    return std::nullopt;
  };
}

// A list of strings: a YAML/JSON list, or one string of comma-separated items.
Setter list_opt(std::vector<std::string> TerraformOptions::*field,
                const std::function<std::string(const std::string&)>& check) {
  return [field, check](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
    std::vector<std::string> items;
    if (v.is_string()) {
      for (auto& part : util::split(v.get<std::string>(), ',')) {
        std::string t = util::trim(part);
        if (!t.empty()) {
          items.push_back(t);
        }
      }
    } else if (v.is_array()) {
      for (const auto& e : v) {
        if (!e.is_string() || e.get<std::string>().empty()) {
          return expected("a list of non-empty strings", v);
        }
        items.push_back(e.get<std::string>());
      }
    } else {
      return expected("a list of strings (or one comma-separated string)", v);
    }
    for (const auto& item : items) {
      if (std::string why = check(item); !why.empty()) {
        return why + ", got " + util::quote(item);
      }
    }
    o.*field = std::move(items);
    return std::nullopt;
  };
}

bool is_env_name(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

} // namespace

Expected<void> TerraformOptions::check_secret_arns(const std::map<std::string, std::string>& secrets) const {
  for (const auto& entry : secrets) {
    const std::string& name = entry.first; // not a structured binding: clang 14 cannot capture one
    const std::string& arn = entry.second;
    if (!util::starts_with(arn, "arn:") ||
        std::any_of(secret_arn_prefixes.begin(), secret_arn_prefixes.end(),
                    [&](const std::string& prefix) { return util::starts_with(arn, prefix); })) {
      continue;
    }
    if (secret_arn_prefixes.empty()) {
      return make_error(ErrorCode::invalid_config,
                        ".idp/config.yml: secret " + util::quote(name) + " references " + util::quote(arn) +
                            ", but this server accepts no secret ARNs: the operator lists the allowed prefixes in "
                            "drivers.terraform.secret_arn_prefixes");
    }
    return make_error(ErrorCode::invalid_config, ".idp/config.yml: secret " + util::quote(name) + " references " +
                                                     util::quote(arn) +
                                                     ", which is outside the ARNs this server allows (" +
                                                     util::join(secret_arn_prefixes, ", ") + ")");
  }
  return {};
}

std::string default_templates_dir() { return env_or("IDP_BUILTIN_TEMPLATES", IDP_BUILTIN_TEMPLATES_DIR); }

Expected<TerraformOptions> TerraformOptions::parse(const nlohmann::json& options) {
  TerraformOptions o;
  static const std::vector<std::pair<std::string, Setter>> k_setters = {
      {"binary", string_opt(&TerraformOptions::binary, true)},
      {"plugin_dir", string_opt(&TerraformOptions::plugin_dir)},
      {"templates_dir", string_opt(&TerraformOptions::templates_dir, true)},
      {"templates_path",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_string()) {
           return expected("a colon-separated list of directories", v);
         }
         o.templates_path.clear();
         for (const auto& d : util::split(v.get<std::string>(), ':')) {
           if (!d.empty()) {
             o.templates_path.push_back(d);
           }
         }
         return std::nullopt;
       }},
      {"region", string_opt(&TerraformOptions::region)},
      {"backend",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_string() || (v != "local" && v != "s3")) {
           return expected("\"local\" or \"s3\"", v);
         }
         o.backend = v.get<std::string>();
         return std::nullopt;
       }},
      {"state_bucket", string_opt(&TerraformOptions::state_bucket, true)},
      {"state_region", string_opt(&TerraformOptions::state_region)},
      {"dynamodb_table", string_opt(&TerraformOptions::dynamodb_table)},
      {"state_key_prefix",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().front() == '/' ||
             v.get<std::string>().back() == '/') {
           return expected("a key prefix like \"environments\" (no leading or trailing '/')", v);
         }
         o.state_key_prefix = v.get<std::string>();
         return std::nullopt;
       }},
      {"s3_endpoint", endpoint_opt(&TerraformOptions::s3_endpoint)},
      {"dynamodb_endpoint", endpoint_opt(&TerraformOptions::dynamodb_endpoint)},
      {"aws_endpoint", endpoint_opt(&TerraformOptions::aws_endpoint)},
      {"lock_timeout_ms", ms_opt(&TerraformOptions::lock_timeout_ms, 0)},
      {"stop_grace_ms", ms_opt(&TerraformOptions::stop_grace_ms, 0)},
      {"command_timeout_ms", ms_opt(&TerraformOptions::command_timeout_ms, 1000)},
      {"use_shared_networking",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_boolean()) {
           return expected("true or false", v);
         }
         o.use_shared_networking = v.get<bool>();
         return std::nullopt;
       }},
      {"acm_certificate_arn", string_opt(&TerraformOptions::acm_certificate_arn)},
      {"route53_zone_id", string_opt(&TerraformOptions::route53_zone_id)},
      {"preview_domain", string_opt(&TerraformOptions::preview_domain)},
      {"secret_arn_prefixes",
       list_opt(&TerraformOptions::secret_arn_prefixes,
                [](const std::string& p) -> std::string {
                  // A whole-partition prefix ("arn:aws:") would allow every account.
                  auto parts = util::split(p, ':');
                  if (!util::starts_with(p, "arn:") || parts.size() < 6 || parts[4].empty()) {
                    return "expected ARN prefixes that name at least the service, region and "
                           "account, like arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/";
                  }
                  return "";
                })},
      {"permissions_boundary_arn",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_string() ||
             !(v.get<std::string>().empty() || (util::starts_with(v.get<std::string>(), "arn:") &&
                                                v.get<std::string>().find(":policy/") != std::string::npos))) {
           return expected("the ARN of an IAM policy, like arn:aws:iam::123456789012:policy/idp-preview-boundary", v);
         }
         o.permissions_boundary_arn = v.get<std::string>();
         return std::nullopt;
       }},
      {"env_allow", list_opt(&TerraformOptions::env_allow,
                             [](const std::string& n) -> std::string {
                               return is_env_name(n) ? "" : "expected environment variable names (letters, digits, _)";
                             })},
      {"log_max_bytes",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_number_integer() || v.get<int64_t>() < 1024) {
           return expected("a number of bytes of at least 1024", v);
         }
         o.log_max_bytes = v.get<int64_t>();
         return std::nullopt;
       }},
      {"log_keep",
       [](const nlohmann::json& v, TerraformOptions& o) -> OptionMessage {
         if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000) {
           return expected("a number of files between 0 and 1000", v);
         }
         o.log_keep = v.get<int>();
         return std::nullopt;
       }},
  };
  static const core::OptionTable<TerraformOptions> k_table = [] {
    std::vector<core::Option<TerraformOptions>> options;
    for (const auto& [key, setter] : k_setters) {
      core::Option<TerraformOptions> o;
      o.key = key;
      o.parse = setter;
      options.push_back(std::move(o));
    }
    return core::OptionTable<TerraformOptions>(std::move(options), "option");
  }();
  // var_<name>: a root-module variable, any name; the rest are the table's.
  nlohmann::json table_options = options.is_object() ? nlohmann::json::object() : options;
  if (options.is_object()) {
    for (const auto& [key, value] : options.items()) {
      if (util::starts_with(key, "var_") && key.size() > 4) {
        if (!value.is_primitive() || value.is_null()) {
          return make_error(ErrorCode::invalid_config, "driver \"terraform\": option " + util::quote(key) +
                                                           ": expected a string, number or boolean, got " +
                                                           util::json_dump(value));
        }
        o.variables[key.substr(4)] = value;
      } else {
        table_options[key] = value;
      }
    }
  }
  IDP_TRY(k_table.apply_json(table_options, o, "driver \"terraform\""));
  const bool plugin_dir_set =
      options.is_object() && options.contains("plugin_dir") && !options.at("plugin_dir").is_null();
  if (o.binary.empty()) {
    o.binary = util::find_executable("tofu") ? "tofu" : "terraform";
  }
  if (!plugin_dir_set) {
    o.plugin_dir = env_or("IDP_TF_PLUGIN_DIR", util::is_directory(k_auto_plugin_dir) ? k_auto_plugin_dir : "");
  }
  if (o.templates_dir.empty()) {
    o.templates_dir = default_templates_dir();
  }
  if (!options.is_object() || !options.contains("templates_path")) {
    for (const auto& d : util::split(env_or("IDP_TEMPLATES_PATH", ""), ':')) {
      if (!d.empty()) {
        o.templates_path.push_back(d);
      }
    }
  }
  if (o.region.empty()) {
    o.region = env_or("AWS_REGION", env_or("AWS_DEFAULT_REGION", ""));
  }
  if (o.backend == "s3" && o.state_bucket.empty()) {
    return make_error(ErrorCode::invalid_config,
                      "driver \"terraform\": backend \"s3\" needs option \"state_bucket\" (the state bucket's name)");
  }
  if (o.backend == "s3" && o.backend_region().empty()) {
    return make_error(ErrorCode::invalid_config, "driver \"terraform\": backend \"s3\" needs option \"state_region\" "
                                                 "(or \"region\", or AWS_REGION in the environment)");
  }
  return o;
}

} // namespace idp::drivers::terraform
