#include "drivers/terraform/aws_status.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "drivers/common/log_files.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::terraform {

namespace {

std::string month_start(const std::tm& tm) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-01", tm.tm_year + 1900, tm.tm_mon + 1);
  return buf;
}

std::string ymd(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

} // namespace

std::optional<AwsClient> AwsStatus::client(const std::string& region) const {
  auto creds = util::aws_credentials_from_env();
  if (!creds) {
    return std::nullopt;
  }
  std::map<std::string, std::string> eps;
  if (!m_opts.s3_endpoint.empty()) {
    eps["s3"] = m_opts.s3_endpoint;
  }
  if (!m_opts.dynamodb_endpoint.empty()) {
    eps["dynamodb"] = m_opts.dynamodb_endpoint;
  }
  return AwsClient(*creds, region, m_opts.aws_endpoint, eps, m_clock);
}

Expected<Observation> AwsStatus::observe_ecs(const std::string& region, const nlohmann::json& outputs) const {
  Observation obs;
  std::string cluster = outputs.value("cluster_name", outputs.value("cluster_arn", ""));
  std::string service = outputs.value("service_name", "");
  auto aws = client(region);
  if (!aws) {
    obs.health = Health::unknown;
    obs.detail = "no AWS credentials in the server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): "
                 "cannot ask ECS about service " +
                 util::quote(service);
    return obs;
  }
  auto resp = aws->ecs_describe_services(cluster, {service});
  if (!resp) {
    obs.health = Health::unknown;
    obs.detail = "ECS: " + resp.error().message;
    return obs;
  }
  auto services = resp->value("services", nlohmann::json::array());
  if (services.empty()) {
    obs.health = Health::not_running;
    obs.detail = "ECS service " + util::quote(service) + " not found in cluster " + util::quote(cluster);
    return obs;
  }
  const auto& s = services[0];
  int running = s.value("runningCount", 0);
  int desired = s.value("desiredCount", 0);
  int pending = s.value("pendingCount", 0);
  obs.status = {{"cluster", cluster},
                {"service", service},
                {"status", s.value("status", "")},
                {"running_count", running},
                {"desired_count", desired},
                {"pending_count", pending},
                {"deployments", nlohmann::json::array()}};
  for (const auto& d : s.value("deployments", nlohmann::json::array())) {
    obs.status["deployments"].push_back({{"status", d.value("status", "")},
                                         {"rollout_state", d.value("rolloutState", "")},
                                         {"rollout_reason", d.value("rolloutStateReason", "")},
                                         {"task_definition", d.value("taskDefinition", "")},
                                         {"running_count", d.value("runningCount", 0)},
                                         {"failed_tasks", d.value("failedTasks", 0)}});
  }
  if (s.value("status", "") != "ACTIVE" || desired == 0) {
    obs.health = Health::not_running;
    obs.detail = "ECS service " + util::quote(service) + " is " + s.value("status", "?") + " with " +
                 std::to_string(desired) + " desired task(s)";
    return obs;
  }
  std::string tg;
  for (const auto& lb : s.value("loadBalancers", nlohmann::json::array())) {
    tg = lb.value("targetGroupArn", "");
  }
  int healthy_targets = 0;
  std::vector<std::string> bad;
  if (!tg.empty()) {
    auto targets = aws->elbv2_describe_target_health(tg);
    if (targets) {
      nlohmann::json tj = nlohmann::json::array();
      for (const auto& t : *targets) {
        tj.push_back(
            {{"id", t.id}, {"port", t.port}, {"state", t.state}, {"reason", t.reason}, {"description", t.description}});
        if (t.state == "healthy") {
          ++healthy_targets;
        } else {
          bad.push_back(t.id + ":" + std::to_string(t.port) + " " + t.state +
                        (t.description.empty() ? "" : " (" + t.description + ")"));
        }
      }
      obs.status["targets"] = tj;
    } else {
      obs.warnings.push_back("target health: " + targets.error().message);
    }
  }
  std::string counts = std::to_string(running) + "/" + std::to_string(desired) + " task(s) running";
  if (running < desired || (!tg.empty() && healthy_targets == 0)) {
    obs.health = Health::unhealthy;
    obs.detail = counts + (bad.empty() ? "" : "; targets: " + util::join(bad, ", "));
    return obs;
  }
  obs.health = Health::healthy;
  obs.detail = counts + (tg.empty() ? "" : ", " + std::to_string(healthy_targets) + " healthy target(s)");
  return obs;
}

Expected<LogChunk> AwsStatus::read_logs(const std::string& env, const std::string& work_dir, const LogQuery& q) const {
  // Cursor: "<local cursor>" or "<local cursor>|cw:<next start ms>".
  std::string local_cursor = q.cursor;
  util::Millis cw_from = q.since;
  bool had_cw = false;
  if (auto bar = q.cursor.rfind("|cw:"); bar != std::string::npos) {
    local_cursor = q.cursor.substr(0, bar);
    cw_from = std::max<util::Millis>(cw_from, std::atoll(q.cursor.c_str() + bar + 4));
    had_cw = true;
  }
  common::LogReader reader(util::path_join(work_dir, "logs"), "app.log");
  LogQuery lq = q;
  lq.cursor = local_cursor;
  lq.tail = 0;
  IDP_TRY_ASSIGN(LogChunk chunk, reader.read(lq));

  nlohmann::json status = nlohmann::json::object();
  if (auto t = util::read_file(util::path_join(work_dir, "status.json"))) {
    status = nlohmann::json::parse(*t, nullptr, false);
  }
  bool cloud = status.is_object() && status.value("cloud", false);
  nlohmann::json outputs = status.is_object() ? status.value("outputs", nlohmann::json::object()) : nlohmann::json();
  std::string cw_cursor;
  if (cloud && outputs.is_object() && outputs.contains("log_group")) {
    std::string region = outputs.value("aws_region", "");
    if (auto aws = client(region.empty() ? m_opts.region : region)) {
      std::string group = outputs.value("log_group", "/ecs/idp-" + env);
      std::string token;
      util::Millis last = cw_from;
      for (int page = 0; page < 10; ++page) {
        auto r = aws->logs_filter_log_events(group, cw_from, token);
        if (!r) {
          chunk.lines.push_back({util::SystemClock().now_ms(), "system", "cloudwatch logs: " + r.error().message});
          break;
        }
        for (const auto& e : r->events) {
          chunk.lines.push_back({e.timestamp, "stdout", e.message});
          last = std::max(last, e.timestamp + 1);
        }
        token = r->next_token;
        if (token.empty()) {
          break;
        }
      }
      cw_cursor = "|cw:" + std::to_string(last);
    }
  } else if (had_cw) {
    cw_cursor = "|cw:" + std::to_string(cw_from);
  }
  std::stable_sort(chunk.lines.begin(), chunk.lines.end(),
                   [](const LogLine& a, const LogLine& b) { return a.at < b.at; });
  if (q.tail > 0 && chunk.lines.size() > q.tail) {
    chunk.lines.erase(chunk.lines.begin(), chunk.lines.end() - static_cast<ptrdiff_t>(q.tail));
  }
  if (!cw_cursor.empty()) {
    chunk.cursor += cw_cursor;
  }
  return chunk;
}

Expected<nlohmann::json> AwsStatus::cost(const std::string& env) const {
  auto aws = client("us-east-1");
  if (!aws) {
    return make_error(ErrorCode::invalid_config, "cost needs AWS credentials in the server's environment "
                                                 "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
  }
  std::time_t now = static_cast<std::time_t>((m_clock ? m_clock->now_ms() : util::SystemClock().now_ms()) / 1000);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::string start = month_start(tm);
  std::string today = ymd(now);
  std::string end = ymd(now + 86400); // end is exclusive: include today
  if (start == end) {
    start = today;
  }
  IDP_TRY_ASSIGN(nlohmann::json r, aws->ce_get_cost_and_usage("idp:environment", env, start, end));
  double mtd = 0;
  std::string unit = "USD";
  nlohmann::json days = nlohmann::json::array();
  std::vector<double> complete; // days before today
  for (const auto& p : r.value("ResultsByTime", nlohmann::json::array())) {
    std::string day = p.value("TimePeriod", nlohmann::json::object()).value("Start", "");
    auto total = p.value("Total", nlohmann::json::object()).value("UnblendedCost", nlohmann::json::object());
    double amount = std::atof(total.value("Amount", "0").c_str());
    unit = total.value("Unit", unit);
    mtd += amount;
    days.push_back({{"date", day}, {"amount", amount}, {"estimated", p.value("Estimated", false)}});
    if (day < today) {
      complete.push_back(amount);
    }
  }
  // Daily burn: the mean of the last (up to) 3 complete days; today is still accruing.
  double burn = 0;
  size_t n = std::min<size_t>(3, complete.size());
  for (size_t i = complete.size() - n; i < complete.size(); ++i) {
    burn += complete[i];
  }
  burn = n > 0 ? burn / static_cast<double>(n) : mtd;
  int days_in_month = 31;
  for (int d = 28; d <= 31; ++d) {
    std::tm probe = tm;
    probe.tm_mday = d;
    probe.tm_hour = 12;
    std::time_t t = ::timegm(&probe);
    std::tm back{};
    ::gmtime_r(&t, &back);
    if (back.tm_mon == tm.tm_mon) {
      days_in_month = d;
    }
  }
  int remaining = days_in_month - tm.tm_mday; // days after today
  double today_amount = days.empty() ? 0 : days.back().value("amount", 0.0);
  double projected = mtd + burn * remaining + std::max(0.0, burn - today_amount);
  return nlohmann::json{{"environment", env},
                        {"currency", unit},
                        {"month_to_date", mtd},
                        {"daily_burn", burn},
                        {"projected_month", projected},
                        {"period", {{"start", start}, {"end", end}}},
                        {"days", days},
                        {"source", "AWS Cost Explorer, tag idp:environment (activate it as a cost allocation tag)"}};
}

} // namespace idp::drivers::terraform
