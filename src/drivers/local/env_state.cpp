#include "drivers/local/env_state.hpp"

#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

nlohmann::json DatabaseRecord::to_json() const {
  return {{"name", name},
          {"salt", salt},
          {"seed_path", seed_path},
          {"seed_template", seed_template},
          {"created_by", created_by}};
}

DatabaseRecord DatabaseRecord::from_json(const nlohmann::json& j) {
  DatabaseRecord r;
  r.name = j.value("name", "");
  r.salt = j.value("salt", "");
  r.seed_path = j.value("seed_path", "");
  r.seed_template = j.value("seed_template", "");
  r.created_by = j.value("created_by", "");
  return r;
}

nlohmann::json InstanceRecord::to_json() const {
  return {{"key", key},
          {"revision_id", revision_id},
          {"commit", commit},
          {"content_hash", content_hash},
          {"kind", kind},
          {"dir", dir},
          {"port", port},
          {"shim_pid", shim_pid},
          {"shim_start_time", shim_start_time},
          {"started_at", started_at},
          {"health_path", health_path},
          {"static_root", static_root},
          {"spa", spa},
          {"public_preview", public_preview},
          {"untrusted", untrusted},
          {"cgroup_dirs", cgroup_dirs},
          {"cgroup", cgroup},
          {"limits_warning", limits_warning},
          {"process_limit", process_limit},
          {"startup_ms", startup_ms},
          {"stopped_with_server", stopped_with_server},
          {"asleep", asleep},
          {"job", job}};
}

InstanceRecord InstanceRecord::from_json(const nlohmann::json& j) {
  InstanceRecord r;
  r.key = j.value("key", "");
  r.revision_id = j.value("revision_id", int64_t{0});
  r.commit = j.value("commit", "");
  r.content_hash = j.value("content_hash", "");
  r.kind = j.value("kind", "web");
  r.dir = j.value("dir", "");
  r.port = j.value("port", 0);
  r.shim_pid = j.value("shim_pid", 0);
  r.shim_start_time = j.value("shim_start_time", uint64_t{0});
  r.started_at = j.value("started_at", int64_t{0});
  r.health_path = j.value("health_path", "/");
  r.static_root = j.value("static_root", "");
  r.spa = j.value("spa", false);
  r.public_preview = j.value("public_preview", false);
  r.untrusted = j.value("untrusted", false);
  r.cgroup_dirs = j.value("cgroup_dirs", std::vector<std::string>{});
  r.cgroup = j.contains("cgroup") ? j.at("cgroup") : nlohmann::json();
  r.limits_warning = j.value("limits_warning", "");
  r.process_limit = j.value("process_limit", "");
  r.startup_ms = j.value("startup_ms", int64_t{0});
  r.stopped_with_server = j.value("stopped_with_server", false);
  r.asleep = j.value("asleep", false);
  r.job = j.contains("job") ? j.at("job") : nlohmann::json();
  return r;
}

nlohmann::json EnvState::to_json() const {
  nlohmann::json j = {{"env", env}, {"repo", repo}, {"next_seq", next_seq}};
  j["active"] = active ? active->to_json() : nlohmann::json();
  j["pending"] = pending ? pending->to_json() : nlohmann::json();
  if (!retiring.empty()) {
    j["retiring"] = nlohmann::json::array();
    for (const auto& r : retiring) {
      j["retiring"].push_back(r.to_json());
    }
  }
  j["route"] = route ? route->to_json() : nlohmann::json();
  j["database"] = database ? database->to_json() : nlohmann::json();
  return j;
}

Expected<std::optional<EnvState>> load_env_state(const std::string& path) {
  auto text = util::read_file(path);
  if (!text) {
    if (text.error().code == ErrorCode::not_found) {
      return std::optional<EnvState>();
    }
    return Unexpected(text.error());
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(ErrorCode::invalid_config, "malformed state file " + util::quote(path));
  }
  try {
    EnvState s;
    s.env = j.value("env", "");
    s.repo = j.value("repo", "");
    s.next_seq = j.value("next_seq", int64_t{1});
    if (j.contains("active") && j["active"].is_object()) {
      s.active = InstanceRecord::from_json(j["active"]);
    }
    if (j.contains("pending") && j["pending"].is_object()) {
      s.pending = InstanceRecord::from_json(j["pending"]);
    }
    if (j.contains("retiring") && j["retiring"].is_array()) {
      for (const auto& r : j["retiring"]) {
        if (r.is_object()) {
          s.retiring.push_back(InstanceRecord::from_json(r));
        }
      }
    }
    if (j.contains("database") && j["database"].is_object()) {
      s.database = DatabaseRecord::from_json(j["database"]);
    }
    if (j.contains("route")) {
      s.route = RouteTarget::from_json(j["route"]);
      if (s.route) {
        s.route->env = s.env;
      }
    }
    return std::optional<EnvState>(std::move(s));
  } catch (const nlohmann::json::exception& e) {
    return make_error(ErrorCode::invalid_config, "malformed state file " + util::quote(path) + ": " + e.what());
  }
}

Expected<void> save_env_state(const std::string& path, const EnvState& state) {
  return util::write_file_atomic(path, util::json_dump(state.to_json(), 2) + "\n", 0600);
}

} // namespace idp::drivers::local
