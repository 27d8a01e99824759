#pragma once
// Prometheus text exposition (format 0.0.4) for the server's own metrics: a histogram
// family with fixed label names, kept in memory and thread-safe, and the escaping rules
// of label values. Used by the deploy telemetry (engine/deploy_metrics.hpp) and the API's
// request latencies (api/server.hpp).

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace idp::util {

// A label value as the exposition format writes it: backslash, double quote and newline
// escaped.
std::string prometheus_label_value(const std::string& v);
// A sample value or bucket bound: "%.6g".
std::string prometheus_number(double v);

class HistogramFamily {
public:
  // Upper bounds of the buckets, in seconds: 5 ms to 15 min.
  static constexpr std::array<double, 15> k_seconds_buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5,   5,    10,    30,   60,  300,  900};

  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names);

  // One observation for the series with these label values (as many as label_names).
  void observe(const std::vector<std::string>& label_values, double seconds);
  // "# HELP", "# TYPE … histogram", then every series: cumulative _bucket{…,le="…"} lines,
  // le="+Inf", _sum and _count. Series in label order.
  std::string text() const;

private:
  struct Series {
    std::array<uint64_t, k_seconds_buckets.size()> buckets{}; // not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  std::string m_name;
  std::string m_help;
  std::vector<std::string> m_label_names;
  mutable std::mutex m_mu;
  std::map<std::vector<std::string>, Series> m_series;
};

} // namespace idp::util
