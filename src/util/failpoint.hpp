#pragma once
// Failpoints: named places in the code where a test makes the daemon fail on purpose (the
// crash campaign, the thread-survival tests). Configured once at start from
//   IDP_FAILPOINTS=name=ACTION[*COUNT][,name2=...]
// ACTION: error (the site returns its error path), throw (a FailpointError), abort
// (std::abort(), a crash with no cleanup) or delay(MS) (sleeps, then goes on). *COUNT fires
// only the first COUNT hits. When IDP_FAILPOINTS is unset a site costs one relaxed atomic
// load. The list of sites is in docs/hacking.md. Thread-safe.

#include <atomic>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

namespace idp::util {

enum class FailAction { error, throw_exception, abort, delay };

struct FailpointSpec {
  std::string name;
  FailAction action = FailAction::error;
  int64_t delay_ms = 0; // delay only
  int64_t count = -1;   // hits that fire; -1 = every hit
};

// What a `throw` failpoint throws.
class FailpointError : public std::runtime_error {
public:
  explicit FailpointError(const std::string& name) : std::runtime_error("failpoint " + name + " fired") {}
};

// Parses the IDP_FAILPOINTS syntax; "" gives an empty list. invalid_config names the bad entry.
Expected<std::vector<FailpointSpec>> parse_failpoints(std::string_view text);

// Replaces the active failpoints (an empty list turns them all off).
void set_failpoints(std::vector<FailpointSpec> specs);
// set_failpoints(parse_failpoints(getenv("IDP_FAILPOINTS"))): called once by `idp serve` at
// start; invalid_config when the variable does not parse (nothing is changed then).
Expected<void> init_failpoints_from_env();

// The error a site returns when its failpoint fires with `error`: transient, naming it.
Error failpoint_error(std::string_view name);

// How often the failpoint `name` fired so far (for tests).
int64_t failpoint_hits(std::string_view name);

namespace detail {
inline std::atomic<bool> g_failpoints_on{false};
bool failpoint_slow(std::string_view name);
} // namespace detail

// The site: true when `name` fires with `error` (take the error path); throws, aborts or
// sleeps for the other actions; false when it does not fire or nothing is configured.
inline bool failpoint(std::string_view name) {
  if (!detail::g_failpoints_on.load(std::memory_order_relaxed)) {
    return false;
  }
  return detail::failpoint_slow(name);
}

} // namespace idp::util

// IDP_FAILPOINT("local.apply.built"): see util::failpoint.
#define IDP_FAILPOINT(name) (::idp::util::failpoint(name))
// In a function returning Expected: returns failpoint_error(name) when `name` fires with error.
#define IDP_FAILPOINT_RETURN(name)                                                                                     \
  do {                                                                                                                 \
    if (IDP_FAILPOINT(name)) {                                                                                         \
      return ::idp::Unexpected(::idp::util::failpoint_error(name));                                                    \
    }                                                                                                                  \
  } while (false)
