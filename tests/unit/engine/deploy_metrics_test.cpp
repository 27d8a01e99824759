// Deploy telemetry (issue 14): the record a deploy leaves, its one-line summary, and the
// Prometheus histograms, parsed back as a scraper would read them.

#include <sstream>

#include <gtest/gtest.h>

#include "core/environment.hpp"
#include "engine/deploy_metrics.hpp"
#include "support/test_support.hpp"

namespace idp::engine {
namespace {

using idp::testing::prometheus_samples;

TEST(DeployMetricsTest, PhasesBecomeCumulativeHistogramsAndDeploysCountersByOutcome) {
  DeployMetrics m;
  m.record("local", "api-service", "ready", {{"queued", 3}, {"healthy", 160}, {"route", 8}});
  m.record("local", "api-service", "ready", {{"queued", 40}, {"healthy", 2100}, {"route", 9}});
  m.record("local", "api-service", "failed", {{"queued", 2}, {"healthy", 30000}});
  m.record("terraform", "tf-\"test\"", "ready", {{"init", 1200}});
  std::string text = m.prometheus(4);
  EXPECT_NE(text.find("# TYPE idp_deploy_phase_seconds histogram\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE idp_deploys_total counter\n"), std::string::npos) << text;
  auto s = prometheus_samples(text);
  const std::string healthy = "phase=\"healthy\",template=\"api-service\",runtime=\"local\"";
  EXPECT_EQ(s["idp_deploy_phase_seconds_count{" + healthy + "}"], 3);
  EXPECT_DOUBLE_EQ(s["idp_deploy_phase_seconds_sum{" + healthy + "}"], 0.16 + 2.1 + 30);
  EXPECT_EQ(s["idp_deploy_phase_seconds_bucket{" + healthy + ",le=\"0.25\"}"], 1);
  EXPECT_EQ(s["idp_deploy_phase_seconds_bucket{" + healthy + ",le=\"2.5\"}"], 2);
  EXPECT_EQ(s["idp_deploy_phase_seconds_bucket{" + healthy + ",le=\"30\"}"], 3);
  EXPECT_EQ(s["idp_deploy_phase_seconds_bucket{" + healthy + ",le=\"+Inf\"}"], 3);
  // Every histogram: buckets never decrease, +Inf equals the count.
  double last = -1;
  for (double le : DeployMetrics::k_buckets) {
    std::ostringstream key;
    key << "idp_deploy_phase_seconds_bucket{" << healthy << ",le=\"" << le << "\"}";
    ASSERT_TRUE(s.count(key.str())) << key.str() << "\n" << text;
    EXPECT_GE(s[key.str()], last);
    last = s[key.str()];
  }
  EXPECT_EQ(s["idp_deploys_total{outcome=\"ready\",template=\"api-service\",runtime=\"local\"}"], 2);
  EXPECT_EQ(s["idp_deploys_total{outcome=\"failed\",template=\"api-service\",runtime=\"local\"}"], 1);
  EXPECT_EQ(s["idp_deploys_total{outcome=\"ready\",template=\"tf-\\\"test\\\"\",runtime=\"terraform\"}"], 1)
      << "label values are escaped";
  EXPECT_EQ(s["idp_reconciler_queue_depth"], 4);
}

TEST(DeployMetricsTest, TheRecordAndItsSummarySayWhereTheTimeWent) {
  auto d = deploy_record(3, "abc", "ready", {{"queued", 3}, {"checkout", 9}, {"healthy", 1600}});
  EXPECT_EQ(d["total_ms"], 1612);
  EXPECT_EQ(d["phases"][2]["phase"], "healthy");
  EXPECT_EQ(core::deploy_summary(d),
            "ready 1.6 s after the change: queued 3 ms \u00b7 checkout 9 ms \u00b7 healthy 1.6 s");
  EXPECT_EQ(core::deploy_summary(nlohmann::json::object()), "");
  EXPECT_EQ(core::deploy_summary(nlohmann::json::parse(R"({"phases": [{"phase": 1}]})")), "done 0 ms after the change");

  core::Environment e;
  e.outputs_json = nlohmann::json{{"pid", 7}, {"deploy", d}}.dump();
  auto j = core::to_json(e);
  EXPECT_EQ(j["last_deploy"], d) << "the API shows it as last_deploy";
  EXPECT_FALSE(j["outputs"].contains("deploy"));
  EXPECT_EQ(j["outputs"]["pid"], 7);
}

} // namespace
} // namespace idp::engine
