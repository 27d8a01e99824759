// Issue 12, layer 4 (the engine's half): the monthly export uploads the previous month's
// report once, to <prefix><YYYY-MM>.<format>, with the bytes `idp cost report --output`
// writes; a failed upload is an event with its reason and is retried after a delay that
// doubles; a restart after a crash between the upload and its record uploads again.
#include "engine/cost_export.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "util/strings.hpp"

namespace idp::engine {
namespace {

constexpr util::Millis k_export_hour = 3'600'000;

store::UsageHour export_hour_of(const std::string& env, const std::string& owner, const std::string& at) {
  store::UsageHour u;
  u.env = env;
  u.hour = *util::parse_iso8601(at);
  u.owner = owner;
  u.repo = "https://github.com/acme/shop.git";
  u.running_ms = k_export_hour;
  u.reserved_cpu_ms = 1024.0 * k_export_hour;
  return u;
}

struct Upload {
  util::S3Location to;
  std::string body;
  std::string content_type;
};

struct ExportRig {
  idp::testing::InMemoryStore store;
  idp::testing::FakeClock clock{*util::parse_iso8601("2026-12-01T00:05:00Z")};
  std::vector<Upload> uploads;
  std::string fail_with; // "" = uploads succeed
  CostRates rates;
  std::map<std::string, std::string> team_of{{"alice", "payments"}};

  ExportRig() {
    rates.cpu_hour = 1;
    EXPECT_TRUE(store.add_usage({export_hour_of("web-a", "alice", "2026-11-03T10:00:00Z"),
                                 export_hour_of("web-b", "bob", "2026-11-30T23:00:00Z"),
                                 export_hour_of("web-c", "alice", "2026-12-01T00:00:00Z")}));
  }

  std::unique_ptr<CostExport> make(const std::string& format = "csv") {
    CostExportConfig cfg;
    cfg.to = *util::parse_s3_url("s3://reports/chargeback/", false);
    cfg.by = "team";
    cfg.format = format;
    return std::make_unique<CostExport>(
        cfg, store, rates, team_of, clock,
        [this](const util::S3Location& to, const std::string& body, const std::string& type) -> Expected<void> {
          uploads.push_back({to, body, type});
          if (!fail_with.empty()) {
            return make_error(ErrorCode::not_found, fail_with);
          }
          return {};
        },
        60'000);
  }

  std::vector<core::Event> events() {
    store::EventQuery q;
    return store.list_events(q).value();
  }
};

TEST(CostExportTest, UploadsThePreviousMonthsReportOnceToThePrefixAndMonth) {
  ExportRig rig;
  auto exporter = rig.make();
  auto first = exporter->run_once();
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->value_or(""), "2026-11");
  ASSERT_EQ(rig.uploads.size(), 1u);
  EXPECT_EQ(rig.uploads[0].to.url(), "s3://reports/chargeback/2026-11.csv");
  EXPECT_EQ(rig.uploads[0].content_type, "text/csv");
  auto expected = cost_report_document(rig.store, rig.rates, rig.team_of, "2026-11", "team", "csv");
  ASSERT_TRUE(expected);
  EXPECT_EQ(rig.uploads[0].body, *expected);
  // November's two hours, by team; December's hour is not in it.
  auto rows = util::split(util::trim(rig.uploads[0].body), '\n');
  ASSERT_EQ(rows.size(), 3u) << rig.uploads[0].body;
  EXPECT_TRUE(util::starts_with(rows[0], "month,team,")) << rows[0];
  EXPECT_TRUE(util::starts_with(rows[1], "2026-11,,1,1.0000,")) << rows[1];
  EXPECT_TRUE(util::starts_with(rows[2], "2026-11,payments,1,1.0000,")) << rows[2];
  auto record = rig.store.get_setting("cost-export/2026-11");
  ASSERT_TRUE(record && *record);
  EXPECT_TRUE(util::starts_with(**record, "s3://reports/chargeback/2026-11.csv ")) << **record;

  // Later passes this month upload nothing, nor does a restart (the record is in the store).
  rig.clock.advance(10 * 86'400'000LL);
  EXPECT_EQ(exporter->run_once().value(), std::nullopt);
  EXPECT_EQ(rig.make()->run_once().value(), std::nullopt);
  EXPECT_EQ(rig.uploads.size(), 1u);
  auto events = rig.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "cost-export");
  EXPECT_EQ(events[0].reason, "uploaded the csv report of 2026-11 by team to s3://reports/chargeback/2026-11.csv");

  // Next month: December's.
  rig.clock.set(*util::parse_iso8601("2027-01-01T00:01:00Z"));
  EXPECT_EQ(exporter->run_once().value().value_or(""), "2026-12");
  ASSERT_EQ(rig.uploads.size(), 2u);
  EXPECT_EQ(rig.uploads[1].to.url(), "s3://reports/chargeback/2026-12.csv");
}

TEST(CostExportTest, JsonIsTheIndentedReportWithAFinalNewline) {
  ExportRig rig;
  ASSERT_TRUE(rig.make("json")->run_once());
  ASSERT_EQ(rig.uploads.size(), 1u);
  EXPECT_EQ(rig.uploads[0].to.key, "chargeback/2026-11.json");
  EXPECT_EQ(rig.uploads[0].content_type, "application/json");
  auto j = nlohmann::json::parse(rig.uploads[0].body);
  EXPECT_EQ(j["month"], "2026-11");
  EXPECT_EQ(j["by"], "team");
  EXPECT_EQ(rig.uploads[0].body, j.dump(2) + "\n");
}

TEST(CostExportTest, AFailedUploadIsAnEventWithItsReasonAndIsRetriedAfterADoublingDelay) {
  ExportRig rig;
  rig.fail_with = "PutObject s3://reports/chargeback/2026-11.csv: HTTP 404 NoSuchBucket";
  auto exporter = rig.make();
  auto r = exporter->run_once();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, rig.fail_with);
  auto events = rig.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].action, "cost-export-failed");
  EXPECT_EQ(events[0].reason, "cannot upload the csv report of 2026-11 by team to s3://reports/chargeback/2026-11.csv: "
                              "PutObject s3://reports/chargeback/2026-11.csv: HTTP 404 NoSuchBucket; retrying in 60s");
  EXPECT_FALSE(rig.store.get_setting("cost-export/2026-11").value()) << "nothing recorded";

  // Within the delay: no attempt. After it: one, which fails again and doubles the delay.
  rig.clock.advance(59'000);
  EXPECT_EQ(exporter->run_once().value(), std::nullopt);
  EXPECT_EQ(rig.uploads.size(), 1u);
  rig.clock.advance(1'000);
  EXPECT_FALSE(exporter->run_once());
  EXPECT_EQ(rig.uploads.size(), 2u);
  EXPECT_TRUE(util::ends_with(rig.events().back().reason, "retrying in 120s")) << rig.events().back().reason;
  rig.clock.advance(119'000);
  EXPECT_EQ(exporter->run_once().value(), std::nullopt);

  // S3 is back: the next attempt uploads and records it.
  rig.fail_with.clear();
  rig.clock.advance(1'000);
  EXPECT_EQ(exporter->run_once().value().value_or(""), "2026-11");
  EXPECT_EQ(rig.uploads.size(), 3u);
  EXPECT_TRUE(rig.store.get_setting("cost-export/2026-11").value());
  EXPECT_EQ(rig.events().back().action, "cost-export");
}

TEST(CostExportTest, NothingHappensWithoutADestination) {
  ExportRig rig;
  CostExport off(
      {}, rig.store, rig.rates, rig.team_of, rig.clock,
      [](const util::S3Location&, const std::string&, const std::string&) -> Expected<void> {
        ADD_FAILURE() << "no upload without cost.export.to";
        return {};
      },
      60'000);
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.run_once().value(), std::nullopt);
}

} // namespace
} // namespace idp::engine
