#pragma once
// Preview URLs behind sign-in (issue 15; docs/security.md "Previews"). The local runtime's
// Caddy asks the daemon before it proxies a protected preview (forward_auth):
//   GET /internal/preview-auth            2xx: let the request on (X-Idp-User: who), else
//                                         the client's answer: 302 to sign in (a browser),
//                                         401 (any other client), 303 + cookie (share link),
//                                         403 (a share link that is expired or revoked)
//   GET /internal/preview-auth/callback   Caddy's rewrite of https://<env>.<domain>/.idp/auth/callback
//   GET /preview/signin?return=URL        on the dashboard: a signed-in user is sent to the
//                                         callback of URL's host with a single-use code
// Credentials, in this order: Authorization: Bearer <token> (any role), the preview session
// cookie idp_preview (scoped to the previews' domain: one sign-in covers them all), a share
// link (?idp_share=<grant>, then the host-only cookie idp_share). The API never accepts the
// preview cookies: an app sees the requests of its own host and could replay them.
// Decisions are cached for k_decision_ttl_ms per credential (a revocation in this process
// clears the cache at once). Live preview sessions are also published to the router
// (PreviewAuthSettings::sessions), which then lets a signed-in browser's requests through
// without asking: a session is published at sign-in, until the earlier of its own expiry
// and its token's, and withdrawn (before the revoking request returns) when its token is
// revoked.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/auth.hpp"
#include "core/preview_routes.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace idp::api {

struct PreviewAuthSettings {
  std::string domain;    // the previews' domain ("preview.localhost"); "" = preview auth off
  int router_port = 0;   // http:// port of preview URLs
  int https_port = 0;    // https:// port of preview URLs; 0 = https off
  std::string grant_key; // HMAC key that signs share links (server-side only, never sent)
  // Where the dashboard's sign-in is, as a browser reaches it ("https://idp.example.com",
  // "http://127.0.0.1:8787"); "" = derived from the API's bound address once known.
  std::string dashboard_url;
  // Where each preview goes, for a router that asks on every request (X-Idp-Lookup: 1;
  // core/preview_routes.hpp). Unset: such requests get 404.
  std::shared_ptr<const core::PreviewRouteTable> routes;
  // Where the live preview sessions are published for a router that checks the session
  // cookie itself (core/preview_routes.hpp). Unset: every check comes here.
  std::shared_ptr<core::PreviewSessionTable> sessions;
  bool enabled() const { return !domain.empty(); }
};

// What the daemon answers Caddy: a 2xx lets the request through, anything else is sent to
// the client as is.
struct PreviewAnswer {
  int status = 401;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// One forwarded request, as Caddy describes it.
struct PreviewRequest {
  std::string host;   // the preview's Host header (port allowed)
  std::string uri;    // X-Forwarded-Uri: path and query
  std::string method; // X-Forwarded-Method
  std::string accept;
  std::string cookie;
  std::string authorization;
  bool https = false;  // X-Forwarded-Proto https
  bool lookup = false; // X-Idp-Lookup: 1 — the router asks where the request goes as well
};

// A share link just made: the record (stored by mint_grant) and the token that opens it.
struct NewGrant {
  store::PreviewGrant grant;
  std::string token; // "<id>.<expires_ms>.<hex HMAC>": the value of ?idp_share=
};

class PreviewAuth {
public:
  static constexpr util::Millis k_decision_ttl_ms = 5'000;
  static constexpr util::Millis k_session_ttl_ms = 12LL * 3600 * 1000;
  static constexpr util::Millis k_code_ttl_ms = 60'000;
  static constexpr size_t k_max_cached = 10'000;
  static constexpr size_t k_max_codes = 1'000;

  PreviewAuth(PreviewAuthSettings settings, store::StateStore& store, Authenticator& auth, util::Clock& clock);

  // The forward_auth decision. Thread-safe. With r.lookup, for every request of every
  // preview host: 404 when the host is no environment; the sign-in check when the
  // environment is protected; a 2xx names the target in X-Idp-Kind (proxy, static, spa)
  // and X-Idp-Upstream ("127.0.0.1:<port>") or X-Idp-Root (the site's directory).
  PreviewAnswer check(const PreviewRequest& r);
  // The dashboard's hand-off: for a signed-in principal (with its token's hash, "" for a
  // GitHub sign-in), the callback URL on `return_url`'s host carrying a single-use code.
  // invalid_argument when return_url is not a preview URL of this server (no open redirect).
  Expected<std::string> handoff(const Principal& p, const std::string& token_hash, const std::string& return_url);
  // The callback on a preview host: turns the code (once, only on the host it was made
  // for) into the idp_preview cookie and a redirect to `return_path` on that host.
  PreviewAnswer callback(const std::string& host, bool https, const std::string& code, const std::string& return_path);

  // Makes and stores a share link for `env`, valid for ttl_ms.
  Expected<NewGrant> mint_grant(const std::string& env, util::Millis ttl_ms, const std::string& created_by);
  // Forgets every cached decision (after a token or share link is revoked), drops the
  // sessions whose token is no longer valid, and publishes the sessions left.
  void forget_decisions();

  // "<env>" for "<env>.<domain>[:port]", "" when the host is not one preview.
  std::string env_of_host(const std::string& host) const;
  // "http(s)://<env>.<domain>[:port]" of an environment's previews.
  std::string preview_origin(const std::string& env) const;
  void set_dashboard_url(const std::string& url);
  const PreviewAuthSettings& settings() const { return m_settings; }

private:
  struct Session {
    std::string cookie; // the cookie's value, kept to publish it (PreviewAuthSettings::sessions)
    Principal principal;
    std::string token_hash; // "" for GitHub sign-ins; else checked on each (uncached) use
    util::Millis expires_at = 0;
  };
  struct Code {
    Session session;
    std::string host; // the preview host it may be redeemed on (lowercase, no port)
    util::Millis expires_at = 0;
  };
  struct Cached {
    std::string identity;
    util::Millis until = 0;
  };

  // The sign-in check of a protected preview.
  PreviewAnswer check_access(const PreviewRequest& r, const std::string& env);
  std::optional<std::string> cached(const std::string& key);
  // Caches a decision for k_decision_ttl_ms, or until `ends_at` when sooner (0 = no end).
  void remember(const std::string& key, const std::string& identity, util::Millis ends_at);
  // The identity a bearer header, a session id or a share token stands for, nullopt if none.
  std::optional<std::string> from_bearer(const std::string& header);
  std::optional<std::string> from_session(const std::string& id);
  // A share token valid for `env` now: its grant's id; otherwise why not.
  Expected<std::string> from_grant(const std::string& token, const std::string& env);
  std::string grant_signature(const std::string& id, const std::string& env, util::Millis expires_at) const;
  std::string dashboard_url() const;
  // Publishes the live sessions (PreviewAuthSettings::sessions); no-op when unset.
  void publish_sessions();

  PreviewAuthSettings m_settings;
  store::StateStore& m_store;
  Authenticator& m_auth;
  util::Clock& m_clock;
  mutable std::mutex m_mutex;
  std::map<std::string, Session> m_sessions; // sha256(session id) → session; guarded by m_mutex
  std::map<std::string, Code> m_codes;       // sha256(code) → pending hand-off; guarded by m_mutex
  std::map<std::string, Cached> m_cache;     // credential kind + sha256 → decision; guarded by m_mutex
};

// How the routes reach the API server's request state.
struct PreviewRouteHooks {
  std::function<const Principal&()> principal;
  std::function<std::string()> token_hash; // the request's token hash ("" for GitHub sessions)
  std::function<std::string(const httplib::Request&)> actor;
  std::function<void(const store::PreviewGrant&, const std::string& what)> authorize; // owner or admin
};

// Adds /internal/preview-auth(/callback), /preview/signin and the share link API:
//   POST   /api/v1/environments/{name}/shares {"ttl": "24h"}  → 201 {id, url, expires_at, ...}
//   GET    /api/v1/environments/{name}/shares                  → {"shares": [...]}
//   DELETE /api/v1/shares/{id}                                 → the revoked grant
void register_preview_routes(httplib::Server& server, PreviewAuth& auth, store::StateStore& store, util::Clock& clock,
                             PreviewRouteHooks hooks);

// Paths the API server lets through without its own checks (loopback only): Caddy asks.
bool is_preview_auth_path(const std::string& path);

} // namespace idp::api
