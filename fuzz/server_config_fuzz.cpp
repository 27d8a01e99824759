// The server config file (daemon::apply_server_config_file): any bytes give errors or a
// config, never a throw or a crash; nothing is applied when there is an error.

#include "daemon/server_config.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  daemon::ServerConfig cfg;
  cfg.home = "/nonexistent/idp-fuzz-home";
  const daemon::ServerConfig before = cfg;
  auto errors = daemon::apply_server_config_file(cfg, text, "server.yml");
  for (const auto& e : errors) {
    IDP_FUZZ_CHECK(!e.message.empty());
    IDP_FUZZ_CHECK(!e.to_string().empty());
  }
  if (!errors.empty()) {
    // Validated as a whole before any of it is applied.
    IDP_FUZZ_CHECK(cfg.listen == before.listen);
    IDP_FUZZ_CHECK(cfg.domain == before.domain);
    IDP_FUZZ_CHECK(cfg.repositories.size() == before.repositories.size());
    IDP_FUZZ_CHECK(cfg.driver_options == before.driver_options);
    return 0;
  }
  // The daemon prints it (--show-config) and hands drivers their options as JSON.
  (void)fuzz::serialise(cfg.driver_options);
  for (const auto& r : cfg.repositories) {
    (void)r.tracks("main");
    (void)r.tracks("feature/x");
  }
  return 0;
}
