// idp templates list|show|schedule
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "core/schedule.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

CommandSpec templates_command() {
  struct Options {
    std::string name;
    std::string expression;
    size_t next = 5;
    std::string from;
    bool json = false;
    bool all = false;
  };
  return {"templates", "list templates, show one, or preview a schedule expression", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            auto mode = std::make_shared<std::string>("list");
            auto* list = sub.add_subcommand("list", "list the templates the server knows");
            list->add_flag("--json", o->json, "print JSON");
            list->add_flag("--all", o->all, "include hidden templates (test fixtures such as tf-test)");
            list->callback([mode] { *mode = "list"; });
            auto* show = sub.add_subcommand("show", "show a template's components, fields and outputs");
            show->add_option("name", o->name, "template name")->required();
            show->add_flag("--json", o->json, "print JSON");
            show->callback([mode] { *mode = "show"; });
            auto* sched =
                sub.add_subcommand("schedule", "show the next run times (UTC) of a rate() or cron() expression");
            sched->add_option("expression", o->expression, "e.g. \"cron(0 9 ? * MON-FRI *)\"")->required();
            sched->add_option("--next", o->next, "how many runs (default 5)");
            sched->add_option("--from", o->from, "start time (ISO-8601, default now)");
            sched->add_flag("--json", o->json, "print JSON");
            sched->callback([mode] { *mode = "schedule"; });
            sub.add_flag("--json", o->json, "print JSON");
            sub.add_flag("--all", o->all, "include hidden templates (test fixtures such as tf-test)");
            return [o, mode, &g]() -> Expected<int> {
              if (*mode == "schedule") {
                auto s = core::Schedule::parse(o->expression);
                if (!s) {
                  return Unexpected(
                      usage_error("invalid schedule " + util::quote(o->expression) + " " + s.error().message));
                }
                util::Millis from = util::SystemClock().now_ms();
                if (!o->from.empty()) {
                  auto t = util::parse_iso8601(o->from);
                  if (!t) {
                    return Unexpected(
                        usage_error("--from: expected a time like 2026-01-02T03:04:05Z, got " + util::quote(o->from)));
                  }
                  from = *t;
                }
                auto runs = s->next_runs(from, std::min<size_t>(o->next, 1000));
                if (o->json) {
                  nlohmann::json a = nlohmann::json::array();
                  for (auto r : runs) {
                    a.push_back(util::format_iso8601(r));
                  }
                  std::cout << util::json_dump(a, 2) << "\n";
                } else {
                  for (auto r : runs) {
                    std::printf("%s\n", util::format_iso8601(r).c_str());
                  }
                  if (runs.empty()) {
                    std::printf("no future runs\n");
                  }
                }
                return k_exit_ok;
              }
              ApiClient client(discover_server(g.server));
              if (*mode == "show") {
                IDP_TRY_ASSIGN(auto t, client.get("/api/v1/templates/" + util::url_encode(o->name)));
                if (o->json) {
                  std::cout << util::json_dump(t, 2) << "\n";
                  return k_exit_ok;
                }
                std::printf("%s: %s\n", t.value("name", "").c_str(), t.value("description", "").c_str());
                std::printf("components: %s\n", util::json_dump(t["components"]).c_str());
                std::printf("runtimes:   %s\n", util::json_dump(t["runtimes"]).c_str());
                if (!t.value("estimated_cost", "").empty()) {
                  std::printf("est. cost:  %s\n", t.value("estimated_cost", "").c_str());
                }
                std::printf("directory:  %s\n", t.value("dir", "").c_str());
                if (!t["fields"].empty()) {
                  std::printf("\nfields:\n");
                  output::Table tb;
                  tb.headers = {"KEY", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"};
                  for (const auto& f : t["fields"]) {
                    tb.rows.push_back(
                        {f.value("name", ""), f.value("type", ""), f.value("required", false) ? "yes" : "no",
                         f.contains("default") ? util::json_dump(f["default"]) : "-", f.value("description", "")});
                  }
                  std::cout << tb.render();
                }
                if (!t["outputs"].empty()) {
                  std::printf("\noutputs:\n");
                  for (const auto& [k, v] : t["outputs"].items()) {
                    std::printf("  %s: %s\n", k.c_str(),
                                v.is_string() ? v.get<std::string>().c_str() : util::json_dump(v).c_str());
                  }
                }
                return k_exit_ok;
              }
              IDP_TRY_ASSIGN(auto resp, client.get("/api/v1/templates"));
              nlohmann::json shown = nlohmann::json::array();
              for (const auto& t : resp["templates"]) {
                if (o->all || !t.value("hidden", false)) {
                  shown.push_back(t);
                }
              }
              if (o->json) {
                std::cout << util::json_dump(shown, 2) << "\n";
                return k_exit_ok;
              }
              output::Table tb;
              tb.headers = {"NAME", "COMPONENTS", "RUNTIMES", "DESCRIPTION"};
              for (const auto& t : shown) {
                std::vector<std::string> comps = t["components"].get<std::vector<std::string>>();
                std::vector<std::string> rts = t["runtimes"].get<std::vector<std::string>>();
                tb.rows.push_back(
                    {t.value("name", ""), util::join(comps, ","), util::join(rts, ","), t.value("description", "")});
              }
              std::cout << tb.render();
              for (const auto& p : resp["problems"]) {
                std::fprintf(stderr, "warning: %s\n", p.get<std::string>().c_str());
              }
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
