#pragma once
// .idp/config.yml: the application repository's settings, as a typed value with defaults.
// One key table (core/option_table.hpp) drives parsing and validation. No I/O.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/option_table.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::core {

struct AppConfig {
  std::string template_name = "api-service";
  std::string container_image = "nginx:alpine";
  int container_port = 80;
  std::string health_check_path = "/";
  std::string ttl = "7d";
  util::Millis ttl_ms = 7LL * 86400 * 1000;
  int cpu = 256;
  int memory = 512;
  int log_retention_days = 3;
  std::string dockerfile; // "" = auto-detect ./Dockerfile
  std::string build_context = ".";
  std::map<std::string, std::string> environment;
  // Variable → a name in the server's secret store (`idp secret`, server config secrets:),
  // or an ARN (terraform runtime). Never a value, never env:/file: (issue 9).
  std::map<std::string, std::string> secrets;
  std::string schedule_expression;
  std::string s3_bucket_arn;
  std::optional<bool> use_shared_networking; // unset = the server's default
  std::string region;                        // "" = the server's default region
  struct Local {
    std::string build; // run once per revision in the checkout
    // The app (it listens on $PORT) or the job. npm runs package.json's "start" script, or
    // `node server.js` without one: a repository without .idp/config.yml runs as is.
    std::string start = "npm start";
  } local;
  struct Database {
    std::string seed; // path in the repo of a .sql file applied once
  } database;
  struct Static {
    std::string dir;  // directory (after local.build) served as files
    bool spa = false; // unknown paths fall back to index.html
  } static_site;
  // `public: true`: this environment's preview URL opens without sign-in, when the server
  // allows it (server config previews.allow_public); otherwise a config error at deploy.
  bool public_preview = false;
  // Idle sleep (issue 12): `sleep_after: 30m` stops the app after that long without a
  // request ("never" = 0: it never sleeps, unless the server's sleep.max_after says it
  // must). -1 = not set: the server's sleep.default_after.
  util::Millis sleep_after_ms = -1;
  std::string sleep_after; // as written ("" = not set)
  // Keys present in the file, dotted ("local.start"), so template rules can tell
  // "set" from "defaulted".
  std::vector<std::string> keys_set;
  // Where each key set in the file is (1-based line, column), for later checks' messages.
  std::map<std::string, std::pair<int, int>> positions;

  bool has_key(std::string_view key) const;
};

struct ConfigParseResult {
  AppConfig config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses and validates the whole document, collecting every error. `file` names the
// source in messages. Empty text means every default.
ConfigParseResult parse_app_config(std::string_view text, std::string_view file = ".idp/config.yml");

// The same as an Expected: invalid_config whose message lists every error, one per line.
Expected<AppConfig> load_app_config(std::string_view text, std::string_view file = ".idp/config.yml");

// A name of the server's secret store: letters, digits, '_', '.', '-' (1-64, not starting
// with '.' or '-'). The same rule for repository config and `idp secret set`.
bool is_secret_store_name(std::string_view name);
// An AWS ARN ("arn:…"), the terraform runtime's secret reference.
bool is_secret_arn(std::string_view ref);

// Every key of the table, dotted, in documentation order.
std::vector<std::string> app_config_keys();
bool app_config_key_known(std::string_view dotted_key);

nlohmann::json to_json(const AppConfig& c);
// Inverse of to_json (for configs stored by the engine); invalid_config when malformed.
Expected<AppConfig> app_config_from_json(const nlohmann::json& j);

// Fargate's CPU units / memory (MiB) combinations.
bool is_valid_fargate_combination(int cpu, int memory);
// CloudWatch Logs retention values.
const std::vector<int>& cloudwatch_retention_days();

} // namespace idp::core
