// REST request bodies (core/api_types, as the API server parses them): any bytes give a
// typed request or an invalid_argument naming the field, never a throw; a parsed request
// serialises back to the same request (the CLI sends to_json()).
// Input: one selector byte (which body), then the body.

#include "core/api_types.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  uint8_t which = in.byte();
  std::string body = in.rest();
  auto j = core::parse_json_object(body);
  if (!j) {
    IDP_FUZZ_CHECK(!j.error().message.empty());
    return 0;
  }
  IDP_FUZZ_CHECK(j->is_object());
  switch (which % 3) {
  case 0: {
    auto r = core::CreateEnvironmentRequest::from_json(*j);
    if (r) {
      auto again = core::CreateEnvironmentRequest::from_json(nlohmann::json::parse(fuzz::serialise(r->to_json())));
      IDP_FUZZ_CHECK(again.has_value());
      IDP_FUZZ_CHECK(again->repo == r->repo && again->branch == r->branch && again->name == r->name &&
                     again->template_name == r->template_name && again->ttl == r->ttl && again->owner == r->owner &&
                     again->runtime == r->runtime);
    } else {
      IDP_FUZZ_CHECK(!r.error().message.empty());
    }
    break;
  }
  case 1: {
    auto r = core::ExtendRequest::from_json(*j);
    if (r) {
      auto again = core::ExtendRequest::from_json(nlohmann::json::parse(fuzz::serialise(r->to_json())));
      IDP_FUZZ_CHECK(again.has_value() && again->ttl == r->ttl);
    }
    break;
  }
  default:
    // Every parsed body is echoed in some answer (errors quote fields).
    (void)fuzz::serialise(*j);
    break;
  }
  return 0;
}
