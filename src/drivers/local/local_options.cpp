#include "drivers/local/local_options.hpp"

#include <cstdint>

#include "core/option_table.hpp"

namespace idp::drivers::local {

namespace {

using core::Option;
using core::OptionMessage;
using nlohmann::json;
namespace values = core::option_values;

OptionMessage set_ms(const json& v, int64_t& out, int64_t min) {
  return values::whole_number_into(v, min, INT64_MAX, "a number of milliseconds of at least " + std::to_string(min),
                                   out);
}

// A non-empty string (an absolute path when `absolute`), else what was expected.
OptionMessage set_text(const json& v, std::string& out, std::string_view what, bool absolute) {
  std::string s;
  if (v.is_string()) {
    s = v.get<std::string>();
  }
  if (!v.is_string() || s.empty() || (absolute && s.front() != '/')) {
    return "expected " + std::string(what) + ", got " + core::describe_config_value(v);
  }
  out = s;
  return std::nullopt;
}

const core::OptionTable<LocalOptions>& local_table() {
  static const core::OptionTable<LocalOptions> k_table(
      {
          {.key = "health_timeout_ms",
           .default_text = "60000",
           .doc = "how long a new revision may take to pass its health check",
           .parse = [](const json& v, LocalOptions& o) { return set_ms(v, o.health_timeout_ms, 1); }},
          {.key = "stop_grace_ms",
           .default_text = "5000",
           .doc = "TERM to KILL delay when stopping a revision",
           .parse = [](const json& v, LocalOptions& o) { return set_ms(v, o.stop_grace_ms, 0); }},
          {.key = "drain_ms",
           .default_text = "1000",
           .doc = "how long an old revision keeps running after the route moved",
           .parse = [](const json& v, LocalOptions& o) { return set_ms(v, o.drain_ms, 0); }},
          {.key = "build_timeout_ms",
           .default_text = "600000",
           .doc = "the local.build deadline",
           .parse = [](const json& v, LocalOptions& o) { return set_ms(v, o.build_timeout_ms, 1); }},
          {.key = "log_max_bytes",
           .default_text = "10485760",
           .doc = "app.log size before rotation",
           .parse =
               [](const json& v, LocalOptions& o) {
                 return values::whole_number_into(v, 1024, INT64_MAX, "a number of bytes of at least 1024",
                                                  o.log_max_bytes);
               }},
          {.key = "log_keep",
           .default_text = "5",
           .doc = "rotated app.log files kept",
           .parse =
               [](const json& v, LocalOptions& o) {
                 return values::whole_number_into(v, 0, 1000, "a number of files between 0 and 1000", o.log_keep);
               }},
          {.key = "cgroup_root",
           .default_text = "/sys/fs/cgroup",
           .parse = [](const json& v,
                       LocalOptions& o) { return set_text(v, o.cgroup_root, "an absolute path", true); }},
          {.key = "caddy_binary",
           .default_text = "caddy",
           .parse = [](const json& v,
                       LocalOptions& o) { return set_text(v, o.caddy_binary, "a program name or path", false); }},
          {.key = "router_mode",
           .default_text = "routes",
           .doc = "routes: a Caddy route per environment; lookup: Caddy asks the daemon for each request",
           .parse = [](const json& v, LocalOptions& o) -> OptionMessage {
             if (!v.is_string() || (v.get<std::string>() != "routes" && v.get<std::string>() != "lookup")) {
               return "expected \"routes\" or \"lookup\", got " + core::describe_config_value(v);
             }
             o.router_mode = v.get<std::string>();
             return std::nullopt;
           }},
          {.key = "postgres_bin_dir",
           .doc = "\"\" = newest /usr/lib/postgresql/*/bin, pg_config, PATH",
           .parse = [](const json& v,
                       LocalOptions& o) { return set_text(v, o.postgres_bin_dir, "an absolute path", true); }},
          {.key = "postgres_user",
           .parse = [](const json& v, LocalOptions& o) { return set_text(v, o.postgres_user, "a user name", false); }},
          {.key = "isolation",
           .default_text = "auto",
           .doc = "auto: a root daemon runs each environment as a uid of its own; off: as the daemon's user",
           .parse = [](const json& v, LocalOptions& o) -> OptionMessage {
             if (!v.is_string() || (v.get<std::string>() != "auto" && v.get<std::string>() != "off")) {
               return "expected \"auto\" or \"off\", got " + core::describe_config_value(v);
             }
             o.isolation = v.get<std::string>();
             return std::nullopt;
           }},
          {.key = "uid_range",
           .default_text = "200000-265535",
           .parse = [](const json& v, LocalOptions& o) -> OptionMessage {
             auto r = v.is_string() ? UidRange::parse(v.get<std::string>()) : UidRange::parse("");
             if (!r) {
               return "expected a uid range like \"200000-265535\" (first-last, at least 1000), got " +
                      core::describe_config_value(v);
             }
             o.uid_range = *r;
             return std::nullopt;
           }},
          {.key = "pids_max",
           .default_text = "512",
           .parse =
               [](const json& v, LocalOptions& o) {
                 return values::whole_number_into(v, 0, 4194304,
                                                  "a number of processes between 0 (no limit) and 4194304", o.pids_max);
               }},
          {.key = "startup_cpu_boost",
           .default_text = "true",
           .doc = "an app starts without its cpu limit, which holds again once it is healthy",
           .parse = [](const json& v, LocalOptions& o) -> OptionMessage {
             if (!v.is_boolean()) {
               return "expected true or false, got " + core::describe_config_value(v);
             }
             o.startup_cpu_boost = v.get<bool>();
             return std::nullopt;
           }},
          {.key = "database_connection_limit",
           .default_text = "20",
           .parse =
               [](const json& v, LocalOptions& o) {
                 return values::whole_number_into(v, 1, 10000, "a number of connections between 1 and 10000",
                                                  o.database_connection_limit);
               }},
          {.key = "schedule_time_scale",
           .default_text = "1",
           .doc = "test-only: schedule time runs this many times faster",
           .parse =
               [](const json& v, LocalOptions& o) {
                 return values::whole_number_into(v, 1, 3600, "a whole number between 1 and 3600",
                                                  o.schedule_time_scale);
               }},
      },
      "option");
  return k_table;
}

} // namespace

Expected<LocalOptions> LocalOptions::parse(const nlohmann::json& options) {
  LocalOptions o;
  IDP_TRY(local_table().apply_json(options, o, "driver \"local\""));
  return o;
}

} // namespace idp::drivers::local
