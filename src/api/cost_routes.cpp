#include "api/cost_routes.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "api/api_error.hpp"
#include "core/ttl.hpp"
#include "engine/cost.hpp"
#include "util/json.hpp"
#include "util/prometheus.hpp"
#include "util/strings.hpp"

namespace idp::api {

namespace {

using nlohmann::json;

// ?since=7d: the start of the hour that long ago; absent: from the first sample.
util::Millis since_of(const httplib::Request& req, util::Millis now) {
  if (!req.has_param("since")) {
    return 0;
  }
  std::string s = req.get_param_value("since");
  auto d = core::parse_duration(s);
  if (!d || *d <= 0) {
    throw ApiError(400, "invalid_argument",
                   "since: expected a duration like 7d or 12h, got " + util::quote(s.substr(0, 64)));
  }
  util::Millis from = now - *d;
  return from - from % 3'600'000;
}

std::string by_of(const httplib::Request& req, bool allow_environment) {
  std::string by = req.get_param_value("by");
  if (allow_environment && by == "environment") {
    return "";
  }
  if (auto ok = engine::check_cost_grouping(by); !ok) {
    throw ApiError(400, "invalid_argument", ok.error().message);
  }
  return by;
}

json rates_json(const engine::CostRates& r) {
  return {{"cpu_hour", r.cpu_hour}, {"memory_gb_hour", r.memory_gb_hour}, {"storage_gb_month", r.storage_gb_month}};
}

} // namespace

Expected<std::string> cost_metrics_text(ApiContext& ctx) {
  util::Millis now = ctx.clock->now_ms();
  IDP_TRY_ASSIGN(auto hours, ctx.store->list_usage(engine::month_start_of(now), now + 3'600'000, ""));
  auto lines = engine::summarize_cost(hours, ctx.cost_rates, now, "", nullptr);
  std::string cur = util::prometheus_label_value(ctx.cost_rates.currency);
  std::string out = "# HELP idp_environment_cost What each environment cost this month so far.\n"
                    "# TYPE idp_environment_cost gauge\n";
  for (const auto& l : lines) {
    out += "idp_environment_cost{environment=\"" + util::prometheus_label_value(l.key) + "\",currency=\"" + cur +
           "\"} " + util::prometheus_number(l.to_date.total()) + "\n";
  }
  out += "# HELP idp_environment_cost_per_day What each environment costs a day at its last day's pace.\n"
         "# TYPE idp_environment_cost_per_day gauge\n";
  for (const auto& l : lines) {
    out += "idp_environment_cost_per_day{environment=\"" + util::prometheus_label_value(l.key) + "\",currency=\"" +
           cur + "\"} " + util::prometheus_number(l.per_day) + "\n";
  }
  return out;
}

void register_cost_routes(httplib::Server& s, ApiContext& ctx) {
  auto team_of = [&ctx](const std::string& owner) {
    auto it = ctx.team_of.find(owner);
    return it == ctx.team_of.end() ? std::string() : it->second;
  };
  s.Get("/api/v1/cost", [&ctx, team_of](const httplib::Request& req, httplib::Response& res) {
    util::Millis now = ctx.clock->now_ms();
    util::Millis since = since_of(req, now);
    std::string by = by_of(req, false);
    std::string env = req.get_param_value("env");
    auto hours = unwrap(ctx.store->list_usage(since, now + 3'600'000, env));
    auto lines = engine::summarize_cost(hours, ctx.cost_rates, now, by, team_of);
    json out = json::array();
    engine::CostFigures total;
    double per_day = 0;
    double projected = 0;
    for (const auto& l : lines) {
      out.push_back(l.to_json(by));
      total.add(l.to_date);
      per_day += l.per_day;
      projected += l.projected_month;
    }
    json t = total.to_json();
    t["per_day"] = per_day;
    t["projected_month"] = projected;
    send_json(res, 200,
              {{"currency", ctx.cost_rates.currency},
               {"rates", rates_json(ctx.cost_rates)},
               {"by", by.empty() ? "environment" : by},
               {"since", since > 0 ? json(util::format_iso8601(since)) : json(nullptr)},
               {"lines", out},
               {"total", t}});
  });

  s.Get(R"(/api/v1/environments/([^/]+)/cost)", [&ctx, team_of](const httplib::Request& req, httplib::Response& res) {
    auto env = unwrap(ctx.store->get_environment(req.matches[1].str()));
    util::Millis now = ctx.clock->now_ms();
    util::Millis since = since_of(req, now);
    auto hours = unwrap(ctx.store->list_usage(since, now + 3'600'000, env.name));
    auto lines = engine::summarize_cost(hours, ctx.cost_rates, now, "", team_of);
    json out;
    if (lines.empty()) {
      engine::CostLine none;
      none.key = env.name;
      none.owner = env.owner;
      none.team = team_of(env.owner);
      none.repo = env.repo;
      none.template_name = env.template_name;
      none.runtime = env.runtime;
      out = none.to_json("");
    } else {
      out = lines.front().to_json("");
    }
    out["currency"] = ctx.cost_rates.currency;
    out["rates"] = rates_json(ctx.cost_rates);
    out["since"] = since > 0 ? json(util::format_iso8601(since)) : json(nullptr);
    // Priced from the config's size alone when nothing was measured (a cloud runtime).
    out["estimate"] = out.value("measured_hours", 0.0) <= 0;
    if (auto driver = ctx.drivers->get(env.runtime)) {
      if (auto billed = (*driver)->cost(env)) {
        out["cost_explorer"] = *billed; // the provider's bill, a day behind
      }
    }
    send_json(res, 200, out);
  });

  s.Get("/api/v1/cost/report", [&ctx, team_of](const httplib::Request& req, httplib::Response& res) {
    std::string month = req.get_param_value("month");
    auto range = engine::month_range(month);
    if (!range) {
      throw ApiError(400, "invalid_argument", range.error().message);
    }
    std::string by = by_of(req, true);
    std::string format = req.has_param("format") ? req.get_param_value("format") : "json";
    if (format != "csv" && format != "json") {
      throw ApiError(400, "invalid_argument", "format: expected csv or json, got " + util::quote(format.substr(0, 32)));
    }
    auto hours = unwrap(ctx.store->list_usage(range->first, range->second, ""));
    auto lines = engine::summarize_cost(hours, ctx.cost_rates, range->second, by, team_of);
    if (format == "csv") {
      res.status = 200;
      res.set_header("Content-Disposition", "attachment; filename=\"idp-cost-" + month + ".csv\"");
      res.set_content(engine::cost_report_csv(month, lines, ctx.cost_rates, by), "text/csv; charset=utf-8");
      return;
    }
    send_json(res, 200, engine::cost_report_json(month, lines, ctx.cost_rates, by));
  });
}

} // namespace idp::api
