#pragma once
// Where each preview host leads, for a router that asks the daemon on every request
// instead of holding a route per environment (the local driver's `router_mode: lookup`,
// docs/configuration.md). The local driver writes it as routes change; the API's
// /internal/preview-auth reads it when Caddy asks with X-Idp-Lookup: 1. A route switch is
// then one map update: no router config change, whatever the number of environments.

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace idp::core {

struct PreviewTarget {
  int port = 0;            // > 0: reverse proxy to 127.0.0.1:<port>
  std::string static_root; // port == 0: files from this directory
  bool spa = false;        // with static_root: unknown page paths serve /index.html
  bool protect = false;    // behind sign-in
};

class PreviewRouteTable {
public:
  void set(const std::string& env, PreviewTarget target);
  void erase(const std::string& env);
  std::optional<PreviewTarget> get(const std::string& env) const;
  size_t size() const;

private:
  mutable std::shared_mutex m_mutex;
  std::unordered_map<std::string, PreviewTarget> m_targets;
};

} // namespace idp::core
