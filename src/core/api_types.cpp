#include "core/api_types.hpp"

#include "util/strings.hpp"

namespace idp::core {

namespace {
Expected<std::string> string_field(const nlohmann::json& j, const char* key, bool required) {
  if (!j.contains(key) || j.at(key).is_null()) {
    if (required) {
      return make_error(ErrorCode::invalid_argument, std::string("field \"") + key + "\" is required");
    }
    return std::string();
  }
  if (!j.at(key).is_string()) {
    return make_error(ErrorCode::invalid_argument,
                      std::string("field \"") + key + "\": expected a string, got " + j.at(key).type_name());
  }
  std::string v = j.at(key).get<std::string>();
  if (v.size() > 4096) {
    return make_error(ErrorCode::invalid_argument, std::string("field \"") + key + "\": longer than 4096 bytes");
  }
  return v;
}
} // namespace

nlohmann::json CreateEnvironmentRequest::to_json() const {
  nlohmann::json j = {{"repo", repo}, {"branch", branch}};
  if (!name.empty()) {
    j["name"] = name;
  }
  if (!template_name.empty()) {
    j["template"] = template_name;
  }
  if (!ttl.empty()) {
    j["ttl"] = ttl;
  }
  if (!owner.empty()) {
    j["owner"] = owner;
  }
  if (!runtime.empty()) {
    j["runtime"] = runtime;
  }
  return j;
}

Expected<CreateEnvironmentRequest> CreateEnvironmentRequest::from_json(const nlohmann::json& j) {
  CreateEnvironmentRequest r;
  IDP_TRY_ASSIGN(r.repo, string_field(j, "repo", true));
  IDP_TRY_ASSIGN(r.branch, string_field(j, "branch", true));
  IDP_TRY_ASSIGN(r.name, string_field(j, "name", false));
  IDP_TRY_ASSIGN(r.template_name, string_field(j, "template", false));
  IDP_TRY_ASSIGN(r.ttl, string_field(j, "ttl", false));
  IDP_TRY_ASSIGN(r.owner, string_field(j, "owner", false));
  IDP_TRY_ASSIGN(r.runtime, string_field(j, "runtime", false));
  return r;
}

Expected<ExtendRequest> ExtendRequest::from_json(const nlohmann::json& j) {
  ExtendRequest r;
  IDP_TRY_ASSIGN(r.ttl, string_field(j, "ttl", true));
  return r;
}

Expected<nlohmann::json> parse_json_object(const std::string& body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (!j.is_object()) {
      return make_error(ErrorCode::invalid_argument, std::string("expected a JSON object, got ") + j.type_name());
    }
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid JSON at byte " + std::to_string(e.byte) + ": expected a JSON object");
  } catch (const nlohmann::json::exception& e) {
    // Well-formed JSON the parser cannot hold, e.g. a number past double's range
    // (out_of_range.406 for 1e999): bad input, not a server error.
    return make_error(ErrorCode::invalid_argument, std::string("invalid JSON: ") + e.what());
  }
}

} // namespace idp::core
