#pragma once
// Request bodies of the REST API, shared by the server (api/) and the client (cli/).
// Unknown fields are ignored so the protocol can evolve; wrong types are errors.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::core {

inline constexpr const char* k_api_prefix = "/api/v1";

struct CreateEnvironmentRequest {
  std::string repo;
  std::string branch;
  std::string name;
  std::string template_name;
  std::string ttl;
  std::string owner;
  std::string runtime;

  nlohmann::json to_json() const;
  // invalid_argument naming the field and what was expected.
  static Expected<CreateEnvironmentRequest> from_json(const nlohmann::json& j);
};

struct ExtendRequest {
  std::string ttl;

  nlohmann::json to_json() const { return {{"ttl", ttl}}; }
  static Expected<ExtendRequest> from_json(const nlohmann::json& j);
};

// Parses a request body: a JSON object, or invalid_argument ("invalid JSON at byte N: ...").
Expected<nlohmann::json> parse_json_object(const std::string& body);

} // namespace idp::core
