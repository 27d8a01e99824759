#include "core/app_config.hpp"

#include <algorithm>
#include <functional>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/command_line.hpp"
#include "core/schedule.hpp"
#include "core/ttl.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::core {

namespace {

using util::quote;

// Result of applying one key: an error message ("expected …, got …") or nothing.
using KeyResult = std::optional<std::string>;

std::string describe(const YAML::Node& n) {
  if (n.IsMap()) {
    return "a map";
  }
  if (n.IsSequence()) {
    return "a list";
  }
  if (n.IsNull()) {
    return "nothing";
  }
  return quote(n.Scalar());
}

std::optional<std::string> scalar(const YAML::Node& n) {
  if (!n.IsScalar()) {
    return std::nullopt;
  }
  return n.Scalar();
}

KeyResult get_string(const YAML::Node& n, std::string& out, std::string_view what = "a string") {
  auto s = scalar(n);
  if (!s) {
    return "expected " + std::string(what) + ", got " + describe(n);
  }
  out = *s;
  return std::nullopt;
}

KeyResult get_int(const YAML::Node& n, int& out, std::string_view what) {
  auto s = scalar(n);
  auto v = s ? util::parse_int<int>(*s) : Expected<int>(0);
  if (!s || !v) {
    return "expected " + std::string(what) + ", got " + describe(n);
  }
  out = *v;
  return std::nullopt;
}

KeyResult get_bool(const YAML::Node& n, bool& out) {
  auto s = scalar(n);
  if (s) {
    std::string v = util::to_lower(*s);
    if (v == "true" || v == "yes" || v == "on") {
      out = true;
      return std::nullopt;
    }
    if (v == "false" || v == "no" || v == "off") {
      out = false;
      return std::nullopt;
    }
  }
  return "expected true or false, got " + describe(n);
}

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

struct KeyDef {
  std::string_view key;
  std::function<KeyResult(const YAML::Node&, AppConfig&)> apply;
  // Instead of apply, for map-valued keys: checks and applies one NAME: value entry.
  std::function<KeyResult(const std::string&, const YAML::Node&, AppConfig&)> entry = nullptr;
  std::string_view entries_are = ""; // "a map of NAME: value", for the error when not a map
};

const std::vector<KeyDef>& key_table() {
  static const std::vector<KeyDef> k_keys = {
      {"template",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.container_image, "an image reference like nginx:alpine")) {
           return e;
         }
         if (c.container_image.empty() ||
             std::any_of(c.container_image.begin(), c.container_image.end(),
                         [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; })) {
           return "expected an image reference like nginx:alpine, got " + quote(c.container_image);
         }
         return std::nullopt;
       }},
      {"container_port",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_int(n, c.container_port, "a port number 1-65535")) {
           return e;
         }
         if (c.container_port < 1 || c.container_port > 65535) {
           return "expected a port number 1-65535, got " + std::to_string(c.container_port);
         }
         return std::nullopt;
       }},
      {"health_check_path",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.health_check_path, "a path starting with /")) {
           return e;
         }
         const auto& p = c.health_check_path;
         if (p.empty() || p.front() != '/') {
           return "expected a path starting with /, got " + quote(p);
         }
         if (p.size() > 1024 || std::any_of(p.begin(), p.end(), [](unsigned char ch) { return ch <= ' ' || ch == 0x7f; })) {
           return "expected a URL path without spaces or control characters, got " + quote(p);
         }
         return std::nullopt;
       }},
      {"ttl",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_int(n, c.memory, "memory in MiB, like 512")) {
           return e;
         }
         if (c.memory < 512 || c.memory > 122880) {
           return "expected memory in MiB between 512 and 122880, got " + std::to_string(c.memory);
         }
         return std::nullopt;
       }},
      {"log_retention_days",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.dockerfile, "a path to a Dockerfile")) {
           return e;
         }
         return check_relative_path(c.dockerfile, "a Dockerfile path");
       }},
      {"build_context",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.build_context, "a directory")) {
           return e;
         }
         return check_relative_path(c.build_context, "a build context directory");
       }},
      // environment and secrets are checked entry by entry (see KeyDef::entry), so every
      // bad variable is reported, not just the first.
      {"environment", nullptr,
       [](const std::string& k, const YAML::Node& v, AppConfig& c) -> KeyResult {
         if (!is_env_name(k)) {
           return "expected variable names like API_URL, got " + quote(k);
         }
         if (k == "PORT" || util::starts_with(k, "IDP_")) {
           return "variable " + quote(k) + " is set by the runtime and cannot be overridden";
         }
         if (!v.IsScalar() && !v.IsNull()) {
           return "expected a string, number or boolean for " + quote(k) + ", got " + describe(v);
         }
         c.environment[k] = v.IsNull() ? "" : v.Scalar();
         return std::nullopt;
       },
       "a map of NAME: value"},
      {"secrets", nullptr,
       [](const std::string& k, const YAML::Node& v, AppConfig& c) -> KeyResult {
         if (!is_env_name(k)) {
           return "expected variable names like DB_PASSWORD, got " + quote(k);
         }
         auto ref = scalar(v);
         // A repository names secrets; only the server decides what they hold (issue 9):
         // env:/file: would let a pushed branch read the daemon's environment or files.
         const std::string expected =
             "expected the name of a secret in the server's secret store, like " + k + ": db-password (an admin "
             "adds it with `idp secret set` or under secrets: in the server config), or an ARN on the terraform runtime";
         if (ref && util::starts_with(*ref, "env:")) {
           return "secret " + quote(k) + ": env: references are not allowed in repository config (they would read "
                  "the server's environment); " + expected;
         }
         if (ref && util::starts_with(*ref, "file:")) {
           return "secret " + quote(k) + ": file: references are not allowed in repository config (they would read "
                  "the server's files); " + expected;
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         bool b = false;
         if (auto e = get_bool(n, b)) {
           return e;
         }
         c.use_shared_networking = b;
         return std::nullopt;
       }},
      {"region",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
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
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.local.start, "a command like \"node server.js\"")) {
           return e;
         }
         if (auto argv = split_command_line(c.local.start); !argv) {
           return "expected a command like \"node server.js\": " + argv.error().message;
         }
         return std::nullopt;
       }},
      {"database.seed",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.database.seed, "a path to a .sql file")) {
           return e;
         }
         if (c.database.seed.empty() || !util::ends_with(c.database.seed, ".sql")) {
           return "expected a path to a .sql file, got " + quote(c.database.seed);
         }
         return check_relative_path(c.database.seed, "a seed file path");
       }},
      {"static.dir",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult {
         if (auto e = get_string(n, c.static_site.dir, "a directory like dist")) {
           return e;
         }
         if (c.static_site.dir.empty()) {
           return "expected a directory like dist, got \"\"";
         }
         return check_relative_path(c.static_site.dir, "a directory");
       }},
      {"static.spa",
       [](const YAML::Node& n, AppConfig& c) -> KeyResult { return get_bool(n, c.static_site.spa); }},
  };
  return k_keys;
}

const std::set<std::string>& sections() {
  static const std::set<std::string> k_sections = {"local", "database", "static"};
  return k_sections;
}

const KeyDef* find_key(std::string_view key) {
  for (const auto& k : key_table()) {
    if (k.key == key) {
      return &k;
    }
  }
  return nullptr;
}

struct Parser {
  std::string file;
  ConfigParseResult result;
  std::map<std::string, YAML::Mark> marks;

  void error(const YAML::Mark& m, std::string key, std::string msg) {
    ConfigError e;
    e.file = file;
    e.line = m.line >= 0 ? m.line + 1 : 0;
    e.column = m.column >= 0 ? m.column + 1 : 0;
    e.key = std::move(key);
    e.message = std::move(msg);
    result.errors.push_back(std::move(e));
  }

  std::vector<std::string> candidates(std::string_view prefix) {
    std::vector<std::string> out;
    for (const auto& k : key_table()) {
      std::string_view name = k.key;
      if (prefix.empty()) {
        auto dot = name.find('.');
        out.emplace_back(dot == std::string_view::npos ? name : name.substr(0, dot));
      } else if (util::starts_with(name, std::string(prefix) + ".")) {
        out.emplace_back(name.substr(prefix.size() + 1));
      }
    }
    return out;
  }

  void unknown(const YAML::Node& key_node, const std::string& prefix) {
    std::string name = key_node.Scalar();
    std::string full = prefix.empty() ? name : prefix + "." + name;
    std::string hint = util::closest_match(name, candidates(prefix));
    std::string msg = "unknown key";
    if (!hint.empty()) {
      msg += ", did you mean " + quote(prefix.empty() ? hint : prefix + "." + hint) + "?";
    }
    error(key_node.Mark(), full, msg);
  }

  void walk_map(const YAML::Node& map, const std::string& prefix) {
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) {
        error(k.Mark(), prefix, "expected a key name, got " + describe(k));
        continue;
      }
      std::string name = k.Scalar();
      std::string full = prefix.empty() ? name : prefix + "." + name;
      if (!seen.insert(name).second) {
        error(k.Mark(), full, "duplicate key");
        continue;
      }
      if (prefix.empty() && sections().count(name)) {
        if (kv.second.IsNull()) {
          continue;
        }
        if (!kv.second.IsMap()) {
          error(kv.second.Mark(), full, "expected a map of settings, got " + describe(kv.second));
          continue;
        }
        walk_map(kv.second, name);
        continue;
      }
      const KeyDef* def = find_key(full);
      if (!def) {
        unknown(k, prefix);
        continue;
      }
      marks[full] = kv.second.Mark();
      if (kv.second.IsNull()) {
        continue; // an empty value means the default, as in the original
      }
      if (def->entry) {
        if (!apply_entries(*def, kv.second, full)) {
          continue;
        }
      } else if (auto e = def->apply(kv.second, result.config)) {
        error(kv.second.Mark(), full, *e);
        continue;
      }
      result.config.keys_set.push_back(full);
      result.config.positions[full] = {kv.second.Mark().line + 1, kv.second.Mark().column + 1};
    }
  }

  // A map-valued key, entry by entry: every bad entry is reported at its own position.
  bool apply_entries(const KeyDef& def, const YAML::Node& map, const std::string& full) {
    if (!map.IsMap()) {
      error(map.Mark(), full, "expected " + std::string(def.entries_are) + ", got " + describe(map));
      return false;
    }
    bool ok = true;
    for (const auto& kv : map) {
      std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
      if (auto e = def.entry(name, kv.second, result.config)) {
        error(kv.first.Mark(), full, *e);
        ok = false;
      }
    }
    return ok;
  }

  void cross_checks() {
    const auto& c = result.config;
    if ((c.has_key("cpu") || c.has_key("memory")) && !is_valid_fargate_combination(c.cpu, c.memory)) {
      std::string at = c.has_key("memory") ? "memory" : "cpu";
      error(marks[at], at,
            "memory " + std::to_string(c.memory) + " MiB is not a valid Fargate combination with cpu " +
                std::to_string(c.cpu) + fargate_hint(c.cpu));
    }
  }

  static std::string fargate_hint(int cpu) {
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
};

} // namespace

bool is_secret_store_name(std::string_view s) {
  static const std::regex k_re("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$");
  return std::regex_match(s.begin(), s.end(), k_re);
}

bool is_secret_arn(std::string_view s) { return util::starts_with(s, "arn:") && s.size() > 4; }

bool AppConfig::has_key(std::string_view key) const {
  return std::find(keys_set.begin(), keys_set.end(), key) != keys_set.end();
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) {
    out += "key " + quote(key) + ": ";
  }
  out += message;
  return out;
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
  static const std::vector<int> k_days = {1,   3,   5,   7,   14,  30,   60,   90,   120,  150,  180,
                                          365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653};
  return k_days;
}

ConfigParseResult parse_app_config(std::string_view text, std::string_view file) {
  Parser p;
  p.file = std::string(file);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    p.error(e.mark, "", "invalid YAML: " + e.msg);
    return std::move(p.result);
  } catch (const YAML::Exception& e) {
    p.error(e.mark, "", "invalid YAML: " + e.msg);
    return std::move(p.result);
  }
  if (!root || root.IsNull()) {
    return std::move(p.result);
  }
  if (!root.IsMap()) {
    p.error(root.Mark(), "", "expected a map of settings at the top level, got " + describe(root));
    return std::move(p.result);
  }
  try {
    p.walk_map(root, "");
    p.cross_checks();
  } catch (const YAML::Exception& e) {
    p.error(e.mark, "", "invalid YAML: " + e.msg);
  }
  return std::move(p.result);
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

std::vector<std::string> app_config_keys() {
  std::vector<std::string> out;
  for (const auto& k : key_table()) {
    out.emplace_back(k.key);
  }
  return out;
}

bool app_config_key_known(std::string_view dotted_key) { return find_key(dotted_key) != nullptr; }

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
  j["use_shared_networking"] = c.use_shared_networking ? nlohmann::json(*c.use_shared_networking) : nlohmann::json(nullptr);
  j["region"] = c.region;
  j["local"] = {{"build", c.local.build}, {"start", c.local.start}};
  j["database"] = {{"seed", c.database.seed}};
  j["static"] = {{"dir", c.static_site.dir}, {"spa", c.static_site.spa}};
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
    if (j.contains("keys_set")) {
      c.keys_set = j.at("keys_set").get<std::vector<std::string>>();
    }
    return c;
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::invalid_config, std::string("stored config is malformed: ") + e.what());
  }
}

} // namespace idp::core
