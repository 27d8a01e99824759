#pragma once
// What environments cost (issue 12): the usage the daemon samples (store::UsageHour, by
// engine::UsageSampler) priced at the server's rates (server config `cost:`), whose
// defaults are AWS Fargate's on-demand prices (us-east-1, Linux/x86) and RDS storage, so a
// team sees what the same preview would cost on AWS.
//
// Two figures per environment: `reserved`, the config's cpu and memory for as long as it
// runs (what Fargate bills), and `used`, the CPU time and memory its processes measured
// (cgroup counters; local runtime). `storage` is its database's size over time. The total
// is reserved + storage: what the preview costs.

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::engine {

struct CostRates {
  double cpu_hour = 0.04048;        // per vCPU-hour (Fargate)
  double memory_gb_hour = 0.004445; // per GB-hour (Fargate)
  double storage_gb_month = 0.115;  // per GB-month (RDS general purpose storage)
  std::string currency = "USD";
};

// Priced sums over some usage hours.
struct CostFigures {
  double running_hours = 0;
  double measured_hours = 0; // of running_hours, those the used figures cover
  double reserved_vcpu_hours = 0;
  double reserved_gb_hours = 0;
  double cpu_seconds = 0;     // measured
  double memory_gb_hours = 0; // measured
  double storage_gb_months = 0;
  double reserved = 0; // currency
  double used = 0;
  double storage = 0;
  double total() const { return reserved + storage; }
  void add(const CostFigures& o);
  nlohmann::json to_json() const;
};

CostFigures price(const store::UsageHour& u, const CostRates& rates);

// One line of `idp cost`: an environment, or a group of them (--by).
struct CostLine {
  std::string key; // the environment's name, or the group's value ("" = none)
  std::set<std::string> environments;
  std::string owner, team, repo, template_name, runtime; // of an environment line
  CostFigures to_date;
  double per_day = 0;         // at the rate of its last 24 hours of running
  double projected_month = 0; // this calendar month so far + per_day for the days left
  util::Millis first_hour = 0;
  util::Millis last_hour = 0;
  nlohmann::json to_json(const std::string& by) const;
};

// "", "owner", "team", "repo" or "template"; invalid_argument otherwise.
Expected<void> check_cost_grouping(const std::string& by);

// The lines of `hours` (any order): one per environment, or per group when `by` is set,
// sorted by key. `team_of` maps an owner to its team ("" = none).
std::vector<CostLine> summarize_cost(const std::vector<store::UsageHour>& hours, const CostRates& rates,
                                     util::Millis now, const std::string& by,
                                     const std::function<std::string(const std::string&)>& team_of);

// The start of the calendar month (UTC) holding `t`.
util::Millis month_start_of(util::Millis t);

// The first millisecond of month "YYYY-MM" (UTC) and of the next one; invalid_argument
// with what was expected otherwise.
Expected<std::pair<util::Millis, util::Millis>> month_range(const std::string& month);

// The chargeback report of one month (idp cost report): a line per group (`by`: team,
// owner, repo, template; "" = per environment), as CSV (header first) or JSON.
std::string cost_report_csv(const std::string& month, const std::vector<CostLine>& lines, const CostRates& rates,
                            const std::string& by);
nlohmann::json cost_report_json(const std::string& month, const std::vector<CostLine>& lines, const CostRates& rates,
                                const std::string& by);

} // namespace idp::engine
