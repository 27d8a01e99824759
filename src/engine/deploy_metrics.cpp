#include "engine/deploy_metrics.hpp"

namespace idp::engine {

nlohmann::json deploy_record(int64_t revision, const std::string& commit, const std::string& outcome,
                             const DeployPhases& phases) {
  nlohmann::json list = nlohmann::json::array();
  int64_t total = 0;
  for (const auto& [name, ms] : phases) {
    list.push_back({{"phase", name}, {"ms", ms}});
    total += ms;
  }
  return {{"revision", revision}, {"commit", commit}, {"outcome", outcome}, {"total_ms", total}, {"phases", list}};
}

void DeployMetrics::record(const std::string& runtime, const std::string& template_name, const std::string& outcome,
                           const DeployPhases& phases) {
  for (const auto& [name, ms] : phases) {
    m_phases.observe({name, template_name, runtime}, static_cast<double>(ms) / 1000.0);
  }
  std::lock_guard<std::mutex> g(m_mu);
  ++m_deploys[{outcome, template_name, runtime}];
}

std::string DeployMetrics::prometheus(size_t queue_depth) const {
  std::string out = m_phases.text();
  std::lock_guard<std::mutex> g(m_mu);
  out += "# HELP idp_deploys_total Deploys by outcome (ready, failed, cancelled).\n";
  out += "# TYPE idp_deploys_total counter\n";
  for (const auto& [key, n] : m_deploys) {
    const auto& [outcome, tmpl, runtime] = key;
    out += "idp_deploys_total{outcome=\"" + util::prometheus_label_value(outcome) + "\",template=\"" +
           util::prometheus_label_value(tmpl) + "\",runtime=\"" + util::prometheus_label_value(runtime) + "\"} " +
           std::to_string(n) + "\n";
  }
  out += "# HELP idp_reconciler_queue_depth Environments queued or being worked on by the reconciler.\n";
  out += "# TYPE idp_reconciler_queue_depth gauge\n";
  out += "idp_reconciler_queue_depth " + std::to_string(queue_depth) + "\n";
  return out;
}

} // namespace idp::engine
