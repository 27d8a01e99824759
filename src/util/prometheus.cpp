#include "util/prometheus.hpp"

#include <cstdio>

namespace idp::util {

std::string prometheus_label_value(const std::string& v) {
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

std::string prometheus_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : m_name(std::move(name)), m_help(std::move(help)), m_label_names(std::move(label_names)) {}

void HistogramFamily::observe(const std::vector<std::string>& label_values, double seconds) {
  std::lock_guard<std::mutex> g(m_mu);
  Series& s = m_series[label_values];
  for (size_t i = 0; i < k_seconds_buckets.size(); ++i) {
    if (seconds <= k_seconds_buckets[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.count;
  s.sum += seconds;
}

std::string HistogramFamily::text() const {
  std::lock_guard<std::mutex> g(m_mu);
  std::string out = "# HELP " + m_name + " " + m_help + "\n# TYPE " + m_name + " histogram\n";
  for (const auto& [values, s] : m_series) {
    std::string labels;
    for (size_t i = 0; i < m_label_names.size(); ++i) {
      labels += m_label_names[i] + "=\"" + prometheus_label_value(i < values.size() ? values[i] : "") + "\",";
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < k_seconds_buckets.size(); ++i) {
      cumulative += s.buckets[i];
      out += m_name + "_bucket{" + labels + "le=\"" + prometheus_number(k_seconds_buckets[i]) + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += m_name + "_bucket{" + labels + "le=\"+Inf\"} " + std::to_string(s.count) + "\n";
    if (!labels.empty()) {
      labels.pop_back(); // the trailing comma
    }
    out += m_name + "_sum{" + labels + "} " + prometheus_number(s.sum) + "\n";
    out += m_name + "_count{" + labels + "} " + std::to_string(s.count) + "\n";
  }
  return out;
}

} // namespace idp::util
