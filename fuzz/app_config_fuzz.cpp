// .idp/config.yml (core::parse_app_config): any bytes give a config or errors, never a
// throw or a crash; a valid config survives the trip the engine gives it (to JSON in the
// store's config_json, and back).

#include "core/app_config.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = core::parse_app_config(text);
  for (const auto& e : result.errors) {
    IDP_FUZZ_CHECK(!e.message.empty());
    IDP_FUZZ_CHECK(!e.to_string().empty());
  }
  if (!result.ok()) {
    return 0;
  }
  // Controller::resolve_config stores to_json(config) as config_json; the reconciler
  // reads it back with app_config_from_json.
  std::string stored = fuzz::serialise(core::to_json(result.config));
  auto back = core::app_config_from_json(nlohmann::json::parse(stored));
  IDP_FUZZ_CHECK(back.has_value());
  // Equal up to invalid UTF-8, which the serialiser replaces (yaml-cpp passes any bytes).
  IDP_FUZZ_CHECK(fuzz::serialise(core::to_json(*back)) == stored);
  return 0;
}
