#pragma once
// Deploy telemetry (issue 14): how long each phase of every deploy took, in memory, as
// Prometheus histograms for /metrics (idp_deploy_phase_seconds{phase,template,runtime}),
// deploys by outcome (idp_deploys_total{outcome,template,runtime}), and the reconciler's
// queue depth. Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/prometheus.hpp"

namespace idp::engine {

// A deploy's phases in order: {name, milliseconds}.
using DeployPhases = std::vector<std::pair<std::string, int64_t>>;

// What a deploy records with the environment (outputs "deploy") and its event: revision,
// commit, outcome ("ready" | "failed" | "cancelled"), total_ms and the phases as
// [{"phase", "ms"}].
nlohmann::json deploy_record(int64_t revision, const std::string& commit, const std::string& outcome,
                             const DeployPhases& phases);

class DeployMetrics {
public:
  // Upper bounds of the histograms' buckets, in seconds.
  static constexpr auto k_buckets = util::HistogramFamily::k_seconds_buckets;

  void record(const std::string& runtime, const std::string& template_name, const std::string& outcome,
              const DeployPhases& phases);
  // The Prometheus text of the histograms and counters; `queue_depth` as a gauge.
  std::string prometheus(size_t queue_depth) const;

private:
  util::HistogramFamily m_phases{
      "idp_deploy_phase_seconds", "How long each phase of a deploy took.", {"phase", "template", "runtime"}};
  mutable std::mutex m_mu;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> m_deploys; // outcome, template, runtime
};

} // namespace idp::engine
