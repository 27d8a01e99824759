#pragma once
// Shared by the libFuzzer targets in fuzz/: a reader that splits the fuzzer's bytes into
// fields, and IDP_FUZZ_CHECK, which turns a broken invariant into a crash libFuzzer keeps
// (an Expected error on bad input is fine; a throw, an abort or a wrong answer is not).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#if __has_include("util/json.hpp")
#include "util/json.hpp"
#define IDP_FUZZ_HAVE_JSON_DUMP 1
#else
#define IDP_FUZZ_HAVE_JSON_DUMP 0
#endif

// Aborts with the condition and location: libFuzzer saves the input as a crash artifact.
#define IDP_FUZZ_CHECK(cond)                                                                                           \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);                           \
      std::abort();                                                                                                    \
    }                                                                                                                  \
  } while (0)

namespace idp::fuzz {

// The fuzzer's input as consecutive fields: `field()` takes bytes up to the next '\n'
// (or the rest), so seed files stay readable text, one field per line.
class FuzzInput {
public:
  FuzzInput(const uint8_t* data, size_t size) : m_rest(reinterpret_cast<const char*>(data), size) {}

  std::string field() {
    size_t nl = m_rest.find('\n');
    std::string out(m_rest.substr(0, nl));
    m_rest = nl == std::string_view::npos ? std::string_view() : m_rest.substr(nl + 1);
    return out;
  }
  // One byte as a small integer (0 when the input is exhausted).
  uint8_t byte() {
    if (m_rest.empty()) {
      return 0;
    }
    uint8_t b = static_cast<uint8_t>(m_rest.front());
    m_rest.remove_prefix(1);
    return b;
  }
  std::string rest() {
    std::string out(m_rest);
    m_rest = {};
    return out;
  }
  bool empty() const { return m_rest.empty(); }

private:
  std::string_view m_rest;
};

// Silences spdlog (the code under test logs rejected input; at a million runs that is
// most of the time spent). Call once from LLVMFuzzerInitialize.
inline void quiet_logs() { spdlog::set_level(spdlog::level::off); }

// What the daemon does to JSON it stores or sends (API bodies, config_json in the store):
// the project's one serialiser, util::json_dump, which writes invalid UTF-8 as U+FFFD and
// never throws (issue 10). Where it is not in the tree yet, the same semantics by hand: a
// strict dump() here would only re-find the known type_error.316 crash (fuzz/RESULTS.md).
inline std::string serialise(const nlohmann::json& j) {
#if IDP_FUZZ_HAVE_JSON_DUMP
  return util::json_dump(j);
#else
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
#endif
}

} // namespace idp::fuzz
