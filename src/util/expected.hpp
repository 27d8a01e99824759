#pragma once
// Error and Expected: how every layer reports an expected failure.
// Expected<T> = tl::expected<T, Error>; propagate with IDP_TRY / IDP_TRY_ASSIGN.

#include <memory>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace idp {

// What went wrong, coarse enough for callers to decide (retry, status code, exit code).
enum class ErrorCode {
  invalid_argument, // bad input from a user (flag, body, name, ttl): HTTP 400
  invalid_config,   // a config file or a config value is wrong: HTTP 422
  not_found,        // HTTP 404
  already_exists,   // HTTP 409
  conflict,         // held lease/lock, wrong state for the operation: HTTP 409
  too_large,        // HTTP 413
  unauthorized,     // HTTP 401
  transient,        // may succeed if retried (network, busy): HTTP 503
  timeout,          // a deadline passed: HTTP 504
  permanent,        // will not succeed by retrying: HTTP 500
  io_error,         // filesystem / process failure: HTTP 500
  cancelled,        // the operation was cancelled on purpose
  internal,         // a bug: HTTP 500
};

// Stable lowercase name of a code ("not_found"), used in JSON error bodies.
std::string_view error_code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::shared_ptr<Error> cause;
  // A finer, machine-readable name than `code` for callers that tell cases apart (the API's
  // "error": "budget_exhausted"); "" = the code's name.
  std::string kind;

  Error() = default;
  Error(ErrorCode c, std::string msg, std::shared_ptr<Error> why = nullptr)
      : code(c), message(std::move(msg)), cause(std::move(why)) {}

  // The message with its causes appended: "a: b: c".
  std::string full_message() const;

  // A new error of the same code with `context` prepended: "context: message".
  Error with_context(std::string_view context) const;
};

template <typename T>
using Expected = tl::expected<T, Error>;
using Unexpected = tl::unexpected<Error>;

inline Unexpected make_error(ErrorCode code, std::string message) {
  return Unexpected(Error(code, std::move(message)));
}

} // namespace idp

// IDP_TRY(expr): evaluate an Expected<void|T>; return its error from the enclosing function.
#define IDP_TRY(expr)                                                                                                  \
  do {                                                                                                                 \
    auto&& idp_try_result_ = (expr);                                                                                   \
    if (!idp_try_result_) {                                                                                            \
      return ::tl::unexpected(std::move(idp_try_result_.error()));                                                     \
    }                                                                                                                  \
  } while (false)

#define IDP_CONCAT_IMPL(a, b) a##b
#define IDP_CONCAT(a, b) IDP_CONCAT_IMPL(a, b)
// IDP_TRY_ASSIGN(decl, expr): `decl = *expr` or return expr's error.
#define IDP_TRY_ASSIGN(decl, expr) IDP_TRY_ASSIGN_IMPL(IDP_CONCAT(idp_try_tmp_, __LINE__), decl, expr)
#define IDP_TRY_ASSIGN_IMPL(tmp, decl, expr)                                                                           \
  auto tmp = (expr);                                                                                                   \
  if (!tmp) {                                                                                                          \
    return ::tl::unexpected(std::move(tmp.error()));                                                                   \
  }                                                                                                                    \
  decl = std::move(*tmp)

// IDP_ASSERT: invariants only, never external input.
#define IDP_ASSERT(cond)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      ::idp::detail::assert_failed(#cond, __FILE__, __LINE__);                                                         \
    }                                                                                                                  \
  } while (false)

namespace idp::detail {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line);
}
