#include "engine/cost.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::engine {

namespace {

constexpr double k_ms_per_hour = 3'600'000.0;
constexpr double k_bytes_per_gb = 1024.0 * 1024.0 * 1024.0;
constexpr double k_hours_per_month = 730.0; // AWS's month: 365 x 24 / 12

// Money to 6 decimals (sub-cent figures of a few minutes still add up exactly).
double round6(double v) { return std::round(v * 1e6) / 1e6; }

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// A CSV field: quoted when it holds a comma, a quote or a line break; a leading = + - @
// is prefixed with ' so that a spreadsheet never runs it as a formula.
std::string csv_field(const std::string& s) {
  std::string v = s;
  if (!v.empty() && std::string_view("=+-@").find(v.front()) != std::string_view::npos) {
    v = "'" + v;
  }
  if (v.find_first_of(",\"\r\n") == std::string::npos) {
    return v;
  }
  std::string out = "\"";
  for (char c : v) {
    out += c == '"' ? std::string("\"\"") : std::string(1, c);
  }
  return out + "\"";
}

std::string group_of(const store::UsageHour& u, const std::string& by,
                     const std::function<std::string(const std::string&)>& team_of) {
  if (by == "owner") {
    return u.owner;
  }
  if (by == "team") {
    return team_of ? team_of(u.owner) : "";
  }
  if (by == "repo") {
    return u.repo;
  }
  if (by == "template") {
    return u.template_name;
  }
  return u.env;
}

util::Millis next_month(util::Millis start) {
  std::string iso = util::format_iso8601(start);
  int y = util::parse_int<int>(iso.substr(0, 4), 1970, 9999).value_or(1970);
  int m = util::parse_int<int>(iso.substr(5, 2), 1, 12).value_or(1);
  if (++m > 12) {
    m = 1;
    ++y;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-01T00:00:00Z", y, m);
  return util::parse_iso8601(buf).value_or(start);
}

} // namespace

util::Millis month_start_of(util::Millis t) {
  std::string iso = util::format_iso8601(t); // YYYY-MM-DDTHH:MM:SSZ
  return util::parse_iso8601(iso.substr(0, 8) + "01T00:00:00Z").value_or(t);
}

void CostFigures::add(const CostFigures& o) {
  running_hours += o.running_hours;
  measured_hours += o.measured_hours;
  reserved_vcpu_hours += o.reserved_vcpu_hours;
  reserved_gb_hours += o.reserved_gb_hours;
  cpu_seconds += o.cpu_seconds;
  memory_gb_hours += o.memory_gb_hours;
  storage_gb_months += o.storage_gb_months;
  reserved += o.reserved;
  used += o.used;
  storage += o.storage;
}

nlohmann::json CostFigures::to_json() const {
  return {{"running_hours", round6(running_hours)},
          {"measured_hours", round6(measured_hours)},
          {"reserved_vcpu_hours", round6(reserved_vcpu_hours)},
          {"reserved_gb_hours", round6(reserved_gb_hours)},
          {"cpu_seconds", round6(cpu_seconds)},
          {"memory_gb_hours", round6(memory_gb_hours)},
          {"storage_gb_months", round6(storage_gb_months)},
          {"reserved", round6(reserved)},
          {"used", round6(used)},
          {"storage", round6(storage)},
          {"total", round6(total())}};
}

CostFigures price(const store::UsageHour& u, const CostRates& r) {
  CostFigures f;
  f.running_hours = u.running_ms / k_ms_per_hour;
  f.measured_hours = u.measured_ms / k_ms_per_hour;
  f.reserved_vcpu_hours = u.reserved_cpu_ms / 1024.0 / k_ms_per_hour;
  f.reserved_gb_hours = u.reserved_memory_mb_ms / 1024.0 / k_ms_per_hour;
  f.cpu_seconds = u.used_cpu_seconds;
  f.memory_gb_hours = u.used_memory_byte_ms / k_bytes_per_gb / k_ms_per_hour;
  f.storage_gb_months = u.storage_byte_ms / k_bytes_per_gb / k_ms_per_hour / k_hours_per_month;
  f.reserved = f.reserved_vcpu_hours * r.cpu_hour + f.reserved_gb_hours * r.memory_gb_hour;
  f.used = f.cpu_seconds / 3600.0 * r.cpu_hour + f.memory_gb_hours * r.memory_gb_hour;
  f.storage = f.storage_gb_months * r.storage_gb_month;
  return f;
}

nlohmann::json CostLine::to_json(const std::string& by) const {
  nlohmann::json j = to_date.to_json();
  if (by.empty()) {
    j["name"] = key;
    j["owner"] = owner;
    j["team"] = team;
    j["repo"] = repo;
    j["template"] = template_name;
    j["runtime"] = runtime;
  } else {
    j[by] = key;
    j["environments"] = environments;
  }
  j["per_day"] = round6(per_day);
  j["projected_month"] = round6(projected_month);
  j["first_hour"] = first_hour > 0 ? nlohmann::json(util::format_iso8601(first_hour)) : nlohmann::json(nullptr);
  j["last_hour"] = last_hour > 0 ? nlohmann::json(util::format_iso8601(last_hour)) : nlohmann::json(nullptr);
  return j;
}

Expected<void> check_cost_grouping(const std::string& by) {
  if (by.empty() || by == "owner" || by == "team" || by == "repo" || by == "template") {
    return {};
  }
  return make_error(ErrorCode::invalid_argument,
                    "by: expected owner, team, repo or template, got " + util::quote(by.substr(0, 64)));
}

std::vector<CostLine> summarize_cost(const std::vector<store::UsageHour>& hours, const CostRates& rates,
                                     util::Millis now, const std::string& by,
                                     const std::function<std::string(const std::string&)>& team_of) {
  struct Acc {
    CostLine line;
    CostFigures last_day;
    CostFigures this_month;
  };
  std::map<std::string, Acc> acc;
  const util::Millis day_ago = now - 86'400'000;
  const util::Millis month = month_start_of(now);
  for (const auto& u : hours) {
    Acc& a = acc[group_of(u, by, team_of)];
    CostFigures f = price(u, rates);
    a.line.to_date.add(f);
    a.line.environments.insert(u.env);
    if (u.hour + 3'600'000 > day_ago) {
      a.last_day.add(f);
    }
    if (u.hour >= month) {
      a.this_month.add(f);
    }
    if (a.line.first_hour == 0 || u.hour < a.line.first_hour) {
      a.line.first_hour = u.hour;
    }
    if (u.hour >= a.line.last_hour) {
      a.line.last_hour = u.hour;
      a.line.owner = u.owner;
      a.line.repo = u.repo;
      a.line.template_name = u.template_name;
      a.line.runtime = u.runtime;
      a.line.team = team_of ? team_of(u.owner) : "";
    }
  }
  std::vector<CostLine> out;
  const double days_left = std::max(0.0, (next_month(month) - now) / 86'400'000.0);
  for (auto& [key, a] : acc) {
    a.line.key = key;
    // A day at the pace of its last 24 hours of running (reserved, and storage as it
    // accrues whether or not it runs); nothing when it did not run in them.
    if (a.last_day.running_hours > 0) {
      a.line.per_day = a.last_day.reserved / a.last_day.running_hours * 24.0 +
                       a.last_day.storage / std::max(a.last_day.running_hours, 1.0 / 60) * 24.0;
    }
    a.line.projected_month = a.this_month.total() + a.line.per_day * days_left;
    out.push_back(std::move(a.line));
  }
  return out;
}

Expected<std::pair<util::Millis, util::Millis>> month_range(const std::string& month) {
  auto bad = [&] {
    return make_error(ErrorCode::invalid_argument,
                      "month: expected YYYY-MM like 2026-11, got " + util::quote(month.substr(0, 32)));
  };
  if (month.size() != 7 || month[4] != '-') {
    return bad();
  }
  auto y = util::parse_int<int>(month.substr(0, 4), 1970, 9999);
  auto m = util::parse_int<int>(month.substr(5, 2), 1, 12);
  if (!y || !m) {
    return bad();
  }
  auto start = util::parse_iso8601(month + "-01T00:00:00Z");
  if (!start) {
    return bad();
  }
  return std::make_pair(*start, next_month(*start));
}

std::string cost_report_csv(const std::string& month, const std::vector<CostLine>& lines, const CostRates& rates,
                            const std::string& by) {
  std::string group = by.empty() ? "environment" : by;
  std::string out = "month," + group +
                    ",environments,running_hours,reserved_vcpu_hours,reserved_gb_hours,cpu_seconds,memory_gb_hours,"
                    "storage_gb_months,reserved,used,storage,total,currency\n";
  for (const auto& l : lines) {
    const CostFigures& f = l.to_date;
    out += month + "," + csv_field(l.key) + "," + std::to_string(l.environments.size()) + "," +
           fixed(f.running_hours, 4) + "," + fixed(f.reserved_vcpu_hours, 4) + "," + fixed(f.reserved_gb_hours, 4) +
           "," + fixed(f.cpu_seconds, 3) + "," + fixed(f.memory_gb_hours, 4) + "," + fixed(f.storage_gb_months, 6) +
           "," + fixed(f.reserved, 4) + "," + fixed(f.used, 4) + "," + fixed(f.storage, 4) + "," + fixed(f.total(), 4) +
           "," + csv_field(rates.currency) + "\n";
  }
  return out;
}

nlohmann::json cost_report_json(const std::string& month, const std::vector<CostLine>& lines, const CostRates& rates,
                                const std::string& by) {
  std::string group = by.empty() ? "environment" : by;
  nlohmann::json rows = nlohmann::json::array();
  CostFigures total;
  for (const auto& l : lines) {
    nlohmann::json r = l.to_date.to_json();
    r[group] = l.key;
    r["environments"] = l.environments.size();
    rows.push_back(std::move(r));
    total.add(l.to_date);
  }
  return {{"month", month},
          {"by", group},
          {"currency", rates.currency},
          {"rates",
           {{"cpu_hour", rates.cpu_hour},
            {"memory_gb_hour", rates.memory_gb_hour},
            {"storage_gb_month", rates.storage_gb_month}}},
          {"rows", rows},
          {"total", total.to_json()}};
}

} // namespace idp::engine
