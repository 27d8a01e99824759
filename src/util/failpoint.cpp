#include "util/failpoint.hpp"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::util {

namespace {

struct Active {
  FailpointSpec spec;
  int64_t hits = 0; // times it fired
};

// The one process-wide registry: failpoints are configured by the environment of the
// process, not by a Context, so that any layer can hold a site without plumbing.
struct Registry {
  std::mutex mu;
  std::map<std::string, Active, std::less<>> points;
};

Registry& registry() {
  static Registry r;
  return r;
}

Expected<int64_t> parse_count(std::string_view s, std::string_view entry, std::string_view what) {
  auto v = parse_int<int64_t>(s, 0);
  if (!v) {
    return make_error(ErrorCode::invalid_config,
                      "IDP_FAILPOINTS: " + quote(entry) + ": expected " + std::string(what) + ", got " + quote(s));
  }
  return *v;
}

} // namespace

Expected<std::vector<FailpointSpec>> parse_failpoints(std::string_view text) {
  std::vector<FailpointSpec> out;
  for (const auto& raw : split(std::string(text), ',')) {
    std::string entry = trim(raw);
    if (entry.empty()) {
      continue;
    }
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      return make_error(ErrorCode::invalid_config,
                        "IDP_FAILPOINTS: " + quote(entry) + ": expected name=abort|error|throw|delay(ms)[*count]");
    }
    FailpointSpec spec;
    spec.name = entry.substr(0, eq);
    std::string_view action = std::string_view(entry).substr(eq + 1);
    if (auto star = action.rfind('*'); star != std::string_view::npos) {
      IDP_TRY_ASSIGN(spec.count, parse_count(action.substr(star + 1), entry, "a count of hits after '*'"));
      action = action.substr(0, star);
    }
    if (action == "error") {
      spec.action = FailAction::error;
    } else if (action == "throw") {
      spec.action = FailAction::throw_exception;
    } else if (action == "abort") {
      spec.action = FailAction::abort;
    } else if (starts_with(action, "delay(") && ends_with(action, ")")) {
      spec.action = FailAction::delay;
      IDP_TRY_ASSIGN(spec.delay_ms,
                     parse_count(action.substr(6, action.size() - 7), entry, "milliseconds in delay(ms)"));
    } else {
      return make_error(ErrorCode::invalid_config, "IDP_FAILPOINTS: " + quote(entry) +
                                                       ": expected an action abort, error, throw or delay(ms), got " +
                                                       quote(action));
    }
    out.push_back(std::move(spec));
  }
  return out;
}

void set_failpoints(std::vector<FailpointSpec> specs) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  r.points.clear();
  for (auto& s : specs) {
    std::string name = s.name;
    r.points[name] = Active{std::move(s), 0};
  }
  detail::g_failpoints_on.store(!r.points.empty(), std::memory_order_relaxed);
}

Expected<void> init_failpoints_from_env() {
  const char* text = std::getenv("IDP_FAILPOINTS");
  IDP_TRY_ASSIGN(auto specs, parse_failpoints(text ? text : ""));
  for (const auto& s : specs) {
    spdlog::warn("failpoint {} is armed (IDP_FAILPOINTS)", s.name);
  }
  set_failpoints(std::move(specs));
  return {};
}

Error failpoint_error(std::string_view name) {
  return Error(ErrorCode::transient, "failpoint " + std::string(name) + " fired");
}

int64_t failpoint_hits(std::string_view name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  auto it = r.points.find(name);
  return it == r.points.end() ? 0 : it->second.hits;
}

namespace detail {

bool failpoint_slow(std::string_view name) {
  FailAction action;
  int64_t delay_ms;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    auto it = r.points.find(name);
    if (it == r.points.end()) {
      return false;
    }
    Active& a = it->second;
    if (a.spec.count >= 0 && a.hits >= a.spec.count) {
      return false;
    }
    a.hits += 1;
    action = a.spec.action;
    delay_ms = a.spec.delay_ms;
  }
  // Said before acting, so a test finds the line even when the action is abort.
  spdlog::warn("failpoint {} fired", name);
  switch (action) {
  case FailAction::error: return true;
  case FailAction::throw_exception: throw FailpointError(std::string(name));
  case FailAction::abort:
    spdlog::default_logger()->flush();
    std::fprintf(stderr, "idp: failpoint %.*s fired: aborting\n", static_cast<int>(name.size()), name.data());
    std::abort();
  case FailAction::delay: std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms)); return false;
  }
  return false;
}

} // namespace detail

} // namespace idp::util
