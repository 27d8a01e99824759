#include "api/api_error.hpp"

#include <httplib.h>

#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::api {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(util::json_dump(body) + "\n", "application/json");
}

int http_status_for(ErrorCode code) {
  switch (code) {
  case ErrorCode::invalid_argument: return 400;
  case ErrorCode::unauthorized: return 401;
  case ErrorCode::not_found: return 404;
  case ErrorCode::already_exists:
  case ErrorCode::conflict: return 409;
  case ErrorCode::too_large: return 413;
  case ErrorCode::invalid_config: return 422;
  case ErrorCode::transient: return 503;
  case ErrorCode::timeout: return 504;
  default: return 500;
  }
}

ApiError ApiError::from(const Error& e) {
  nlohmann::json details;
  std::string msg = e.full_message();
  if (e.code == ErrorCode::invalid_config) {
    // One line per problem ("file:line:col: key ...").
    details = nlohmann::json::array();
    for (const auto& line : util::split(msg, '\n')) {
      if (!line.empty()) {
        details.push_back(line);
      }
    }
  }
  return ApiError(http_status_for(e.code), e.kind.empty() ? std::string(error_code_name(e.code)) : e.kind, msg,
                  details);
}

nlohmann::json ApiError::body() const {
  nlohmann::json j = {{"error", m_code}, {"message", what()}};
  if (!m_details.is_null()) {
    j["errors"] = m_details;
  }
  return j;
}

} // namespace idp::api
