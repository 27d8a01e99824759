#include "core/app_config.hpp"

#include <algorithm>
#include <climits>
#include <functional>
#include <regex>
#include <set>

#include "core/command_line.hpp"
#include "core/schedule.hpp"
#include "core/ttl.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::core {

namespace {

using nlohmann::json;
using util::quote;

// Result of applying one key: an error message ("expected …, got …") or nothing.
using KeyResult = OptionMessage;

std::string describe(const json& n) { return describe_config_value(n); }

std::optional<std::string> scalar(const json& n) {
  if (!n.is_string()) {
    return std::nullopt;
  }
  return n.get<std::string>();
}

KeyResult get_string(const json& n, std::string& out, std::string_view what = "a string") {
  return option_values::text(n, what, out);
}

KeyResult get_int(const json& n, int& out, std::string_view what) {
  return option_values::whole_number_into(n, INT_MIN, INT_MAX, what, out);
}

KeyResult get_bool(const json& n, bool& out) { return option_values::boolean(n, out); }

bool is_env_name(std::string_view s) {
  static const std::regex k_re("^[A-Za-z_][A-Za-z0-9_]*$");
  return std::regex_match(std::string(s), k_re);
}

KeyResult check_relative_path(const std::string& p, std::string_view what) {
  if (p.empty()) {
    return std::nullopt;
  }
  if (p.front() == '/') {
    return "expected " + std::string(what) + " relative to the repository, got the absolute path " + quote(p);
  }
  for (const auto& part : util::split(p, '/')) {
    if (part == "..") {
      return "expected " + std::string(what) + " inside the repository, got " + quote(p);
    }
  }
  if (std::any_of(p.begin(), p.end(), [](unsigned char c) { return c < 0x20; })) {
    return "expected " + std::string(what) + " without control characters, got " + quote(p);
  }
  return std::nullopt;
}

// The rows of the key table, in documentation order (made an OptionTable below).
struct KeyDef {
  std::string_view key;
  std::function<KeyResult(const json&, AppConfig&)> apply;
  // Instead of apply, for map-valued keys: checks and applies one NAME: value entry.
  std::function<KeyResult(const std::string&, const json&, AppConfig&)> entry = nullptr;
  std::string_view entries_are = ""; // "a map of NAME: value", for the error when not a map
};

const std::vector<KeyDef>& key_table() {
  static const std::vector<KeyDef> k_keys = {
      {"template",
       [](const json& n, AppConfig& c) -> KeyResult {
         static const std::regex k_re("^[a-z0-9][a-z0-9-]{0,62}$");
         if (auto e = get_string(n, c.template_name, "a template name like api-service")) {
           return e;
         }
         if (!std::regex_match(c.template_name, k_re)) {
           return "expected a template name like api-service (lowercase letters, digits, '-'), got " +
                  quote(c.template_name);
         }
         return std::nullopt;
       }},
      {"container_image",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.container_image, "an image reference like nginx:alpine")) {
           return e;
         }
         if (c.container_image.empty() || std::any_of(c.container_image.begin(), c.container_image.end(),
                                                      [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; })) {
           return "expected an image reference like nginx:alpine, got " + quote(c.container_image);
         }
         return std::nullopt;
       }},
      {"container_port",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_int(n, c.container_port, "a port number 1-65535")) {
           return e;
         }
         if (c.container_port < 1 || c.container_port > 65535) {
           return "expected a port number 1-65535, got " + std::to_string(c.container_port);
         }
         return std::nullopt;
       }},
      {"health_check_path",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.health_check_path, "a path starting with /")) {
           return e;
         }
         const auto& p = c.health_check_path;
         if (p.empty() || p.front() != '/') {
           return "expected a path starting with /, got " + quote(p);
         }
         if (p.size() > 1024 ||
             std::any_of(p.begin(), p.end(), [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; })) {
           return "expected a URL path without spaces or control characters, got " + quote(p);
         }
         return std::nullopt;
       }},
      {"ttl",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.ttl, "a duration like 48h")) {
           return e;
         }
         auto ms = parse_duration(c.ttl);
         if (!ms || util::ends_with(c.ttl, "s")) {
           return "expected a duration like 30m, 4h, 7d or 2w, got " + quote(c.ttl);
         }
         if (*ms == 0) {
           return "expected a positive duration, got " + quote(c.ttl);
         }
         c.ttl_ms = *ms;
         return std::nullopt;
       }},
      {"cpu",
       [](const json& n, AppConfig& c) -> KeyResult {
         static const std::vector<int> k_cpu = {256, 512, 1024, 2048, 4096, 8192, 16384};
         if (auto e = get_int(n, c.cpu, "CPU units (256, 512, 1024, 2048, 4096, 8192 or 16384)")) {
           return e;
         }
         if (std::find(k_cpu.begin(), k_cpu.end(), c.cpu) == k_cpu.end()) {
           return "expected CPU units 256, 512, 1024, 2048, 4096, 8192 or 16384, got " + std::to_string(c.cpu);
         }
         return std::nullopt;
       }},
      {"memory",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_int(n, c.memory, "memory in MiB, like 512")) {
           return e;
         }
         if (c.memory < 512 || c.memory > 122880) {
           return "expected memory in MiB between 512 and 122880, got " + std::to_string(c.memory);
         }
         return std::nullopt;
       }},
      {"log_retention_days",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_int(n, c.log_retention_days, "a number of days CloudWatch accepts")) {
           return e;
         }
         const auto& ok = cloudwatch_retention_days();
         if (std::find(ok.begin(), ok.end(), c.log_retention_days) == ok.end()) {
           std::vector<std::string> v;
           for (int d : ok) {
             v.push_back(std::to_string(d));
           }
           return "expected one of " + util::join(v, ", ") + ", got " + std::to_string(c.log_retention_days);
         }
         return std::nullopt;
       }},
      {"dockerfile",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.dockerfile, "a path to a Dockerfile")) {
           return e;
         }
         return check_relative_path(c.dockerfile, "a Dockerfile path");
       }},
      {"build_context",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.build_context, "a directory")) {
           return e;
         }
         return check_relative_path(c.build_context, "a build context directory");
       }},
      // environment and secrets are checked entry by entry (see KeyDef::entry), so every
      // bad variable is reported, not just the first.
      {"environment", nullptr,
       [](const std::string& k, const json& v, AppConfig& c) -> KeyResult {
         if (!is_env_name(k)) {
           return "expected variable names like API_URL, got " + quote(k);
         }
         if (k == "PORT" || util::starts_with(k, "IDP_")) {
           return "variable " + quote(k) + " is set by the runtime and cannot be overridden";
         }
         if (!v.is_string() && !v.is_null()) {
           return "expected a string, number or boolean for " + quote(k) + ", got " + describe(v);
         }
         c.environment[k] = v.is_null() ? "" : v.get<std::string>();
         return std::nullopt;
       },
       "a map of NAME: value"},
      {"secrets", nullptr,
       [](const std::string& k, const json& v, AppConfig& c) -> KeyResult {
         if (!is_env_name(k)) {
           return "expected variable names like DB_PASSWORD, got " + quote(k);
         }
         auto ref = scalar(v);
         // A repository names secrets; only the server decides what they hold (issue 9):
         // env:/file: would let a pushed branch read the daemon's environment or files.
         const std::string expected = "expected the name of a secret in the server's secret store, like " + k +
                                      ": db-password (an admin "
                                      "adds it with `idp secret set` or under secrets: in the server config), or an "
                                      "ARN on the terraform runtime";
         if (ref && util::starts_with(*ref, "env:")) {
           return "secret " + quote(k) +
                  ": env: references are not allowed in repository config (they would read "
                  "the server's environment); " +
                  expected;
         }
         if (ref && util::starts_with(*ref, "file:")) {
           return "secret " + quote(k) +
                  ": file: references are not allowed in repository config (they would read "
                  "the server's files); " +
                  expected;
         }
         if (!ref || !(is_secret_arn(*ref) || is_secret_store_name(*ref))) {
           // Not echoed: a plain value here may be the secret itself, committed by mistake.
           return "secret " + quote(k) + ": " + expected + ", got " +
                  (ref && !ref->empty() ? "something else (a value in git is no secret)" : describe(v));
         }
         c.secrets[k] = *ref;
         return std::nullopt;
       },
       "a map of NAME: secret reference"},
      {"schedule_expression",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.schedule_expression, "a schedule like rate(1 hour) or cron(0 12 * * ? *)")) {
           return e;
         }
         if (auto err = Schedule::parse_error(c.schedule_expression)) {
           return "invalid schedule " + quote(c.schedule_expression) + " at column " +
                  std::to_string(err->position + 1) + ": " + err->message;
         }
         return std::nullopt;
       }},
      {"s3_bucket_arn",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.s3_bucket_arn, "an S3 bucket ARN")) {
           return e;
         }
         static const std::regex k_re("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$");
         if (!c.s3_bucket_arn.empty() && !std::regex_match(c.s3_bucket_arn, k_re)) {
           return "expected an S3 bucket ARN like arn:aws:s3:::my-bucket, got " + quote(c.s3_bucket_arn);
         }
         return std::nullopt;
       }},
      {"use_shared_networking",
       [](const json& n, AppConfig& c) -> KeyResult {
         bool b = false;
         if (auto e = get_bool(n, b)) {
           return e;
         }
         c.use_shared_networking = b;
         return std::nullopt;
       }},
      {"region",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.region, "an AWS region like eu-west-1")) {
           return e;
         }
         static const std::regex k_re("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$");
         if (!std::regex_match(c.region, k_re)) {
           return "expected an AWS region like eu-west-1, got " + quote(c.region);
         }
         return std::nullopt;
       }},
      {"local.build",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.local.build, "a command like \"npm ci\"")) {
           return e;
         }
         if (!c.local.build.empty()) {
           if (auto argv = split_command_line(c.local.build); !argv) {
             return "expected a command like \"npm ci\": " + argv.error().message;
           }
         }
         return std::nullopt;
       }},
      {"local.start",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.local.start, "a command like \"node server.js\"")) {
           return e;
         }
         if (auto argv = split_command_line(c.local.start); !argv) {
           return "expected a command like \"node server.js\": " + argv.error().message;
         }
         return std::nullopt;
       }},
      {"database.seed",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.database.seed, "a path to a .sql file")) {
           return e;
         }
         if (c.database.seed.empty() || !util::ends_with(c.database.seed, ".sql")) {
           return "expected a path to a .sql file, got " + quote(c.database.seed);
         }
         return check_relative_path(c.database.seed, "a seed file path");
       }},
      {"static.dir",
       [](const json& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.static_site.dir, "a directory like dist")) {
           return e;
         }
         if (c.static_site.dir.empty()) {
           return "expected a directory like dist, got \"\"";
         }
         return check_relative_path(c.static_site.dir, "a directory");
       }},
      {"static.spa", [](const json& n, AppConfig& c) -> KeyResult { return get_bool(n, c.static_site.spa); }},
      {"public", [](const json& n, AppConfig& c) -> KeyResult { return get_bool(n, c.public_preview); }},
      {"sleep_after",
       [](const json& n, AppConfig& c) -> KeyResult {
         std::string text;
         if (auto e = get_string(n, text, "a duration like 30m, or never")) {
           return e;
         }
         if (text == "never") {
           c.sleep_after_ms = 0;
           c.sleep_after = text;
           return std::nullopt;
         }
         auto ms = parse_duration(text);
         if (!ms || *ms < 1000) {
           return "expected a duration like 90s, 30m or 4h, or never, got " + quote(text);
         }
         c.sleep_after_ms = *ms;
         c.sleep_after = text;
         return std::nullopt;
       }},
  };
  return k_keys;
}

// A map-valued key, entry by entry: every bad entry is reported at its own position.
bool apply_entries(const KeyDef& def, ConfigDocument& doc, const ConfigNode& map, AppConfig& c) {
  if (!map.value->is_object()) {
    doc.error_at_value(map, "expected " + std::string(def.entries_are) + ", got " + describe(*map.value));
    return false;
  }
  bool ok = true;
  for (const std::string& name : doc.members(map)) {
    ConfigNode entry = doc.child(map, name);
    if (auto e = def.entry(name, *entry.value, c)) {
      doc.error_at_key(entry, *e, map.key);
      ok = false;
    }
  }
  return ok;
}

const OptionTable<AppConfig>& table() {
  static const OptionTable<AppConfig> k_table = [] {
    std::vector<Option<AppConfig>> options;
    for (const KeyDef& def : key_table()) {
      Option<AppConfig> o;
      o.key = std::string(def.key);
      if (def.entry) {
        o.parse_node = [&def](ConfigDocument& doc, const ConfigNode& node, AppConfig& c) {
          return apply_entries(def, doc, node, c);
        };
      } else {
        o.parse = def.apply;
      }
      options.push_back(std::move(o));
    }
    return OptionTable<AppConfig>(std::move(options));
  }();
  return k_table;
}

// The node of a dotted key ("local.start") in the document.
ConfigNode node_at(const ConfigDocument& doc, const std::string& dotted) {
  ConfigNode n = doc.root();
  for (const auto& part : util::split(dotted, '.')) {
    n = doc.child(n, part);
  }
  return n;
}

std::string fargate_hint(int cpu) {
  switch (cpu) {
  case 256: return " (expected 512, 1024 or 2048)";
  case 512: return " (expected 1024 to 4096 in steps of 1024)";
  case 1024: return " (expected 2048 to 8192 in steps of 1024)";
  case 2048: return " (expected 4096 to 16384 in steps of 1024)";
  case 4096: return " (expected 8192 to 30720 in steps of 1024)";
  case 8192: return " (expected 16384 to 61440 in steps of 4096)";
  case 16384: return " (expected 32768 to 122880 in steps of 8192)";
  default: return "";
  }
}

} // namespace

bool is_secret_store_name(std::string_view s) {
  static const std::regex k_re("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$");
  return std::regex_match(s.begin(), s.end(), k_re);
}

bool is_secret_arn(std::string_view s) { return util::starts_with(s, "arn:") && s.size() > 4; }

bool AppConfig::has_key(std::string_view key) const {
  return std::find(keys_set.begin(), keys_set.end(), key) != keys_set.end();
}

bool is_valid_fargate_combination(int cpu, int memory) {
  auto range = [&](int lo, int hi, int step) { return memory >= lo && memory <= hi && (memory - lo) % step == 0; };
  switch (cpu) {
  case 256: return memory == 512 || memory == 1024 || memory == 2048;
  case 512: return range(1024, 4096, 1024);
  case 1024: return range(2048, 8192, 1024);
  case 2048: return range(4096, 16384, 1024);
  case 4096: return range(8192, 30720, 1024);
  case 8192: return range(16384, 61440, 4096);
  case 16384: return range(32768, 122880, 8192);
  default: return false;
  }
}

const std::vector<int>& cloudwatch_retention_days() {
  static const std::vector<int> k_days = {1,   3,   5,   7,   14,   30,   60,   90,   120,  150,  180,
                                          365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653};
  return k_days;
}

ConfigParseResult parse_app_config(std::string_view text, std::string_view file) {
  ConfigParseResult result;
  ConfigDocument doc = ConfigDocument::from_yaml(text, std::string(file));
  const ConfigNode root = doc.root();
  if (root.value->is_null()) {
    result.errors = doc.errors();
    return result;
  }
  if (!root.value->is_object()) {
    doc.error_at_value(root, "expected a map of settings at the top level, got " + describe(*root.value));
    result.errors = doc.errors();
    return result;
  }
  AppConfig& c = result.config;
  for (const auto& key : table().apply(doc, root, c)) {
    c.keys_set.push_back(key);
    c.positions[key] = doc.value_position(node_at(doc, key));
  }
  if ((c.has_key("cpu") || c.has_key("memory")) && !is_valid_fargate_combination(c.cpu, c.memory)) {
    std::string at = c.has_key("memory") ? "memory" : "cpu";
    auto [line, column] = c.positions[at];
    doc.error(line, column, at,
              "memory " + std::to_string(c.memory) + " MiB is not a valid Fargate combination with cpu " +
                  std::to_string(c.cpu) + fargate_hint(c.cpu));
  }
  result.errors = doc.sorted_errors();
  return result;
}

Expected<AppConfig> load_app_config(std::string_view text, std::string_view file) {
  auto r = parse_app_config(text, file);
  if (!r.ok()) {
    std::vector<std::string> lines;
    for (const auto& e : r.errors) {
      lines.push_back(e.to_string());
    }
    return make_error(ErrorCode::invalid_config, util::join(lines, "\n"));
  }
  return std::move(r.config);
}

std::vector<std::string> app_config_keys() { return table().keys(); }

bool app_config_key_known(std::string_view dotted_key) { return table().find(dotted_key) != nullptr; }

nlohmann::json to_json(const AppConfig& c) {
  nlohmann::json j;
  j["template"] = c.template_name;
  j["container_image"] = c.container_image;
  j["container_port"] = c.container_port;
  j["health_check_path"] = c.health_check_path;
  j["ttl"] = c.ttl;
  j["cpu"] = c.cpu;
  j["memory"] = c.memory;
  j["log_retention_days"] = c.log_retention_days;
  j["dockerfile"] = c.dockerfile;
  j["build_context"] = c.build_context;
  j["environment"] = c.environment;
  j["secrets"] = c.secrets;
  j["schedule_expression"] = c.schedule_expression;
  j["s3_bucket_arn"] = c.s3_bucket_arn;
  j["use_shared_networking"] =
      c.use_shared_networking ? nlohmann::json(*c.use_shared_networking) : nlohmann::json(nullptr);
  j["region"] = c.region;
  j["local"] = {{"build", c.local.build}, {"start", c.local.start}};
  j["database"] = {{"seed", c.database.seed}};
  j["static"] = {{"dir", c.static_site.dir}, {"spa", c.static_site.spa}};
  j["public"] = c.public_preview;
  j["sleep_after"] = c.sleep_after;
  j["keys_set"] = c.keys_set;
  return j;
}

Expected<AppConfig> app_config_from_json(const nlohmann::json& j) {
  try {
    AppConfig c;
    c.template_name = j.value("template", c.template_name);
    c.container_image = j.value("container_image", c.container_image);
    c.container_port = j.value("container_port", c.container_port);
    c.health_check_path = j.value("health_check_path", c.health_check_path);
    c.ttl = j.value("ttl", c.ttl);
    if (auto ms = parse_duration(c.ttl)) {
      c.ttl_ms = *ms;
    }
    c.cpu = j.value("cpu", c.cpu);
    c.memory = j.value("memory", c.memory);
    c.log_retention_days = j.value("log_retention_days", c.log_retention_days);
    c.dockerfile = j.value("dockerfile", c.dockerfile);
    c.build_context = j.value("build_context", c.build_context);
    if (j.contains("environment")) {
      c.environment = j.at("environment").get<std::map<std::string, std::string>>();
    }
    if (j.contains("secrets")) {
      c.secrets = j.at("secrets").get<std::map<std::string, std::string>>();
    }
    c.schedule_expression = j.value("schedule_expression", c.schedule_expression);
    c.s3_bucket_arn = j.value("s3_bucket_arn", c.s3_bucket_arn);
    if (j.contains("use_shared_networking") && j.at("use_shared_networking").is_boolean()) {
      c.use_shared_networking = j.at("use_shared_networking").get<bool>();
    }
    c.region = j.value("region", c.region);
    if (j.contains("local")) {
      c.local.build = j.at("local").value("build", "");
      c.local.start = j.at("local").value("start", "");
    }
    if (j.contains("database")) {
      c.database.seed = j.at("database").value("seed", "");
    }
    if (j.contains("static")) {
      c.static_site.dir = j.at("static").value("dir", "");
      c.static_site.spa = j.at("static").value("spa", false);
    }
    if (j.contains("public") && j.at("public").is_boolean()) {
      c.public_preview = j.at("public").get<bool>();
    }
    c.sleep_after = j.value("sleep_after", "");
    if (c.sleep_after == "never") {
      c.sleep_after_ms = 0;
    } else if (auto ms = parse_duration(c.sleep_after); ms && !c.sleep_after.empty()) {
      c.sleep_after_ms = *ms;
    }
    if (j.contains("keys_set")) {
      c.keys_set = j.at("keys_set").get<std::vector<std::string>>();
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::invalid_config, std::string("stored config is malformed: ") + e.what());
  }
}

} // namespace idp::core
