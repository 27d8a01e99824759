// idp dashboard: where the web dashboard is; --markdown [FILE]: ENVIRONMENTS.md, the
// original's generated dashboard.
#include <cstdio>
#include <iostream>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "core/dashboard_markdown.hpp"
#include "core/ttl.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli::commands {

CommandSpec dashboard_command() {
  struct Options {
    bool markdown = false;
    std::string file;            // "" = stdout
    std::string reaper_interval; // "" = ask the server
  };
  return {"dashboard", "print the web dashboard's URL, or render it as Markdown (ENVIRONMENTS.md)", false,
          [](CLI::App& sub, const GlobalOptions& g) -> Runner {
            auto o = std::make_shared<Options>();
            sub.add_flag("--markdown", o->markdown, "render Markdown (the original's ENVIRONMENTS.md)");
            sub.add_option("file", o->file, "write the Markdown to FILE instead of stdout (implies --markdown)");
            sub.add_option("--reaper-interval", o->reaper_interval,
                           "the TTL reaper's period to state (default: what the server reports)");
            return [o, &g]() -> Expected<int> {
              if (!o->markdown && o->file.empty()) {
                // The live dashboard is the server's web page: say where it is (checked to answer).
                ApiClient client(discover_server(g.server));
                IDP_TRY(client.get("/healthz"));
                std::printf("%s/\n", client.base_url().c_str());
                std::fprintf(stderr, "open it in a browser; idp dashboard --markdown [FILE] renders ENVIRONMENTS.md\n");
                return k_exit_ok;
              }
              core::DashboardOptions opts;
              if (!o->reaper_interval.empty()) {
                auto d = core::parse_duration(o->reaper_interval);
                if (!d || *d <= 0) {
                  return Unexpected(usage_error("--reaper-interval: expected a duration like 30s or 10m, got " +
                                                util::quote(o->reaper_interval)));
                }
                opts.reaper_interval = *d;
              }
              ApiClient client(discover_server(g.server));
              IDP_TRY_ASSIGN(auto resp, client.get("/api/v1/environments"));
              if (opts.reaper_interval == 0) {
                // Servers that report their reaper period say so in capabilities.
                if (auto caps = client.get("/api/v1/capabilities")) {
                  const auto& r = (*caps)["reaper_interval"];
                  if (r.is_number_integer() && r.get<int64_t>() > 0) {
                    opts.reaper_interval = r.get<int64_t>();
                  } else if (r.is_string()) {
                    opts.reaper_interval = core::parse_duration(r.get<std::string>()).value_or(0);
                  }
                }
              }
              std::vector<nlohmann::json> envs;
              if (resp.contains("environments") && resp["environments"].is_array()) {
                envs.assign(resp["environments"].begin(), resp["environments"].end());
              }
              std::string md = core::render_dashboard_markdown(envs, util::SystemClock().now_ms(), opts);
              if (o->file.empty() || o->file == "-") {
                std::cout << md;
                return k_exit_ok;
              }
              auto written = util::write_file_atomic(o->file, md);
              if (!written) {
                return Unexpected(written.error().with_context("cannot write " + util::quote(o->file)));
              }
              std::fprintf(stderr, "wrote %s\n", o->file.c_str());
              return k_exit_ok;
            };
          }};
}

} // namespace idp::cli::commands
