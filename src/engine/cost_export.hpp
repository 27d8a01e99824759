#pragma once
// The monthly chargeback export (issue 12, layer 4): server config `cost.export`. Early in
// each month (the first usage pass of the month, engine/usage_sampler.hpp) the previous
// month's report (engine/cost.hpp, the bytes `idp cost report --output FILE` writes) is
// uploaded to `<to><YYYY-MM>.<csv|json>`.
//
// Exactly once, as near as a crash allows: the upload comes first, then its record (the
// store's setting "cost-export/<YYYY-MM>"); a month already recorded is never uploaded
// again, and a crash between the two uploads the same bytes to the same key once more,
// which S3 overwrites. A failed upload (or record) is logged and written as an event
// `cost-export-failed` with its reason (the S3 status and error code, never a credential),
// and retried on a later pass, after a delay that doubles from the pass interval to an hour.

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "engine/cost.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/s3_client.hpp"
#include "util/time.hpp"

namespace idp::engine {

struct CostExportConfig {
  util::S3Location to;        // bucket and key prefix ("reports/" or "" or "costs-"); no bucket = off
  std::string by;             // team | owner | repo | template; "" = per environment
  std::string format = "csv"; // csv | json
  bool enabled() const { return !to.bucket.empty(); }
};

// The bytes of month `month`'s report as `idp cost report --format <format> --output FILE`
// writes them: the CSV as the API serves it, the JSON indented by 2 with a final newline.
// Errors: invalid_argument for a bad month, grouping or format; the store's.
Expected<std::string> cost_report_document(store::StateStore& store, const CostRates& rates,
                                           const std::map<std::string, std::string>& team_of, const std::string& month,
                                           const std::string& by, const std::string& format);

class CostExport {
public:
  // Uploads `body` to `to` (an object); error when it was not stored.
  using Uploader = std::function<Expected<void>(const util::S3Location& to, const std::string& body,
                                                const std::string& content_type)>;

  // `retry_min`: the first delay after a failure (the usage pass interval).
  CostExport(CostExportConfig cfg, store::StateStore& store, CostRates rates,
             std::map<std::string, std::string> team_of, util::Clock& clock, Uploader upload, util::Millis retry_min);

  bool enabled() const { return m_cfg.enabled(); }
  // Where month "YYYY-MM" goes: the prefix + month + ".csv" or ".json".
  util::S3Location destination(const std::string& month) const;
  // One pass: uploads the previous month's report unless it is recorded as done or a retry
  // delay is running. Returns the month uploaded, nullopt when nothing was due; the error
  // of a failed attempt (already logged and recorded as an event). Not thread-safe: one
  // caller (the usage sampler's thread).
  Expected<std::optional<std::string>> run_once();

private:
  Expected<void> attempt(const std::string& month, util::Millis now);

  CostExportConfig m_cfg;
  store::StateStore& m_store;
  CostRates m_rates;
  std::map<std::string, std::string> m_team_of;
  util::Clock& m_clock;
  Uploader m_upload;
  util::Millis m_retry_min;
  int m_failures = 0;              // in a row
  util::Millis m_next_attempt = 0; // no attempt before this (a retry's delay)
  std::string m_done_month;        // the month known to be recorded (no store read each pass)
};

} // namespace idp::engine
