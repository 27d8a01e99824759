// AwsClient and the driver's AWS paths (observe, logs, cost) against a local HTTP server
// that checks every request's SigV4 signature and returns canned AWS responses.

#include "drivers/terraform/aws_client.hpp"

#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "drivers/terraform/terraform_driver.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::terraform {
namespace {

const util::AwsCredentials k_creds{"AKIDTEST", "secret/KEY+value", "session-token-1"};

struct Seen {
  std::string method, path, target, content_type, body, scope, authorization;
  bool signature_ok = false;
};

// Recomputes the signature from what arrived, as AWS does.
bool verify(const httplib::Request& req, std::string& scope) {
  std::string auth = req.get_header_value("Authorization");
  auto cred = auth.find("Credential=");
  auto sh = auth.find(", SignedHeaders=");
  auto sig = auth.find(", Signature=");
  if (auth.rfind("AWS4-HMAC-SHA256 ", 0) != 0 || cred == std::string::npos || sh == std::string::npos ||
      sig == std::string::npos) {
    return false;
  }
  std::string credential = auth.substr(cred + 11, sh - cred - 11);
  auto parts = util::split(credential, '/');
  if (parts.size() != 5 || parts[0] != k_creds.access_key_id || parts[4] != "aws4_request") {
    return false;
  }
  scope = parts[2] + "/" + parts[3];
  util::SigV4Request r;
  r.method = req.method;
  r.path = req.path;
  r.body = req.body;
  for (const auto& h : util::split(auth.substr(sh + 16, sig - sh - 16), ';')) {
    r.headers.emplace_back(h, req.get_header_value(h.c_str()));
  }
  util::SigV4Params p;
  p.region = parts[2];
  p.service = parts[3];
  bool s3 = p.service == "s3";
  p.normalize_path = !s3;
  p.double_encode = !s3;
  util::SigV4Signature expect = util::sigv4_sign(r, k_creds, p);
  return expect.signature == auth.substr(sig + 12);
}

class FakeAws {
public:
  FakeAws() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Seen s;
      s.method = req.method;
      s.path = req.path;
      s.target = req.get_header_value("X-Amz-Target");
      s.content_type = req.get_header_value("Content-Type");
      s.body = req.body;
      s.authorization = req.get_header_value("Authorization");
      s.signature_ok = verify(req, s.scope) && req.get_header_value("X-Amz-Security-Token") == k_creds.session_token;
      std::lock_guard<std::mutex> g(mu);
      seen.push_back(s);
      auto it = canned.find(s.target.empty() ? s.method : s.target);
      if (it == canned.end() && s.body.find("Action=DescribeTargetHealth") != std::string::npos) {
        it = canned.find("DescribeTargetHealth");
      }
      if (it == canned.end()) {
        res.status = 400;
        res.set_content(R"({"__type":"UnknownOperationException"})", "application/x-amz-json-1.1");
        return;
      }
      res.status = it->second.first;
      res.set_content(it->second.second, "application/x-amz-json-1.1");
    };
    server.Post("/", handler);
    server.Delete(".*", handler);
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    while (!server.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  ~FakeAws() {
    server.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  Seen last() {
    std::lock_guard<std::mutex> g(mu);
    return seen.empty() ? Seen{} : seen.back();
  }

  httplib::Server server;
  int port = 0;
  std::thread thread;
  std::mutex mu;
  std::vector<Seen> seen;
  std::map<std::string, std::pair<int, std::string>> canned; // target (or method) → status, body
};

const char* k_ecs = "AmazonEC2ContainerServiceV20141113.DescribeServices";

const std::string k_services = R"({"services":[{"serviceName":"idp-pr-1","status":"ACTIVE","runningCount":1,
  "desiredCount":1,"pendingCount":0,"loadBalancers":[{"targetGroupArn":"arn:aws:elasticloadbalancing:eu-west-1:123:targetgroup/idp-pr-1-abc-tg/1"}],
  "deployments":[{"status":"PRIMARY","rolloutState":"COMPLETED","taskDefinition":"td:3","runningCount":1,"failedTasks":0}]}],"failures":[]})";

const std::string k_targets =
    R"(<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTargetHealthResult><TargetHealthDescriptions>
    <member><Target><Id>10.0.1.5</Id><Port>8080</Port></Target><HealthCheckPort>8080</HealthCheckPort>
      <TargetHealth><State>healthy</State></TargetHealth></member>
    <member><Target><Id>10.0.2.9</Id><Port>8080</Port></Target>
      <TargetHealth><State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason><Description>Health checks failed with these codes: [502]</Description></TargetHealth></member>
  </TargetHealthDescriptions></DescribeTargetHealthResult></DescribeTargetHealthResponse>)";

TEST(AwsClientTest, EcsDescribeServicesIsSignedJsonProtocol) {
  FakeAws aws;
  aws.canned[k_ecs] = {200, k_services};
  AwsClient c(k_creds, "eu-west-1", aws.url());
  auto r = c.ecs_describe_services("idp-pr-1", {"idp-pr-1"});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)["services"][0].value("runningCount", 0), 1);
  Seen s = aws.last();
  EXPECT_EQ(s.method, "POST");
  EXPECT_EQ(s.path, "/");
  EXPECT_EQ(s.target, k_ecs);
  EXPECT_EQ(s.content_type, "application/x-amz-json-1.1");
  EXPECT_EQ(s.scope, "eu-west-1/ecs");
  EXPECT_TRUE(s.signature_ok) << s.authorization;
  EXPECT_NE(s.authorization.find("x-amz-target"), std::string::npos) << "X-Amz-Target must be signed";
  EXPECT_EQ(nlohmann::json::parse(s.body)["cluster"], "idp-pr-1");
}

TEST(AwsClientTest, Elbv2TargetHealthIsQueryProtocol) {
  FakeAws aws;
  aws.canned["DescribeTargetHealth"] = {200, k_targets};
  AwsClient c(k_creds, "eu-west-1", aws.url());
  auto r = c.elbv2_describe_target_health("arn:aws:elasticloadbalancing:eu-west-1:123:targetgroup/x/1");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].id, "10.0.1.5");
  EXPECT_EQ((*r)[0].port, 8080);
  EXPECT_EQ((*r)[0].state, "healthy");
  EXPECT_EQ((*r)[1].reason, "Target.FailedHealthChecks");
  Seen s = aws.last();
  EXPECT_EQ(s.scope, "eu-west-1/elasticloadbalancing");
  EXPECT_TRUE(s.signature_ok);
  EXPECT_EQ(s.content_type, "application/x-www-form-urlencoded; charset=utf-8");
  EXPECT_NE(s.body.find("TargetGroupArn=arn%3Aaws%3Aelasticloadbalancing"), std::string::npos) << s.body;
  EXPECT_NE(s.body.find("Version=2015-12-01"), std::string::npos);
}

TEST(AwsClientTest, LogsAndCostExplorer) {
  FakeAws aws;
  aws.canned["Logs_20140328.FilterLogEvents"] = {
      200,
      R"({"events":[{"timestamp":1767225601000,"logStreamName":"ecs/app/1","message":"hello"}],"nextToken":"n2"})"};
  aws.canned["AWSInsightsIndexService.GetCostAndUsage"] = {200, R"({"ResultsByTime":[]})"};
  AwsClient c(k_creds, "eu-west-1", aws.url());
  auto page = c.logs_filter_log_events("/ecs/idp-pr-1", 1767225600000, "");
  ASSERT_TRUE(page.has_value()) << page.error().message;
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].message, "hello");
  EXPECT_EQ(page->next_token, "n2");
  EXPECT_EQ(aws.last().scope, "eu-west-1/logs");
  EXPECT_EQ(nlohmann::json::parse(aws.last().body)["logGroupName"], "/ecs/idp-pr-1");

  auto cost = c.ce_get_cost_and_usage("idp:environment", "pr-1", "2026-01-01", "2026-01-10");
  ASSERT_TRUE(cost.has_value()) << cost.error().message;
  Seen s = aws.last();
  EXPECT_EQ(s.scope, "us-east-1/ce"); // Cost Explorer lives in us-east-1 only
  EXPECT_TRUE(s.signature_ok);
  auto body = nlohmann::json::parse(s.body);
  EXPECT_EQ(body["Filter"]["Tags"]["Key"], "idp:environment");
  EXPECT_EQ(body["Filter"]["Tags"]["Values"][0], "pr-1");
  EXPECT_EQ(body["Granularity"], "DAILY");
}

TEST(AwsClientTest, DynamoDbLockItemsAndS3Delete) {
  FakeAws aws;
  aws.canned["DynamoDB_20120810.GetItem"] = {200, R"({"Item":{"LockID":{"S":"b/k"},"Info":{"S":"{\"ID\":\"abc\"}"}}})"};
  aws.canned["DynamoDB_20120810.DeleteItem"] = {200, "{}"};
  aws.canned["DELETE"] = {204, ""};
  AwsClient c(k_creds, "eu-west-1", "", {{"dynamodb", aws.url()}, {"s3", aws.url()}});
  auto item = c.dynamodb_get_lock_item("locks", "b/k", "eu-central-1");
  ASSERT_TRUE(item.has_value()) << item.error().message;
  ASSERT_TRUE(item->has_value());
  EXPECT_EQ(aws.last().content_type, "application/x-amz-json-1.0");
  EXPECT_EQ(aws.last().scope, "eu-central-1/dynamodb");
  ASSERT_TRUE(c.dynamodb_delete_lock_item("locks", "b/k-md5", "eu-central-1").has_value());
  ASSERT_TRUE(c.s3_delete_object("state", "environments/pr 1/eu-west-1/terraform.tfstate", "eu-central-1").has_value());
  Seen s = aws.last();
  EXPECT_EQ(s.method, "DELETE");
  EXPECT_EQ(s.path, "/state/environments/pr 1/eu-west-1/terraform.tfstate");
  EXPECT_EQ(s.scope, "eu-central-1/s3");
  EXPECT_TRUE(s.signature_ok) << s.authorization;
}

TEST(AwsClientTest, ErrorsAreClassifiedWithoutSecrets) {
  FakeAws aws;
  AwsClient c(k_creds, "eu-west-1", aws.url());
  aws.canned[k_ecs] = {400,
                       R"({"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"})"};
  auto r = c.ecs_describe_services("c", {"s"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
  EXPECT_EQ(r.error().message, "DescribeServices: ThrottlingException: Rate exceeded");
  aws.canned[k_ecs] = {
      400,
      R"({"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."})"};
  r = c.ecs_describe_services("c", {"s"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::unauthorized);
  EXPECT_EQ(r.error().message.find(k_creds.secret_access_key), std::string::npos);
  EXPECT_EQ(r.error().message.find(k_creds.session_token), std::string::npos);
  aws.canned[k_ecs] = {500, "oops"};
  EXPECT_EQ(c.ecs_describe_services("c", {"s"}).error().code, ErrorCode::transient);
  AwsClient down(k_creds, "eu-west-1", "http://127.0.0.1:1");
  EXPECT_EQ(down.ecs_describe_services("c", {"s"}).error().code, ErrorCode::transient);
}

// The driver's AWS paths for an environment applied from an ECS template (its work
// directory written as an apply would leave it).
class TerraformAwsDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    ::setenv("AWS_ACCESS_KEY_ID", k_creds.access_key_id.c_str(), 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", k_creds.secret_access_key.c_str(), 1);
    ::setenv("AWS_SESSION_TOKEN", k_creds.session_token.c_str(), 1);
    DriverContext ctx;
    ctx.home = m_tmp.path();
    ctx.clock = &m_clock;
    auto opts = TerraformOptions::parse({{"aws_endpoint", m_aws.url()}, {"region", "eu-west-1"}});
    ASSERT_TRUE(opts.has_value());
    m_driver = std::make_unique<TerraformDriver>(ctx, *opts);
    std::string work = m_driver->work_dir("pr-1");
    ASSERT_TRUE(util::ensure_dir(work).has_value());
    EnvSettings s;
    s.template_name = "api-service";
    s.region = "eu-west-1";
    ASSERT_TRUE(util::write_file_atomic(work + "/settings.json", s.to_json().dump()).has_value());
    nlohmann::json status = {{"last_apply_ok", true},
                             {"cloud", true},
                             {"outputs",
                              {{"cluster_name", "idp-pr-1"},
                               {"service_name", "idp-pr-1"},
                               {"log_group", "/ecs/idp-pr-1"},
                               {"aws_region", "eu-west-1"}}}};
    ASSERT_TRUE(util::write_file_atomic(work + "/status.json", status.dump()).has_value());
    m_env.name = "pr-1";
    m_env.template_name = "api-service";
    m_env.runtime = "terraform";
  }
  void TearDown() override {
    ::unsetenv("AWS_ACCESS_KEY_ID");
    ::unsetenv("AWS_SECRET_ACCESS_KEY");
    ::unsetenv("AWS_SESSION_TOKEN");
  }

  struct FixedClock : util::Clock {
    util::Millis now_ms() const override { return 1768478400000; } // 2026-01-15T12:00:00Z
  } m_clock;
  idp::testing::TempDir m_tmp{"idp-tf-aws"};
  FakeAws m_aws;
  std::unique_ptr<TerraformDriver> m_driver;
  core::Environment m_env;
};

TEST_F(TerraformAwsDriverTest, ObserveUsesEcsAndTargetHealth) {
  m_aws.canned[k_ecs] = {200, k_services};
  m_aws.canned["DescribeTargetHealth"] = {200, k_targets};
  auto obs = m_driver->observe(m_env);
  ASSERT_TRUE(obs.has_value()) << obs.error().message;
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_EQ(obs->status["running_count"], 1);
  EXPECT_EQ(obs->status["targets"].size(), 2u);
  EXPECT_EQ(obs->status["deployments"][0]["rollout_state"], "COMPLETED");

  auto down = nlohmann::json::parse(k_services);
  down["services"][0]["runningCount"] = 0;
  m_aws.canned[k_ecs] = {200, down.dump()};
  obs = m_driver->observe(m_env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::unhealthy) << obs->detail;
  EXPECT_NE(obs->detail.find("0/1 task(s) running"), std::string::npos) << obs->detail;
}

TEST_F(TerraformAwsDriverTest, ObserveWithoutCredentialsIsUnknown) {
  ::unsetenv("AWS_ACCESS_KEY_ID");
  auto obs = m_driver->observe(m_env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::unknown);
  EXPECT_NE(obs->detail.find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST_F(TerraformAwsDriverTest, ReadLogsMergesCloudWatchAndResumes) {
  m_aws.canned["Logs_20140328.FilterLogEvents"] = {
      200, R"({"events":[{"timestamp":1767225601000,"logStreamName":"ecs/app/1","message":"listening on 8080"}]})"};
  auto chunk = m_driver->read_logs(m_env, {});
  ASSERT_TRUE(chunk.has_value()) << chunk.error().message;
  ASSERT_EQ(chunk->lines.size(), 1u);
  EXPECT_EQ(chunk->lines[0].text, "listening on 8080");
  EXPECT_NE(chunk->cursor.find("|cw:1767225601001"), std::string::npos) << chunk->cursor;
  m_aws.canned["Logs_20140328.FilterLogEvents"] = {200, R"({"events":[]})"};
  auto next = m_driver->read_logs(m_env, {0, 0, chunk->cursor});
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->lines.empty());
  EXPECT_EQ(nlohmann::json::parse(m_aws.last().body)["startTime"], 1767225601001);
}

TEST_F(TerraformAwsDriverTest, CostReportsBurnAndProjection) {
  nlohmann::json days = nlohmann::json::array();
  for (int d = 1; d <= 15; ++d) {
    char start[16];
    std::snprintf(start, sizeof start, "2026-01-%02d", d);
    days.push_back({{"TimePeriod", {{"Start", start}}},
                    {"Total", {{"UnblendedCost", {{"Amount", d == 15 ? "1.0" : "2.0"}, {"Unit", "USD"}}}}},
                    {"Estimated", d == 15}});
  }
  m_aws.canned["AWSInsightsIndexService.GetCostAndUsage"] = {200, nlohmann::json{{"ResultsByTime", days}}.dump()};
  auto cost = m_driver->cost(m_env);
  ASSERT_TRUE(cost.has_value()) << cost.error().message;
  EXPECT_DOUBLE_EQ((*cost)["month_to_date"].get<double>(), 29.0);
  EXPECT_DOUBLE_EQ((*cost)["daily_burn"].get<double>(), 2.0);
  // 29 so far + the rest of today (1) + 16 more days at 2.
  EXPECT_DOUBLE_EQ((*cost)["projected_month"].get<double>(), 62.0);
  auto body = nlohmann::json::parse(m_aws.last().body);
  EXPECT_EQ(body["TimePeriod"]["Start"], "2026-01-01");
  EXPECT_EQ(body["TimePeriod"]["End"], "2026-01-16");
}

TEST_F(TerraformAwsDriverTest, ExecIsNotSupported) {
  auto r = m_driver->exec(m_env, {"ls"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("not supported on terraform runtime; use ECS Exec"), std::string::npos);
  // Exec sessions (idp exec's streaming form) give the same reason.
  ExecRequest req;
  req.argv = {"sh"};
  req.tty = true;
  auto s = m_driver->start_exec(m_env, req);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(s.error().message.find("not supported on terraform runtime; use ECS Exec"), std::string::npos)
      << s.error().message;
}

} // namespace
} // namespace idp::drivers::terraform
