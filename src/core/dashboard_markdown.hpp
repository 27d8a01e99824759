#pragma once
// ENVIRONMENTS.md: the original's dashboard (spec §5.6) rendered from environments as
// GET /api/v1/environments returns them. Pure: no I/O, no clock.
//
// Kept from the original: the title, the summary line, the seven columns and their
// formats (owner without "@users.noreply.github.com", times as "YYYY-MM-DD HH:MM:SS UTC",
// "expired" once expires_at has passed), the explanation block. Fixed: the reaper's real
// interval instead of the stale "every 4 hours", no stray blank line after the table, a
// generator line that names the command (there is no workflow), rows sorted by name,
// cells escaped so an owner or URL cannot break the table.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/time.hpp"

namespace idp::core {

struct DashboardOptions {
  util::Millis reaper_interval = 0; // 0 = unknown: the text then names no period
  std::string generator = "idp dashboard --markdown";
};

// Environments that are destroyed, destroying or about to be (desired "absent") are left
// out. `now` decides "expired" and the "Last updated" line.
std::string render_dashboard_markdown(const std::vector<nlohmann::json>& environments, util::Millis now,
                                      const DashboardOptions& options = {});

// A markdown table cell: one line, `|` escaped (the dashboard and the PR comment).
std::string markdown_cell(const std::string& s);

// "30 seconds", "every minute" style period text: "4 hours", "1 week" → "week".
std::string describe_period(util::Millis period);

} // namespace idp::core
