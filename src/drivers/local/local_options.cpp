#include "drivers/local/local_options.hpp"

#include <functional>
#include <vector>

#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

namespace {

struct OptionDef {
  const char* key;
  std::function<std::string(const nlohmann::json&, LocalOptions&)> set; // "" = ok, else what was expected
};

std::string set_ms(const nlohmann::json& v, int64_t& out, int64_t min) {
  if (!v.is_number_integer() || v.get<int64_t>() < min) {
    return "expected a number of milliseconds of at least " + std::to_string(min);
  }
  out = v.get<int64_t>();
  return "";
}

} // namespace

Expected<LocalOptions> LocalOptions::parse(const nlohmann::json& options) {
  LocalOptions o;
  if (options.is_null()) {
    return o;
  }
  if (!options.is_object()) {
    return make_error(ErrorCode::invalid_config, "driver \"local\": expected an object of options, got " + util::json_dump(options));
  }
  static const std::vector<OptionDef> k_options = {
      {"health_timeout_ms", [](const nlohmann::json& v, LocalOptions& o) { return set_ms(v, o.health_timeout_ms, 1); }},
      {"stop_grace_ms", [](const nlohmann::json& v, LocalOptions& o) { return set_ms(v, o.stop_grace_ms, 0); }},
      {"drain_ms", [](const nlohmann::json& v, LocalOptions& o) { return set_ms(v, o.drain_ms, 0); }},
      {"build_timeout_ms", [](const nlohmann::json& v, LocalOptions& o) { return set_ms(v, o.build_timeout_ms, 1); }},
      {"log_max_bytes",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 1024) {
           return "expected a number of bytes of at least 1024";
         }
         o.log_max_bytes = v.get<int64_t>();
         return "";
       }},
      {"log_keep",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000) {
           return "expected a number of files between 0 and 1000";
         }
         o.log_keep = v.get<int>();
         return "";
       }},
      {"cgroup_root",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>()[0] != '/') {
           return "expected an absolute path";
         }
         o.cgroup_root = v.get<std::string>();
         return "";
       }},
      {"caddy_binary",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_string() || v.get<std::string>().empty()) {
           return "expected a program name or path";
         }
         o.caddy_binary = v.get<std::string>();
         return "";
       }},
      {"postgres_bin_dir",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>()[0] != '/') {
           return "expected an absolute path";
         }
         o.postgres_bin_dir = v.get<std::string>();
         return "";
       }},
      {"postgres_user",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_string() || v.get<std::string>().empty()) {
           return "expected a user name";
         }
         o.postgres_user = v.get<std::string>();
         return "";
       }},
      {"isolation",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_string() || (v.get<std::string>() != "auto" && v.get<std::string>() != "off")) {
           return "expected \"auto\" or \"off\"";
         }
         o.isolation = v.get<std::string>();
         return "";
       }},
      {"uid_range",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         auto r = v.is_string() ? UidRange::parse(v.get<std::string>()) : UidRange::parse("");
         if (!r) {
           return "expected a uid range like \"200000-265535\" (first-last, at least 1000)";
         }
         o.uid_range = *r;
         return "";
       }},
      {"pids_max",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 4194304) {
           return "expected a number of processes between 0 (no limit) and 4194304";
         }
         o.pids_max = v.get<int64_t>();
         return "";
       }},
      {"database_connection_limit",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 10000) {
           return "expected a number of connections between 1 and 10000";
         }
         o.database_connection_limit = v.get<int>();
         return "";
       }},
      {"schedule_time_scale",
       [](const nlohmann::json& v, LocalOptions& o) -> std::string {
         if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 3600) {
           return "expected a whole number between 1 and 3600";
         }
         o.schedule_time_scale = v.get<int64_t>();
         return "";
       }},
  };
  std::vector<std::string> names;
  for (const auto& d : k_options) {
    names.push_back(d.key);
  }
  for (const auto& [key, value] : options.items()) {
    const std::string& name = key; // a structured binding cannot be captured (clang 14)
    auto it = std::find_if(k_options.begin(), k_options.end(), [&](const OptionDef& d) { return name == d.key; });
    if (it == k_options.end()) {
      std::string hint = util::closest_match(key, names);
      return make_error(ErrorCode::invalid_config, "driver \"local\": unknown option " + util::quote(key) +
                                                       (hint.empty() ? "" : "; did you mean " + util::quote(hint) + "?"));
    }
    std::string expected = it->set(value, o);
    if (!expected.empty()) {
      return make_error(ErrorCode::invalid_config,
                        "driver \"local\": option " + util::quote(key) + ": " + expected + ", got " + util::json_dump(value));
    }
  }
  return o;
}

} // namespace idp::drivers::local
