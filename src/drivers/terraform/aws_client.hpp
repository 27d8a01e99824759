#pragma once
// The few AWS APIs the Terraform driver calls itself, over HTTPS with SigV4
// (util/aws_sigv4.hpp) and libcurl (util/http_client.hpp): ECS DescribeServices, ELBv2
// DescribeTargetHealth (query protocol), CloudWatch Logs FilterLogEvents, Cost Explorer
// GetCostAndUsage, DynamoDB GetItem/DeleteItem (state locks) and S3 DeleteObject (state).
//
// Endpoints are the public regional ones unless overridden (emulators, tests). Errors:
// transport failures, throttling and 5xx are transient; rejected credentials are
// unauthorized; anything else AWS refuses is permanent. No credential ever appears in an
// error message. Thread-safe (no shared mutable state).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/aws_sigv4.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::terraform {

struct TargetHealth {
  std::string id; // instance id or IP
  int port = 0;
  std::string state;  // healthy | unhealthy | initial | draining | unused | unavailable
  std::string reason; // e.g. Target.FailedHealthChecks
  std::string description;
};

struct LogEvent {
  util::Millis timestamp = 0;
  std::string stream;
  std::string message;
};

struct LogEventsPage {
  std::vector<LogEvent> events;
  std::string next_token; // "" when there are no more
};

class AwsClient {
public:
  // `endpoint` (e.g. "http://127.0.0.1:4566") replaces every service's endpoint; per-service
  // overrides ("s3", "dynamodb", ...) win over it. S3 uses path-style requests when overridden.
  AwsClient(util::AwsCredentials creds, std::string region, std::string endpoint = "",
            std::map<std::string, std::string> service_endpoints = {}, const util::Clock* clock = nullptr);

  const std::string& region() const { return m_region; }

  // ECS DescribeServices: the raw response ({"services": [...], "failures": [...]}).
  Expected<nlohmann::json> ecs_describe_services(const std::string& cluster,
                                                 const std::vector<std::string>& services) const;
  // ELBv2 DescribeTargetHealth of one target group.
  Expected<std::vector<TargetHealth>> elbv2_describe_target_health(const std::string& target_group_arn) const;
  // CloudWatch Logs FilterLogEvents on `group` from `start_ms` (inclusive); one page.
  // not_found when the group does not exist.
  Expected<LogEventsPage> logs_filter_log_events(const std::string& group, util::Millis start_ms,
                                                 const std::string& next_token, int limit = 1000) const;
  // Cost Explorer GetCostAndUsage, DAILY UnblendedCost for resources tagged tag_key=value,
  // dates "YYYY-MM-DD" (end exclusive). The raw response. Always us-east-1.
  Expected<nlohmann::json> ce_get_cost_and_usage(const std::string& tag_key, const std::string& tag_value,
                                                 const std::string& start, const std::string& end) const;
  // DynamoDB GetItem by the hash key LockID; nullopt when there is no such item.
  Expected<std::optional<nlohmann::json>> dynamodb_get_lock_item(const std::string& table, const std::string& lock_id,
                                                                 const std::string& region) const;
  Expected<void> dynamodb_delete_lock_item(const std::string& table, const std::string& lock_id,
                                           const std::string& region) const;
  // S3 DeleteObject; ok when the object does not exist.
  Expected<void> s3_delete_object(const std::string& bucket, const std::string& key, const std::string& region) const;

private:
  struct Endpoint {
    std::string base; // scheme://host[:port]
    bool overridden = false;
  };
  Endpoint endpoint_for(const std::string& service, const std::string& region, const std::string& host_prefix) const;
  // A signed request; returns (status, body) or a transport error.
  Expected<std::pair<long, std::string>> send(const std::string& service, const std::string& region,
                                              const std::string& method, const std::string& url,
                                              const std::string& path,
                                              std::vector<std::pair<std::string, std::string>> headers,
                                              const std::string& body, bool s3) const;
  Expected<nlohmann::json> json_call(const std::string& service, const std::string& host_prefix,
                                     const std::string& region, const std::string& target,
                                     const std::string& json_version, const nlohmann::json& body) const;

  util::AwsCredentials m_creds;
  std::string m_region;
  std::string m_endpoint;
  std::map<std::string, std::string> m_service_endpoints;
  const util::Clock* m_clock;
};

// The error an AWS error response stands for ("ThrottlingException: Rate exceeded").
Error aws_error(const std::string& operation, long status, const std::string& body);

} // namespace idp::drivers::terraform
