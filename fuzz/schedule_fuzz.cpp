// EventBridge schedule expressions (core/schedule): any text parses or gives a positioned
// error, never a throw or a crash; next runs of a valid schedule strictly increase.
// Input: the expression on the first line; 8 more bytes pick the start time.

#include <cstring>

#include "core/schedule.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  std::string expr = in.field();
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) {
    seed = seed << 8 | in.byte();
  }
  auto s = core::Schedule::parse(expr);
  auto err = core::Schedule::parse_error(expr);
  IDP_FUZZ_CHECK(s.has_value() == !err.has_value());
  if (!s) {
    IDP_FUZZ_CHECK(!err->message.empty());
    IDP_FUZZ_CHECK(err->position <= expr.size());
    return 0;
  }
  // 1970 .. ~2200, where the parser accepts years.
  util::Millis t = static_cast<util::Millis>(seed % 7'258'118'400'000ULL);
  auto runs = s->next_runs(t, 3);
  util::Millis prev = t;
  for (auto r : runs) {
    IDP_FUZZ_CHECK(r > prev);
    if (!s->is_rate()) {
      IDP_FUZZ_CHECK(r % 60'000 == 0);
    }
    prev = r;
  }
  if (s->is_rate()) {
    IDP_FUZZ_CHECK(runs.size() == 3);
  }
  return 0;
}
