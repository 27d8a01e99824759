// idp status: one environment in detail (phase, revisions, warnings, recent events).
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/environment.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

namespace {

// The runtime's own view (kubernetes: pods and the namespace's events), as
// `kubectl get pods` and `kubectl get events` would show it.
void print_runtime_status(const nlohmann::json& e) {
  if (!e.contains("runtime_status") || !e["runtime_status"].is_object()) {
    return;
  }
  const auto& rs = e["runtime_status"];
  if (rs.contains("error")) {
    std::printf("\nruntime: %s\n",
                output::color("cannot read the runtime's state: " + output::field(rs, "error"), "yellow").c_str());
    return;
  }
  if (rs.contains("note")) {
    std::printf("\nruntime: %s\n", output::field(rs, "note").c_str());
  }
  if (rs.contains("pods") && !rs["pods"].empty()) {
    std::printf("\npods:\n");
    output::Table t;
    t.headers = {"NAME", "READY", "STATUS", "RESTARTS", "WHY"};
    for (const auto& p : rs["pods"]) {
      std::string why;
      for (const auto& c : p.value("containers", nlohmann::json::array())) {
        if (!c.value("message", "").empty() && !c.value("ready", false)) {
          why = c.value("name", "") + ": " + c.value("message", "");
          break;
        }
      }
      t.rows.push_back({output::field(p, "name"), output::field(p, "ready"), output::field(p, "status"),
                        util::json_dump(p.value("restarts", nlohmann::json(0))), output::one_line(why).substr(0, 100)});
    }
    std::cout << t.render();
  }
  if (rs.contains("events") && !rs["events"].empty()) {
    std::printf("\ncluster events:\n");
    output::Table t;
    t.headers = {"AT", "TYPE", "REASON", "OBJECT", "MESSAGE"};
    for (const auto& ev : rs["events"]) {
      int64_t count = ev.value("count", int64_t{1});
      std::string message = output::one_line(ev.value("message", "")).substr(0, 100);
      t.rows.push_back({output::field(ev, "at"), output::field(ev, "type"), output::field(ev, "reason"),
                        output::field(ev, "object"),
                        count > 1 ? message + " (x" + std::to_string(count) + ")" : message});
    }
    std::cout << t.render();
  }
}

} // namespace

CommandSpec status_command() {
  struct Options {
    std::string name;
    bool json = false;
  };
  return {
      "status", "show an environment in detail", false, [](CLI::App& sub, const GlobalOptions& g) -> Runner {
        auto o = std::make_shared<Options>();
        sub.add_option("name", o->name, "environment name")->required();
        sub.add_flag("--json", o->json, "print JSON");
        return [o, &g]() -> Expected<int> {
          ApiClient client(discover_server(g.server));
          std::string path = "/api/v1/environments/" + util::url_encode(o->name);
          IDP_TRY_ASSIGN(auto e, client.get(path));
          if (o->json) {
            std::cout << util::json_dump(e, 2) << "\n";
            return k_exit_ok;
          }
          long long now = util::SystemClock().now_ms();
          std::string phase = output::field(e, "phase");
          auto row = [](const char* k, const std::string& v) { std::printf("%-12s %s\n", k, v.c_str()); };
          row("name:", output::field(e, "name"));
          row("phase:",
              output::color(phase, output::phase_color(phase)) + (e.value("sleeping", false) ? " (sleeping)" : ""));
          if (!e.value("message", "").empty()) {
            row("message:", output::indent_rest(e.value("message", ""), 13)); // may span lines: the cause
          }
          row("url:", output::field(e, "url"));
          row("repo:", output::field(e, "repo"));
          row("branch:", output::field(e, "branch"));
          row("commit:", output::field(e, "commit").substr(0, 12) +
                             (e["deployed_commit"].is_string() && e["deployed_commit"] != e["commit"]
                                  ? " (serving " + e["deployed_commit"].get<std::string>().substr(0, 12) + ")"
                                  : ""));
          row("template:", output::field(e, "template"));
          row("runtime:", output::field(e, "runtime"));
          row("owner:", output::field(e, "owner"));
          if (e["pr_number"].is_number()) {
            row("pr:", "#" + util::json_dump(e["pr_number"]));
          }
          row("created:", output::field(e, "created_at"));
          if (phase == "destroyed") {
            // A destroyed environment has nothing left to expire: say when it went.
            row("destroyed:", output::field(e, "destroyed_at"));
          } else {
            row("expires:", output::field(e, "expires_at") + " (" + output::relative_time(e["expires_at"], now) + ")");
          }
          if (e.contains("freeze") && e["freeze"].is_object()) {
            // A QA freeze (issue 12): who, why, until when, and what waits.
            const auto& f = e["freeze"];
            size_t waiting = f.contains("waiting") && f["waiting"].is_array() ? f["waiting"].size() : 0;
            std::string text = "by " + output::field(f, "by") + " since " + output::field(f, "at");
            if (f["until"].is_string()) {
              text += ", until " + output::field(f, "until") + " (" + output::relative_time(f["until"], now) + ")";
            }
            if (!f.value("reason", "").empty()) {
              text += ": " + f.value("reason", "");
            }
            text += "; " + std::to_string(waiting) + " newer commit" + (waiting == 1 ? "" : "s") + " waiting";
            if (waiting > 0) {
              text += " (newest " + util::short_commit(f["waiting"].back().get<std::string>(), 12) + ")";
            }
            row("frozen:", output::color(text, "yellow"));
          }
          if (e.contains("sleep") && e["sleep"].is_object()) {
            // Idle sleep (issue 12): the app is stopped until its next request.
            const auto& s = e["sleep"];
            std::string state = output::field(s, "state");
            std::string text = state == "to_wake"    ? "waking up"
                               : state == "to_sleep" ? "going to sleep"
                                                     : "sleeping: its next request wakes it";
            text += " (by " + output::field(s, "by") + " since " + output::field(s, "at");
            if (!s.value("reason", "").empty()) {
              text += ": " + s.value("reason", "");
            }
            row("sleep:", output::color(text + ")", "yellow"));
          }
          if (e.contains("outputs") && e["outputs"].is_object() && e["outputs"].contains("schedule")) {
            // A scheduled job: when it runs next (the runs themselves are listed below).
            const auto& next = e["outputs"].contains("next_run_at") ? e["outputs"]["next_run_at"] : nlohmann::json();
            row("schedule:", output::field(e["outputs"], "schedule"));
            row("next run:", next.is_string() ? next.get<std::string>() + " (" + output::relative_time(next, now) + ")"
                                              : "none (the schedule has no more runs)");
          }
          if (e.value("attempts", 0) > 0) {
            row("attempts:",
                std::to_string(e.value("attempts", 0)) + ", next at " + output::field(e, "next_attempt_at"));
          }
          if (e.contains("last_deploy") && e["last_deploy"].is_object()) {
            // Where the last deploy's time went (issue 14).
            row("last deploy:", "revision " + util::json_dump(e["last_deploy"].value("revision", nlohmann::json())) +
                                    ", " + core::deploy_summary(e["last_deploy"]));
          }
          for (const auto& w : e["warnings"]) {
            row("warning:", output::color(w.get<std::string>(), "yellow"));
          }
          if (e.contains("outputs") && e["outputs"].is_object() && !e["outputs"].empty()) {
            std::printf("outputs:\n");
            for (const auto& [k, v] : e["outputs"].items()) {
              std::printf("  %s: %s\n", k.c_str(),
                          v.is_string() ? v.get<std::string>().c_str() : util::json_dump(v).c_str());
            }
          }
          if (e.contains("revisions") && !e["revisions"].empty()) {
            std::printf("\nrevisions:\n");
            output::Table t;
            t.headers = {"ID", "COMMIT", "STATUS", "CREATED", "MESSAGE"};
            for (const auto& r : e["revisions"]) {
              t.rows.push_back({util::json_dump(r["id"]), output::field(r, "commit").substr(0, 7),
                                output::field(r, "status"), output::field(r, "created_at"),
                                output::one_line(r.value("message", "")).substr(0, 100)});
            }
            std::cout << t.render();
            const auto& latest = e["revisions"][0];
            if (latest.value("status", "") == "failed" && !latest.value("log_tail", "").empty()) {
              std::printf("\nlast log lines of revision %s:\n%s\n", util::json_dump(latest["id"]).c_str(),
                          latest.value("log_tail", "").c_str());
            }
          }
          if (e.contains("job_runs") && !e["job_runs"].empty()) {
            std::printf("\njob runs:\n");
            output::Table t;
            t.headers = {"ID", "SCHEDULED", "STARTED", "FINISHED", "STATUS", "EXIT"};
            for (const auto& r : e["job_runs"]) {
              t.rows.push_back({util::json_dump(r["id"]), output::field(r, "scheduled_at"),
                                output::field(r, "started_at"), output::field(r, "finished_at"),
                                output::field(r, "status"),
                                r["exit_code"].is_null() ? "-" : util::json_dump(r["exit_code"])});
            }
            std::cout << t.render();
          }
          print_runtime_status(e);
          auto evs = client.get(path + "/events");
          if (evs && !(*evs)["events"].empty()) {
            std::printf("\nrecent events:\n");
            const auto& list = (*evs)["events"];
            size_t start = list.size() > 8 ? list.size() - 8 : 0;
            for (size_t i = start; i < list.size(); ++i) {
              const auto& ev = list[i];
              std::printf("  %s  %-10s %-14s %s\n", output::field(ev, "at").c_str(), output::field(ev, "actor").c_str(),
                          output::field(ev, "action").c_str(), output::one_line(ev.value("reason", "")).c_str());
            }
          }
          return k_exit_ok;
        };
      }};
}

} // namespace idp::cli::commands
