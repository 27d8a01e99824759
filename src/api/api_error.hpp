#pragma once
// ApiError: the one exception handlers throw; mapped to {"error": code, "message": ...}.

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace httplib {
struct Response;
} // namespace httplib

namespace idp::api {

// Answers `body` as JSON (one line, newline-terminated) with `status`.
void send_json(httplib::Response& res, int status, const nlohmann::json& body);

class ApiError : public std::runtime_error {
public:
  ApiError(int status, std::string code, const std::string& message, nlohmann::json details = nullptr)
      : std::runtime_error(message), m_status(status), m_code(std::move(code)), m_details(std::move(details)) {}

  // From a layer's Error: the status follows the code (not_found → 404, ...).
  static ApiError from(const Error& e);

  int status() const { return m_status; }
  const std::string& code() const { return m_code; }
  nlohmann::json body() const;

private:
  int m_status;
  std::string m_code;
  nlohmann::json m_details;
};

int http_status_for(ErrorCode code);

// Throws ApiError::from(e) when `e` holds an error, else returns the value.
template <typename T>
T unwrap(Expected<T> e) {
  if (!e) {
    throw ApiError::from(e.error());
  }
  if constexpr (!std::is_void_v<T>) {
    return std::move(*e);
  }
}

} // namespace idp::api
