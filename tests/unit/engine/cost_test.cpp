// Issue 12: pricing usage hours at the server's rates, the lines of idp cost (per
// environment and grouped), and the chargeback report of a month with known usage
// (must show 3: its CSV and JSON equal the expected totals).
#include "engine/cost.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "util/strings.hpp"

namespace idp::engine {
namespace {

constexpr util::Millis k_hour = 3'600'000;
const util::Millis k_nov = *util::parse_iso8601("2026-11-01T00:00:00Z");

// `hours` hours of running at 1024 cpu units and 2048 MiB from `start`, one bucket each,
// with `cpu_s` CPU seconds and 1 GiB held per hour, and a 10 GiB database.
std::vector<store::UsageHour> running(const std::string& env, const std::string& owner, util::Millis start, int hours,
                                      double cpu_s) {
  std::vector<store::UsageHour> out;
  for (int i = 0; i < hours; ++i) {
    store::UsageHour u;
    u.env = env;
    u.hour = start + i * k_hour;
    u.owner = owner;
    u.repo = "acme/shop";
    u.template_name = "api-service";
    u.runtime = "local";
    u.running_ms = k_hour;
    u.reserved_cpu_ms = 1024.0 * k_hour;
    u.reserved_memory_mb_ms = 2048.0 * k_hour;
    u.used_cpu_seconds = cpu_s;
    u.used_memory_byte_ms = 1024.0 * 1024 * 1024 * k_hour;
    u.storage_byte_ms = 10.0 * 1024 * 1024 * 1024 * k_hour;
    u.measured_ms = k_hour;
    out.push_back(u);
  }
  return out;
}

CostRates rates() {
  CostRates r;
  r.cpu_hour = 0.04;
  r.memory_gb_hour = 0.005;
  r.storage_gb_month = 0.1;
  r.currency = "USD";
  return r;
}

std::string team_of(const std::string& owner) { return owner == "alice" || owner == "bob" ? "payments" : ""; }

TEST(CostTest, AnHourIsPricedAtTheRates) {
  auto u = running("web", "alice", k_nov, 1, 1800)[0];
  CostFigures f = price(u, rates());
  EXPECT_DOUBLE_EQ(f.running_hours, 1);
  EXPECT_DOUBLE_EQ(f.reserved_vcpu_hours, 1);
  EXPECT_DOUBLE_EQ(f.reserved_gb_hours, 2);
  EXPECT_DOUBLE_EQ(f.reserved, 0.04 + 2 * 0.005);
  EXPECT_DOUBLE_EQ(f.cpu_seconds, 1800);
  EXPECT_DOUBLE_EQ(f.memory_gb_hours, 1);
  EXPECT_DOUBLE_EQ(f.used, 0.5 * 0.04 + 1 * 0.005);
  EXPECT_DOUBLE_EQ(f.storage_gb_months, 10.0 / 730);
  EXPECT_DOUBLE_EQ(f.storage, 10.0 / 730 * 0.1);
  EXPECT_DOUBLE_EQ(f.total(), f.reserved + f.storage);
}

TEST(CostTest, LinesPerEnvironmentAndPerGroupWithTheBurnOfTheirLastDay) {
  std::vector<store::UsageHour> hours;
  for (auto part : {running("web", "alice", k_nov, 48, 360), running("api", "bob", k_nov + 24 * k_hour, 24, 0),
                    running("tool", "carol", k_nov, 2, 0)}) {
    hours.insert(hours.end(), part.begin(), part.end());
  }
  util::Millis now = k_nov + 48 * k_hour; // 2026-11-03T00:00Z: 28 days left in November
  auto lines = summarize_cost(hours, rates(), now, "", team_of);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].key, "api");
  EXPECT_EQ(lines[1].key, "tool");
  const CostLine& web = lines[2];
  EXPECT_EQ(web.team, "payments");
  double hourly = 0.04 + 2 * 0.005 + 10.0 / 730 * 0.1;
  EXPECT_NEAR(web.to_date.total(), 48 * hourly, 1e-9);
  EXPECT_NEAR(web.per_day, 24 * hourly, 1e-9) << "its last 24 hours, at its pace";
  EXPECT_NEAR(web.projected_month, 48 * hourly + 28 * 24 * hourly, 1e-9);
  EXPECT_EQ(lines[1].per_day, 0) << "tool did not run in the last day";
  EXPECT_NEAR(lines[1].projected_month, 2 * hourly, 1e-9) << "so nothing more is projected";

  auto by_team = summarize_cost(hours, rates(), now, "team", team_of);
  ASSERT_EQ(by_team.size(), 2u);
  EXPECT_EQ(by_team[0].key, "") << "carol is in no team";
  EXPECT_EQ(by_team[1].key, "payments");
  EXPECT_EQ(by_team[1].environments, (std::set<std::string>{"api", "web"}));
  EXPECT_NEAR(by_team[1].to_date.total(), 72 * hourly, 1e-9);
  EXPECT_NEAR(by_team[1].to_date.cpu_seconds, 48 * 360, 1e-9);
  EXPECT_FALSE(check_cost_grouping("planet"));
  EXPECT_TRUE(check_cost_grouping("template"));
}

// Must show 3: a month with known usage, read back from a store, in both formats.
TEST(CostTest, TheChargebackReportOfAMonthHasTheExpectedTotals) {
  idp::testing::InMemoryStore store;
  // October's last hour and December's first are outside November.
  ASSERT_TRUE(store.add_usage(running("web", "alice", k_nov - k_hour, 1, 3600)));
  ASSERT_TRUE(store.add_usage(running("web", "alice", k_nov, 10, 3600)));
  ASSERT_TRUE(store.add_usage(running("api", "bob", k_nov + 100 * k_hour, 5, 0)));
  ASSERT_TRUE(store.add_usage(running("tool", "eve=cmd", k_nov + 200 * k_hour, 1, 0)));
  auto range = month_range("2026-11");
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->first, k_nov);
  EXPECT_EQ(range->second, *util::parse_iso8601("2026-12-01T00:00:00Z"));
  ASSERT_TRUE(store.add_usage(running("web", "alice", range->second, 1, 3600)));
  auto hours = store.list_usage(range->first, range->second, "");
  ASSERT_TRUE(hours.has_value());
  auto lines = summarize_cost(*hours, rates(), range->second, "owner", team_of);
  std::string csv = cost_report_csv("2026-11", lines, rates(), "owner");
  // alice: 10 h at 0.05/h reserved (0.5), used 10 x (0.04 + 0.005) = 0.45, storage 10 x
  // 10 GB / 730 h x 0.1 = 0.0137; bob: 5 h; eve's name is kept from a spreadsheet formula.
  EXPECT_EQ(csv, "month,owner,environments,running_hours,reserved_vcpu_hours,reserved_gb_hours,cpu_seconds,"
                 "memory_gb_hours,storage_gb_months,reserved,used,storage,total,currency\n"
                 "2026-11,alice,1,10.0000,10.0000,20.0000,36000.000,10.0000,0.136986,0.5000,0.4500,0.0137,0.5137,USD\n"
                 "2026-11,bob,1,5.0000,5.0000,10.0000,0.000,5.0000,0.068493,0.2500,0.0250,0.0068,0.2568,USD\n"
                 "2026-11,eve=cmd,1,1.0000,1.0000,2.0000,0.000,1.0000,0.013699,0.0500,0.0050,0.0014,0.0514,USD\n");
  auto j = cost_report_json("2026-11", lines, rates(), "owner");
  EXPECT_EQ(j["by"], "owner");
  ASSERT_EQ(j["rows"].size(), 3u);
  EXPECT_EQ(j["rows"][0]["owner"], "alice");
  EXPECT_DOUBLE_EQ(j["rows"][0]["reserved"].get<double>(), 0.5);
  EXPECT_NEAR(j["total"]["total"].get<double>(), 16 * (0.05 + 10.0 / 730 * 0.1), 1e-6);
  EXPECT_NEAR(j["total"]["running_hours"].get<double>(), 16, 1e-9);

  // A name that a spreadsheet would run, and one with a comma.
  auto odd = running("x", "=HYPERLINK(\"evil\")", k_nov, 1, 0);
  auto odd_lines = summarize_cost(odd, rates(), range->second, "owner", team_of);
  std::string odd_csv = cost_report_csv("2026-11", odd_lines, rates(), "owner");
  EXPECT_NE(odd_csv.find("\n2026-11,\"'=HYPERLINK(\"\"evil\"\")\",1,"), std::string::npos) << odd_csv;

  EXPECT_FALSE(month_range("2026-13"));
  EXPECT_FALSE(month_range("26-11"));
  EXPECT_EQ(month_range("november").error().message, "month: expected YYYY-MM like 2026-11, got \"november\"");
}

} // namespace
} // namespace idp::engine
