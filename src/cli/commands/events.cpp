// idp events: the audit log (who did what, and why).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/ttl.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

CommandSpec events_command() {
  struct Options {
    std::string name;
    std::string since;
    size_t limit = 0;
    bool follow = false;
    bool json = false;
  };
  return {"events", "show the audit log of one or every environment", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_option("name", o->name, "environment name (default: all)");
            sub.add_option(
                "--since", o->since,
                "only events newer than this: a duration like 30s, 10m or 2h, or a UTC time like 2026-01-02T03:04:05Z");
            sub.add_option("--limit", o->limit, "only the last N events");
            sub.add_flag("--follow,-f", o->follow, "keep printing new events as they happen");
            sub.add_flag("--json", o->json, "print JSON (one object per line with --follow)");
            return [o, &g]() -> Expected<int> {
              util::Millis since = 0;
              if (!o->since.empty()) {
                if (auto t = util::parse_iso8601(o->since)) {
                  since = *t;
                } else if (auto d = core::parse_duration(o->since); d && *d > 0) {
                  since = util::SystemClock().now_ms() - *d;
                } else {
                  return Unexpected(usage_error("--since: expected a duration like 30s, 10m or 2h, or a UTC time like "
                                                "2026-01-02T03:04:05Z, got " +
                                                util::quote(o->since)));
                }
              }
              ApiClient client(discover_server(g.server));
              std::string path = o->name.empty()
                                     ? "/api/v1/events?limit=10000"
                                     : "/api/v1/environments/" + util::url_encode(o->name) + "/events?limit=10000";
              IDP_TRY_ASSIGN(auto resp, client.get(path));
              nlohmann::json shown = nlohmann::json::array();
              for (const auto& e : resp["events"]) {
                auto at = util::parse_iso8601(e.value("at", ""));
                if (since == 0 || (at && *at >= since)) {
                  shown.push_back(e);
                }
              }
              if (o->limit > 0 && shown.size() > o->limit) {
                shown.erase(shown.begin(), shown.end() - static_cast<std::ptrdiff_t>(o->limit));
              }
              auto row = [](const nlohmann::json& e) -> std::vector<std::string> {
                std::string from = e.value("from_phase", "");
                std::string to = e.value("to_phase", "");
                return {output::field(e, "at"),
                        output::field(e, "environment"),
                        output::field(e, "actor"),
                        output::field(e, "action"),
                        from == to ? from : from + " -> " + to,
                        output::one_line(e.value("reason", ""))}; // the whole reason: idp status or --json
              };
              if (o->json && !o->follow) {
                std::cout << util::json_dump(shown, 2) << "\n";
                return k_exit_ok;
              }
              if (o->json) {
                for (const auto& e : shown) {
                  std::cout << util::json_dump(e) << "\n";
                }
              } else {
                output::Table t;
                t.headers = {"TIME", "ENVIRONMENT", "ACTOR", "ACTION", "PHASE", "REASON"};
                for (const auto& e : shown) {
                  t.rows.push_back(row(e));
                }
                std::cout << t.render();
              }
              std::cout.flush();
              if (!o->follow) {
                return k_exit_ok;
              }
              // New events from the last one listed on (none are lost or repeated in between).
              int64_t after = 0;
              for (const auto& e : resp["events"]) {
                after = std::max<int64_t>(after, e.value("id", int64_t{0}));
              }
              std::string stream = "/api/v1/events/stream?after=" + std::to_string(after) +
                                   (o->name.empty() ? "" : "&env=" + util::url_encode(o->name));
              IDP_TRY(client.stream_lines(stream, [o, &row](const nlohmann::json& e) {
                if (o->json) {
                  std::cout << util::json_dump(e) << "\n";
                } else {
                  std::cout << util::join(row(e), "  ") << "\n";
                }
                std::cout.flush();
                return true;
              }));
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
