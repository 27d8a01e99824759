#include "util/expected.hpp"

#include <cstdio>
#include <cstdlib>

namespace idp {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
  case ErrorCode::invalid_argument: return "invalid_argument";
  case ErrorCode::invalid_config: return "invalid_config";
  case ErrorCode::not_found: return "not_found";
  case ErrorCode::already_exists: return "already_exists";
  case ErrorCode::conflict: return "conflict";
  case ErrorCode::too_large: return "too_large";
  case ErrorCode::unauthorized: return "unauthorized";
  case ErrorCode::transient: return "transient";
  case ErrorCode::timeout: return "timeout";
  case ErrorCode::permanent: return "permanent";
  case ErrorCode::io_error: return "io_error";
  case ErrorCode::cancelled: return "cancelled";
  case ErrorCode::internal: return "internal";
  }
  return "internal";
}

std::string Error::full_message() const {
  std::string out = message;
  for (auto c = cause; c; c = c->cause) {
    out += ": ";
    out += c->message;
  }
  return out;
}

Error Error::with_context(std::string_view context) const {
  Error e(code, std::string(context) + ": " + message, cause);
  e.kind = kind;
  return e;
}

namespace detail {
void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "idp: internal error: assertion \"%s\" failed at %s:%d\n", expr, file, line);
  std::abort();
}
} // namespace detail

} // namespace idp
