#pragma once
// What AWS says about an environment the terraform runtime applied, through AwsClient with
// the credentials of the server's environment: the ECS service and its targets (observe),
// CloudWatch Logs merged into the environment log, and Cost Explorer. Without credentials
// each answer says so instead of failing the call (cost is the exception: it has nothing
// else to say). Read-only: nothing here changes AWS or the work directory.
//
// Thread-safety: const; callable from any thread.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "drivers/terraform/aws_client.hpp"
#include "drivers/terraform/terraform_options.hpp"
#include "util/time.hpp"

namespace idp::drivers::terraform {

class AwsStatus {
public:
  // `opts` must outlive this; `clock` (may be null: system clock) signs requests and dates cost.
  AwsStatus(const TerraformOptions& opts, const util::Clock* clock) : m_opts(opts), m_clock(clock) {}

  // A client for `region` with the endpoints of the options; nullopt without credentials.
  std::optional<AwsClient> client(const std::string& region) const;
  // The ECS service named by the apply's outputs (cluster_name/cluster_arn, service_name)
  // and its target group's health. Never an error: what cannot be asked is Health::unknown.
  Expected<Observation> observe_ecs(const std::string& region, const nlohmann::json& outputs) const;
  // The environment log in <work_dir>/logs, merged with CloudWatch Logs (the log_group
  // output) when the last apply was of a cloud template and credentials are available.
  // Cursor: "<local cursor>" or "<local cursor>|cw:<next start ms>".
  Expected<LogChunk> read_logs(const std::string& env, const std::string& work_dir, const LogQuery& q) const;
  // Cost Explorer: daily burn, month to date and a projection for tag idp:environment.
  // invalid_config without credentials.
  Expected<nlohmann::json> cost(const std::string& env) const;

private:
  const TerraformOptions& m_opts;
  const util::Clock* m_clock;
};

} // namespace idp::drivers::terraform
