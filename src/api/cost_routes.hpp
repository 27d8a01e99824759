#pragma once
// What environments cost (issue 12; engine/cost.hpp), for any token:
//   GET /api/v1/cost[?by=owner|team|repo|template][&since=7d][&env=NAME]
//       → {currency, rates, by, since, lines: [...], total}: per environment, or per group
//   GET /api/v1/environments/{name}/cost[?since=7d]
//       → the environment's line; on a runtime that measures nothing it is an estimate
//         (estimate: true), and AWS Cost Explorer's figures follow as cost_explorer when
//         the driver has them (they lag about a day)
//   GET /api/v1/cost/report?month=YYYY-MM[&by=team|owner|repo|template][&format=csv|json]
//       → the month's chargeback report (text/csv or JSON)

#include "api/server.hpp"

namespace httplib {
class Server;
} // namespace httplib

namespace idp::api {

void register_cost_routes(httplib::Server& server, ApiContext& ctx);

// /metrics gauges: idp_environment_cost{environment,currency} (this month so far) and
// idp_environment_cost_per_day{environment,currency}, for every environment that ran this
// month.
Expected<std::string> cost_metrics_text(ApiContext& ctx);

} // namespace idp::api
