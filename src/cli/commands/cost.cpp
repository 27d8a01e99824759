// idp cost: what environments cost (issue 12; api/cost_routes.hpp), and the monthly
// chargeback report.
#include <cctype>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "cli/output/table.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/s3_client.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

std::string money(const nlohmann::json& v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.4f", v.is_number() ? v.get<double>() : 0.0);
  return buf;
}

std::string number(const nlohmann::json& v, const char* format) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v.is_number() ? v.get<double>() : 0.0);
  return buf;
}

std::string text_or_dash(const nlohmann::json& j, const char* key) {
  std::string s = j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
  return s.empty() ? "-" : s;
}

std::string query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (!v.empty()) {
      q += (q.empty() ? "?" : "&") + k + "=" + util::url_encode(v);
    }
  }
  return q;
}

void print_one(const nlohmann::json& c) {
  std::string cur = c.value("currency", "USD");
  std::printf("%-16s %s\n", "environment:", c.value("name", "").c_str());
  std::printf("%-16s %s (team %s)\n", "owner:", text_or_dash(c, "owner").c_str(), text_or_dash(c, "team").c_str());
  std::printf("%-16s %s %s%s\n", "cost to date:", money(c["total"]).c_str(), cur.c_str(),
              c.value("estimate", false) ? " (estimate from its size: nothing measured)" : "");
  std::printf("%-16s %s %s reserved, %s storage\n", "of which:", money(c["reserved"]).c_str(), cur.c_str(),
              money(c["storage"]).c_str());
  std::printf("%-16s %s %s (%s CPU seconds, %s GB-hours of memory)\n", "used:", money(c["used"]).c_str(), cur.c_str(),
              number(c["cpu_seconds"], "%.1f").c_str(), number(c["memory_gb_hours"], "%.4f").c_str());
  std::printf("%-16s %s %s/day, about %s %s this month\n", "burn:", money(c["per_day"]).c_str(), cur.c_str(),
              money(c["projected_month"]).c_str(), cur.c_str());
  std::printf("%-16s %s h\n", "running:", number(c["running_hours"], "%.2f").c_str());
  if (c.contains("cost_explorer")) {
    std::printf("%-16s %s\n", "billed (AWS):", util::json_dump(c["cost_explorer"]).c_str());
  }
}

} // namespace

CommandSpec cost_command() {
  struct Options {
    std::string name;
    std::string by;
    std::string since;
    bool json = false;
    std::string month;
    std::string format = "csv";
    std::string output;
  };
  CommandSpec spec;
  spec.name = "cost";
  spec.summary = "what environments cost, to date, per day and this month; report: a month's chargeback";
  spec.setup = [](CLI::App& sub, const GlobalOptions& g) -> Runner {
    auto o = std::make_shared<Options>();
    auto report = std::make_shared<bool>(false);
    sub.add_option("name", o->name, "one environment (default: every one)");
    sub.add_option("--by", o->by, "group by owner, team, repo or template");
    sub.add_option("--since", o->since, "only the usage of this last while, like 7d or 12h");
    sub.add_flag("--json", o->json, "print JSON");
    auto* rep = sub.add_subcommand("report", "a month's chargeback report, per team, owner, repo or environment");
    rep->add_option("--month", o->month, "the month, YYYY-MM like 2026-11")->required();
    rep->add_option("--by", o->by, "group by team, owner, repo or template (default: per environment)");
    rep->add_option("--format", o->format, "csv (default) or json");
    rep->add_option("--output", o->output,
                    "write it to this file, or upload it to s3://bucket/key (AWS_* variables), instead of stdout");
    rep->callback([report] { *report = true; });
    return [o, report, &g]() -> Expected<int> {
      ApiClient client(discover_server(g.server));
      if (*report) {
        if (o->format != "csv" && o->format != "json") {
          return Unexpected(usage_error("--format: expected csv or json, got " + util::quote(o->format)));
        }
        // An S3 destination and its credentials are checked before the report is asked for.
        std::optional<util::S3Location> s3_to;
        std::optional<util::S3Config> s3;
        if (util::starts_with(o->output, "s3://")) {
          auto loc = util::parse_s3_url(o->output);
          if (!loc) {
            return Unexpected(usage_error("--output: " + loc.error().message));
          }
          IDP_TRY_ASSIGN(auto cfg, util::s3_config_from_env());
          s3_to = *loc;
          s3 = cfg;
        }
        std::string path = "/api/v1/cost/report" + query({{"month", o->month}, {"by", o->by}, {"format", o->format}});
        IDP_TRY_ASSIGN(std::string body, client.get_text(path));
        if (o->format == "json") {
          body = util::json_dump(nlohmann::json::parse(body, nullptr, false), 2) + "\n";
        }
        if (o->output.empty()) {
          std::cout << body;
          return k_exit_ok;
        }
        if (s3_to) {
          IDP_TRY(util::s3_put_object(*s3, *s3_to, body, o->format == "csv" ? "text/csv" : "application/json"));
          std::fprintf(stderr, "uploaded the %s report of %s to %s\n", o->format.c_str(), o->month.c_str(),
                       s3_to->url().c_str());
          return k_exit_ok;
        }
        IDP_TRY(util::write_file_atomic(o->output, body));
        std::fprintf(stderr, "wrote the %s report of %s to %s\n", o->format.c_str(), o->month.c_str(),
                     o->output.c_str());
        return k_exit_ok;
      }
      if (!o->name.empty()) {
        if (!o->by.empty()) {
          return Unexpected(usage_error("--by groups every environment: leave out the name, or --by"));
        }
        IDP_TRY_ASSIGN(auto c, client.get("/api/v1/environments/" + util::url_encode(o->name) + "/cost" +
                                          query({{"since", o->since}})));
        if (o->json) {
          std::cout << util::json_dump(c, 2) << "\n";
        } else {
          print_one(c);
        }
        return k_exit_ok;
      }
      IDP_TRY_ASSIGN(auto all, client.get("/api/v1/cost" + query({{"by", o->by}, {"since", o->since}})));
      if (o->json) {
        std::cout << util::json_dump(all, 2) << "\n";
        return k_exit_ok;
      }
      std::string cur = all.value("currency", "USD");
      std::string by = all.value("by", "environment");
      output::Table tb;
      if (by == "environment") {
        tb.headers = {"NAME", "OWNER", "TEAM", "TO DATE", "PER DAY", "THIS MONTH", "USED", "CPU S"};
      } else {
        std::string head = by;
        for (char& ch : head) {
          ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        }
        tb.headers = {head, "ENVS", "TO DATE", "PER DAY", "THIS MONTH", "USED", "CPU S"};
      }
      for (const auto& l : all["lines"]) {
        std::vector<std::string> figures = {money(l["total"]), money(l["per_day"]), money(l["projected_month"]),
                                            money(l["used"]), number(l["cpu_seconds"], "%.1f")};
        std::vector<std::string> row;
        if (by == "environment") {
          row = {l.value("name", ""), text_or_dash(l, "owner"), text_or_dash(l, "team")};
        } else {
          std::string key = l.contains(by) && l[by].is_string() ? l[by].get<std::string>() : "";
          row = {key.empty() ? "(none)" : key, std::to_string(l["environments"].size())};
        }
        row.insert(row.end(), figures.begin(), figures.end());
        tb.rows.push_back(row);
      }
      std::cout << tb.render();
      const auto& t = all["total"];
      std::printf("total %s %s to date, %s %s/day, about %s %s this month\n", money(t["total"]).c_str(), cur.c_str(),
                  money(t["per_day"]).c_str(), cur.c_str(), money(t["projected_month"]).c_str(), cur.c_str());
      return k_exit_ok;
    };
  };
  return spec;
}

} // namespace idp::cli::commands
