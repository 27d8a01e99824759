#include "engine/deploy_metrics.hpp"

#include <cstdio>

namespace idp::engine {

namespace {

// A label value in the exposition format: backslash, double quote and newline escaped.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

} // namespace

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
  std::lock_guard<std::mutex> g(m_mu);
  ++m_deploys[{outcome, template_name, runtime}];
  for (const auto& [name, ms] : phases) {
    Histogram& h = m_phases[{name, template_name, runtime}];
    double s = static_cast<double>(ms) / 1000.0;
    for (size_t i = 0; i < k_buckets.size(); ++i) {
      if (s <= k_buckets[i]) {
        ++h.buckets[i];
        break;
      }
    }
    ++h.count;
    h.sum += s;
  }
}

std::string DeployMetrics::prometheus(size_t queue_depth) const {
  std::lock_guard<std::mutex> g(m_mu);
  std::string out;
  out += "# HELP idp_deploy_phase_seconds How long each phase of a deploy took.\n";
  out += "# TYPE idp_deploy_phase_seconds histogram\n";
  for (const auto& [key, h] : m_phases) {
    const auto& [phase, tmpl, runtime] = key;
    std::string labels =
        "phase=\"" + label(phase) + "\",template=\"" + label(tmpl) + "\",runtime=\"" + label(runtime) + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < k_buckets.size(); ++i) {
      cumulative += h.buckets[i];
      out += "idp_deploy_phase_seconds_bucket{" + labels + ",le=\"" + number(k_buckets[i]) + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += "idp_deploy_phase_seconds_bucket{" + labels + ",le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    out += "idp_deploy_phase_seconds_sum{" + labels + "} " + number(h.sum) + "\n";
    out += "idp_deploy_phase_seconds_count{" + labels + "} " + std::to_string(h.count) + "\n";
  }
  out += "# HELP idp_deploys_total Deploys by outcome (ready, failed, cancelled).\n";
  out += "# TYPE idp_deploys_total counter\n";
  for (const auto& [key, n] : m_deploys) {
    const auto& [outcome, tmpl, runtime] = key;
    out += "idp_deploys_total{outcome=\"" + label(outcome) + "\",template=\"" + label(tmpl) + "\",runtime=\"" +
           label(runtime) + "\"} " + std::to_string(n) + "\n";
  }
  out += "# HELP idp_reconciler_queue_depth Environments queued or being worked on by the reconciler.\n";
  out += "# TYPE idp_reconciler_queue_depth gauge\n";
  out += "idp_reconciler_queue_depth " + std::to_string(queue_depth) + "\n";
  return out;
}

} // namespace idp::engine
