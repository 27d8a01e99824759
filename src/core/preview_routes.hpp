#pragma once
// Where each preview host leads, for a router that asks the daemon on every request
// instead of holding a route per environment (the local driver's `router_mode: lookup`,
// docs/configuration.md). The local driver writes it as routes change; the API's
// /internal/preview-auth reads it when Caddy asks with X-Idp-Lookup: 1. A route switch is
// then one map update: no router config change, whatever the number of environments.

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

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

// The preview sign-ins a router may check by itself, without asking the daemon (issue 15's
// benchmark: the round trip to the daemon was the cost of a protected preview). The API
// (api/preview_auth.hpp) publishes every live preview session here whenever the set
// changes (a sign-in, a revocation); the local driver's Caddy matches the cookie in its
// own config and asks the daemon only for anything else (a token, a share link, no
// credential). The router drops a session at its expiry on its own.
struct PreviewSession {
  std::string cookie;     // the idp_preview cookie's value (a secret: never logged)
  std::string identity;   // who it is (X-Idp-User)
  int64_t expires_at = 0; // wall-clock ms
  bool operator==(const PreviewSession&) const = default;
};

class PreviewSessionTable {
public:
  using Listener = std::function<void(const std::vector<PreviewSession>&)>;
  // Replaces the whole set, then calls the listener with it (in the caller's thread, in
  // order: two replaces never reach the listener crossed).
  void replace(std::vector<PreviewSession> sessions);
  std::vector<PreviewSession> all() const;
  // Sets (or clears, with nullptr) the one listener; it is called at once with the set.
  void listen(Listener listener);

private:
  std::mutex m_publish; // held while the listener runs; taken before m_mutex
  mutable std::mutex m_mutex;
  std::vector<PreviewSession> m_sessions;
  Listener m_listener;
};

} // namespace idp::core
