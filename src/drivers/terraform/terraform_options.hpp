#pragma once
// Settings of the Terraform driver, from DriverContext::options (the server config's
// `drivers.terraform` section: flat scalars; durations arrive as `<key>_ms` numbers).
// Unknown keys and wrong types are invalid_config. Defaults that depend on the machine
// (binary, plugin dir, templates dir, region) are resolved by parse().

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::drivers::terraform {

struct TerraformOptions {
  std::string binary;                      // "tofu" when on PATH, else "terraform"
  std::string plugin_dir;                  // init -plugin-dir (offline); "" = download providers
  std::string templates_dir;               // built-in templates (<dir>/<template>/terraform)
  std::vector<std::string> templates_path; // more template directories (IDP_TEMPLATES_PATH); later ones win
  std::string region;                      // default AWS region when the app config names none

  std::string backend = "local";                 // "local" | "s3"
  std::string state_bucket;                      // s3: bucket of the state objects
  std::string state_region;                      // s3: the bucket's region (default: region)
  std::string dynamodb_table;                    // s3: lock table ("" = no locking beyond S3)
  std::string state_key_prefix = "environments"; // key = <prefix>/<env>/<region>/terraform.tfstate
  std::string s3_endpoint;                       // emulators (s3rver, MinIO): path-style requests
  std::string dynamodb_endpoint;                 // emulators (dynalite, DynamoDB Local)

  std::string aws_endpoint;                // one endpoint for the AWS APIs the driver calls (tests)
  int64_t lock_timeout_ms = 5 * 60000;     // -lock-timeout of apply/destroy
  int64_t stop_grace_ms = 60000;           // cancel: SIGTERM to terraform, SIGKILL after this
  int64_t command_timeout_ms = 60 * 60000; // a whole init/apply/destroy
  bool use_shared_networking = false;      // default of the config key use_shared_networking
  std::string acm_certificate_arn;
  std::string route53_zone_id;
  std::string preview_domain;
  // Secret ARNs a repository's config may reference (`secrets:` values): each must start
  // with one of these (e.g. "arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/").
  // Empty: no ARN is accepted, so a pushed branch cannot grant itself another team's secret.
  std::vector<std::string> secret_arn_prefixes;
  // IAM policy set as the permissions boundary of every role a template creates (passed as
  // the template variable permissions_boundary_arn); "" = none.
  std::string permissions_boundary_arn;
  // Names of the daemon's environment variables terraform and its providers get besides the
  // built-in allowlist (AWS_*, proxies, PATH, TMPDIR, TF_CLI_CONFIG_FILE, ...).
  std::vector<std::string> env_allow;
  // var_<name> options: extra root-module variables (passed only where declared).
  std::map<std::string, nlohmann::json> variables;
  // Networks an untrusted environment's tasks may reach (server config forks.egress_cidrs,
  // set by the driver from its context): its `egress_cidrs` variable.
  std::vector<std::string> untrusted_egress_cidrs;
  // Owner → team (server config teams, set by the driver from its context): the `team`
  // variable, tagged idp:team.
  std::map<std::string, std::string> team_of;
  int64_t log_max_bytes = 10 * 1024 * 1024;
  int log_keep = 5;

  // Parses `options` (an object; null means every default). invalid_config naming the key.
  static Expected<TerraformOptions> parse(const nlohmann::json& options);
  // ok when every ARN among a config's `secrets` values starts with one of
  // secret_arn_prefixes; else invalid_config naming the secret, the ARN and what is allowed.
  Expected<void> check_secret_arns(const std::map<std::string, std::string>& secrets) const;
  // Backend region: state_region, else region.
  std::string backend_region() const { return state_region.empty() ? region : state_region; }
};

// The templates directory the daemon uses when none is configured: $IDP_BUILTIN_TEMPLATES,
// else the compile-time IDP_BUILTIN_TEMPLATES_DIR (the source tree's templates/).
std::string default_templates_dir();

} // namespace idp::drivers::terraform
