#include "drivers/terraform/aws_client.hpp"

#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::drivers::terraform {

namespace {

constexpr int64_t k_timeout_ms = 15000;

// The text of every <tag>…</tag> directly found in `xml` from `from` (no nesting of the
// same tag inside itself, which holds for the ELBv2 responses we read).
std::vector<std::string> xml_all(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  std::string open = "<" + tag + ">";
  std::string close = "</" + tag + ">";
  size_t pos = 0;
  while ((pos = xml.find(open, pos)) != std::string::npos) {
    size_t start = pos + open.size();
    size_t end = xml.find(close, start);
    if (end == std::string::npos) {
      break;
    }
    out.push_back(xml.substr(start, end - start));
    pos = end + close.size();
  }
  return out;
}

std::string xml_first(const std::string& xml, const std::string& tag) {
  auto all = xml_all(xml, tag);
  return all.empty() ? "" : all.front();
}

// "/" + the S3 object key with every segment percent-encoded ('/' kept).
std::string encode_key(const std::string& key) {
  std::vector<std::string> segs;
  for (const auto& seg : util::split(key, '/')) {
    segs.push_back(util::url_encode(seg));
  }
  return "/" + util::join(segs, "/");
}

} // namespace

Error aws_error(const std::string& operation, long status, const std::string& body) {
  std::string code;
  std::string message;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object()) {
    code = j.value("__type", j.value("code", ""));
    auto hash = code.rfind('#');
    if (hash != std::string::npos) {
      code = code.substr(hash + 1);
    }
    message = j.value("message", j.value("Message", ""));
  } else {
    code = util::xml_unescape(xml_first(body, "Code"));
    message = util::xml_unescape(xml_first(body, "Message"));
  }
  std::string text = operation + ": " + (code.empty() ? "HTTP " + std::to_string(status) : code) +
                     (message.empty() ? "" : ": " + message);
  static const std::vector<std::string> k_auth = {"UnrecognizedClientException",
                                                  "InvalidSignatureException",
                                                  "SignatureDoesNotMatch",
                                                  "InvalidClientTokenId",
                                                  "ExpiredToken",
                                                  "ExpiredTokenException",
                                                  "AccessDenied",
                                                  "AccessDeniedException",
                                                  "InvalidAccessKeyId",
                                                  "MissingAuthenticationToken",
                                                  "IncompleteSignatureException"};
  static const std::vector<std::string> k_retry = {"ThrottlingException",
                                                   "Throttling",
                                                   "TooManyRequestsException",
                                                   "RequestLimitExceeded",
                                                   "ProvisionedThroughputExceededException",
                                                   "ServiceUnavailable",
                                                   "SlowDown",
                                                   "RequestTimeout"};
  if (std::find(k_auth.begin(), k_auth.end(), code) != k_auth.end() || status == 401 || status == 403) {
    return Error(ErrorCode::unauthorized, text);
  }
  if (std::find(k_retry.begin(), k_retry.end(), code) != k_retry.end() || status >= 500 || status == 429) {
    return Error(ErrorCode::transient, text);
  }
  if (code == "ResourceNotFoundException" || code == "NoSuchKey" || code == "NoSuchBucket" || status == 404) {
    return Error(ErrorCode::not_found, text);
  }
  return Error(ErrorCode::permanent, text);
}

AwsClient::AwsClient(util::AwsCredentials creds, std::string region, std::string endpoint,
                     std::map<std::string, std::string> service_endpoints, const util::Clock* clock)
    : m_creds(std::move(creds)), m_region(std::move(region)), m_endpoint(std::move(endpoint)),
      m_service_endpoints(std::move(service_endpoints)), m_clock(clock) {}

AwsClient::Endpoint AwsClient::endpoint_for(const std::string& service, const std::string& region,
                                            const std::string& host_prefix) const {
  if (auto it = m_service_endpoints.find(service); it != m_service_endpoints.end() && !it->second.empty()) {
    return {it->second, true};
  }
  if (!m_endpoint.empty()) {
    return {m_endpoint, true};
  }
  return {"https://" + host_prefix + "." + region + ".amazonaws.com", false};
}

Expected<std::pair<long, std::string>> AwsClient::send(const std::string& service, const std::string& region,
                                                       const std::string& method, const std::string& url,
                                                       const std::string& path,
                                                       std::vector<std::pair<std::string, std::string>> headers,
                                                       const std::string& body, bool s3) const {
  util::SigV4Request sreq;
  sreq.method = method;
  sreq.path = path;
  sreq.headers = headers;
  sreq.body = body;
  util::SigV4Params params;
  params.region = region;
  params.service = service;
  params.unix_seconds = (m_clock ? m_clock->now_ms() : util::SystemClock().now_ms()) / 1000;
  params.normalize_path = !s3;
  params.double_encode = !s3;
  params.add_content_sha256 = s3;
  util::SigV4Signature sig = util::sigv4_sign(sreq, m_creds, params);

  util::HttpRequest req;
  req.method = method;
  req.url = url;
  req.body = body;
  req.timeout_ms = k_timeout_ms;
  for (const auto& h : headers) {
    if (util::to_lower(h.first) != "host") { // libcurl sends Host from the URL (the same value)
      req.headers.push_back(h);
    }
  }
  for (const auto& h : sig.headers_to_add) {
    req.headers.push_back(h);
  }
  auto resp = util::http_request(req);
  if (!resp) {
    return Unexpected(resp.error());
  }
  return std::make_pair(resp->status, std::move(resp->body));
}

Expected<nlohmann::json> AwsClient::json_call(const std::string& service, const std::string& host_prefix,
                                              const std::string& region, const std::string& target,
                                              const std::string& json_version, const nlohmann::json& body) const {
  Endpoint ep = endpoint_for(service, region, host_prefix);
  std::string payload = util::json_dump(body);
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Host", util::url_host_port(ep.base)},
      {"Content-Type", "application/x-amz-json-" + json_version},
      {"X-Amz-Target", target}};
  std::string operation = target.substr(target.find('.') + 1);
  IDP_TRY_ASSIGN(auto resp, send(service, region, "POST", ep.base + "/", "/", headers, payload, false));
  if (resp.first != 200) {
    return Unexpected(aws_error(operation, resp.first, resp.second));
  }
  auto j = nlohmann::json::parse(resp.second, nullptr, false);
  if (j.is_discarded()) {
    return make_error(ErrorCode::transient, operation + ": the response is not JSON");
  }
  return j;
}

Expected<nlohmann::json> AwsClient::ecs_describe_services(const std::string& cluster,
                                                          const std::vector<std::string>& services) const {
  return json_call("ecs", "ecs", m_region, "AmazonEC2ContainerServiceV20141113.DescribeServices", "1.1",
                   {{"cluster", cluster}, {"services", services}});
}

Expected<std::vector<TargetHealth>> AwsClient::elbv2_describe_target_health(const std::string& target_group_arn) const {
  Endpoint ep = endpoint_for("elasticloadbalancing", m_region, "elasticloadbalancing");
  std::string body =
      "Action=DescribeTargetHealth&TargetGroupArn=" + util::url_encode(target_group_arn) + "&Version=2015-12-01";
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Host", util::url_host_port(ep.base)}, {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  IDP_TRY_ASSIGN(auto resp, send("elasticloadbalancing", m_region, "POST", ep.base + "/", "/", headers, body, false));
  if (resp.first != 200) {
    return Unexpected(aws_error("DescribeTargetHealth", resp.first, resp.second));
  }
  std::vector<TargetHealth> out;
  std::string descriptions = xml_first(resp.second, "TargetHealthDescriptions");
  for (const auto& m : xml_all(descriptions, "member")) {
    TargetHealth t;
    std::string target = xml_first(m, "Target");
    std::string health = xml_first(m, "TargetHealth");
    t.id = util::xml_unescape(xml_first(target, "Id"));
    std::string port = xml_first(target, "Port");
    t.port = util::parse_int<int>(port, 0, 65535).value_or(0); // 0: none or unreadable
    t.state = util::xml_unescape(xml_first(health, "State"));
    t.reason = util::xml_unescape(xml_first(health, "Reason"));
    t.description = util::xml_unescape(xml_first(health, "Description"));
    out.push_back(std::move(t));
  }
  return out;
}

Expected<LogEventsPage> AwsClient::logs_filter_log_events(const std::string& group, util::Millis start_ms,
                                                          const std::string& next_token, int limit) const {
  nlohmann::json body = {{"logGroupName", group}, {"startTime", start_ms}, {"limit", limit}, {"interleaved", true}};
  if (!next_token.empty()) {
    body["nextToken"] = next_token;
  }
  IDP_TRY_ASSIGN(nlohmann::json j, json_call("logs", "logs", m_region, "Logs_20140328.FilterLogEvents", "1.1", body));
  LogEventsPage page;
  for (const auto& e : j.value("events", nlohmann::json::array())) {
    page.events.push_back({e.value("timestamp", int64_t{0}), e.value("logStreamName", ""), e.value("message", "")});
  }
  page.next_token = j.value("nextToken", "");
  return page;
}

Expected<nlohmann::json> AwsClient::ce_get_cost_and_usage(const std::string& tag_key, const std::string& tag_value,
                                                          const std::string& start, const std::string& end) const {
  nlohmann::json body = {
      {"TimePeriod", {{"Start", start}, {"End", end}}},
      {"Granularity", "DAILY"},
      {"Metrics", {"UnblendedCost"}},
      {"Filter", {{"Tags", {{"Key", tag_key}, {"Values", {tag_value}}, {"MatchOptions", {"EQUALS"}}}}}}};
  // Cost Explorer has one endpoint, in us-east-1, whatever the environments' region.
  return json_call("ce", "ce", "us-east-1", "AWSInsightsIndexService.GetCostAndUsage", "1.1", body);
}

Expected<std::optional<nlohmann::json>> AwsClient::dynamodb_get_lock_item(const std::string& table,
                                                                          const std::string& lock_id,
                                                                          const std::string& region) const {
  IDP_TRY_ASSIGN(nlohmann::json j,
                 json_call("dynamodb", "dynamodb", region, "DynamoDB_20120810.GetItem", "1.0",
                           {{"TableName", table}, {"Key", {{"LockID", {{"S", lock_id}}}}}, {"ConsistentRead", true}}));
  if (!j.contains("Item") || !j["Item"].is_object()) {
    return std::optional<nlohmann::json>();
  }
  return std::optional<nlohmann::json>(j["Item"]);
}

Expected<void> AwsClient::dynamodb_delete_lock_item(const std::string& table, const std::string& lock_id,
                                                    const std::string& region) const {
  IDP_TRY(json_call("dynamodb", "dynamodb", region, "DynamoDB_20120810.DeleteItem", "1.0",
                    {{"TableName", table}, {"Key", {{"LockID", {{"S", lock_id}}}}}}));
  return {};
}

Expected<void> AwsClient::s3_delete_object(const std::string& bucket, const std::string& key,
                                           const std::string& region) const {
  Endpoint ep = endpoint_for("s3", region, "s3");
  std::string path;
  std::string base;
  if (ep.overridden) {
    base = ep.base; // path-style: emulators
    path = "/" + util::url_encode(bucket) + encode_key(key);
  } else {
    base = "https://" + bucket + ".s3." + region + ".amazonaws.com";
    path = encode_key(key);
  }
  std::vector<std::pair<std::string, std::string>> headers = {{"Host", util::url_host_port(base)}};
  IDP_TRY_ASSIGN(auto resp, send("s3", region, "DELETE", base + path, path, headers, "", true));
  if (resp.first == 204 || resp.first == 200 || resp.first == 404) {
    return {};
  }
  return Unexpected(aws_error("DeleteObject", resp.first, resp.second));
}

} // namespace idp::drivers::terraform
