#include "engine/cost_export.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::engine {

namespace {

constexpr util::Millis k_cost_export_max_delay = 3'600'000;

} // namespace

Expected<std::string> cost_report_document(store::StateStore& store, const CostRates& rates,
                                           const std::map<std::string, std::string>& team_of, const std::string& month,
                                           const std::string& by, const std::string& format) {
  IDP_TRY_ASSIGN(auto range, month_range(month));
  IDP_TRY(check_cost_grouping(by));
  if (format != "csv" && format != "json") {
    return make_error(ErrorCode::invalid_argument, "format: expected csv or json, got " + util::quote(format));
  }
  IDP_TRY_ASSIGN(auto hours, store.list_usage(range.first, range.second, ""));
  auto lines = summarize_cost(hours, rates, range.second, by, [&team_of](const std::string& owner) {
    auto it = team_of.find(owner);
    return it == team_of.end() ? std::string() : it->second;
  });
  if (format == "csv") {
    return cost_report_csv(month, lines, rates, by);
  }
  return util::json_dump(cost_report_json(month, lines, rates, by), 2) + "\n";
}

CostExport::CostExport(CostExportConfig cfg, store::StateStore& store, CostRates rates,
                       std::map<std::string, std::string> team_of, util::Clock& clock, Uploader upload,
                       util::Millis retry_min)
    : m_cfg(std::move(cfg)), m_store(store), m_rates(std::move(rates)), m_team_of(std::move(team_of)), m_clock(clock),
      m_upload(std::move(upload)), m_retry_min(std::max<util::Millis>(retry_min, 1000)) {}

util::S3Location CostExport::destination(const std::string& month) const {
  return {m_cfg.to.bucket, m_cfg.to.key + month + "." + m_cfg.format};
}

Expected<void> CostExport::attempt(const std::string& month, util::Millis now) {
  IDP_TRY_ASSIGN(std::string body, cost_report_document(m_store, m_rates, m_team_of, month, m_cfg.by, m_cfg.format));
  util::S3Location to = destination(month);
  IDP_TRY(m_upload(to, body, m_cfg.format == "csv" ? "text/csv" : "application/json"));
  // Recorded after the upload: a crash in between uploads the same object again, never skips it.
  IDP_TRY(m_store.set_setting("cost-export/" + month, to.url() + " " + util::format_iso8601(now)));
  return {};
}

Expected<std::optional<std::string>> CostExport::run_once() {
  if (!enabled()) {
    return std::optional<std::string>();
  }
  util::Millis now = m_clock.now_ms();
  if (now < m_next_attempt) {
    return std::optional<std::string>();
  }
  std::string month = util::format_iso8601(month_start_of(now) - 1).substr(0, 7);
  if (m_done_month == month) {
    return std::optional<std::string>();
  }
  IDP_TRY_ASSIGN(auto done, m_store.get_setting("cost-export/" + month));
  if (done) {
    m_done_month = month;
    spdlog::debug("cost export: the report of {} is uploaded already ({})", month, *done);
    return std::optional<std::string>();
  }
  util::S3Location to = destination(month);
  std::string what =
      "the " + m_cfg.format + " report of " + month + (m_cfg.by.empty() ? "" : " by " + m_cfg.by) + " to " + to.url();
  core::Event ev;
  ev.at = now;
  ev.actor = "system:cost-export";
  if (auto r = attempt(month, now); !r) {
    ++m_failures;
    util::Millis delay = m_retry_min;
    for (int i = 1; i < m_failures && delay < k_cost_export_max_delay; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, k_cost_export_max_delay);
    m_next_attempt = now + delay;
    ev.action = "cost-export-failed";
    ev.reason =
        "cannot upload " + what + ": " + r.error().message + "; retrying in " + std::to_string(delay / 1000) + "s";
    spdlog::warn("cost export: {}", ev.reason);
    if (auto e = m_store.append_event(ev); !e) {
      spdlog::error("cost export: cannot record the failure: {}", e.error().message);
    }
    return Unexpected(r.error());
  }
  m_failures = 0;
  m_next_attempt = 0;
  m_done_month = month;
  ev.action = "cost-export";
  ev.reason = "uploaded " + what;
  spdlog::info("cost export: {}", ev.reason);
  if (auto e = m_store.append_event(ev); !e) {
    spdlog::error("cost export: cannot record its event: {}", e.error().message);
  }
  return std::optional<std::string>(month);
}

} // namespace idp::engine
