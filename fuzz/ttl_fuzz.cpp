// TTLs and durations (core/ttl): any text is a duration or an invalid_argument, never a
// throw or an overflow (UBSan); a parsed duration prints back to the same value.

#include "core/ttl.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = core::parse_duration(text);
  if (!d) {
    IDP_FUZZ_CHECK(!d.error().message.empty());
  } else {
    IDP_FUZZ_CHECK(*d >= 0);
    std::string shown = core::format_ttl(*d);
    auto again = core::parse_duration(shown);
    IDP_FUZZ_CHECK(again.has_value());
    IDP_FUZZ_CHECK(*again == *d);
  }
  core::TtlPolicy policy;
  auto ttl = policy.parse(text);
  if (ttl) {
    IDP_FUZZ_CHECK(*ttl >= policy.min && *ttl <= policy.max);
    IDP_FUZZ_CHECK(d.has_value() && *d == *ttl);
  }
  return 0;
}
