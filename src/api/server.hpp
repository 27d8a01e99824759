#pragma once
// The daemon's HTTP API: REST JSON under /api/v1, /healthz, and hooks registered by
// sources (e.g. /hooks/github). Handlers are thin: parse the request, call the controller
// or the store, render JSON. Thread-safe; runs on its own thread pool.
// Access: every request but /healthz and raw hooks (which authenticate themselves) needs
// "Authorization: Bearer <token>"; see check_request and docs/security.md.
// Long-lived streams run on threads of their own, at most max_streams of them, never on one
// of the `threads` request threads (api/connection_pool.hpp).

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/auth.hpp"
#include "api/oauth.hpp"
#include "api/preview_auth.hpp"
#include "core/wake_board.hpp"
#include "engine/controller.hpp"
#include "engine/cost.hpp"
#include "engine/driver_set.hpp"
#include "engine/secret_store.hpp"
#include "engine/templates.hpp"
#include "sources/fork_gate.hpp"
#include "store/state_store.hpp"
#include "util/prometheus.hpp"
#include "util/time.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace idp::api {

struct ApiContext {
  store::StateStore* store = nullptr;
  engine::Controller* controller = nullptr;
  const engine::DriverSet* drivers = nullptr;
  const engine::TemplateCatalog* templates = nullptr;
  util::Clock* clock = nullptr;
  std::string version;
  size_t max_body_bytes = 1024 * 1024;
  size_t threads = 32;            // request threads (connections); streams never take one of them
  size_t max_streams = 64;        // SSE and logs?follow streams served at once, each on its own thread; 503 beyond
  util::Millis log_poll_ms = 200; // follow streams poll the driver this often
  util::Millis reaper_interval_ms = 30'000; // reported in /api/v1/capabilities
  util::Millis ttl_min_ms = 10 * 60'000;
  util::Millis ttl_max_ms = 30LL * 86'400'000;
  // Security (issue 9). Every route but /healthz and raw hooks needs a bearer token.
  bool metrics_public = false;           // /metrics without a token
  std::vector<std::string> server_names; // Host names accepted besides loopback ones
  bool hooks_only = false;               // a webhook listener: raw hooks and /healthz, nothing else
  // https (server config): Caddy's on-demand TLS asks GET /internal/tls-ask?domain=<host>
  // over loopback before each certificate: 200 when this says yes, 403 otherwise. No token;
  // 404 from elsewhere or through a proxy. Unset: no such route.
  std::function<bool(const std::string& host)> tls_ask;
  // The server's secret store: /api/v1/secrets (admin), and the values redacted from logs
  // and exec output. Unset: no secret routes, nothing redacted.
  engine::SecretStore* secrets = nullptr;
  // Sign in with GitHub on the dashboard (api/dashboard_routes.hpp). Unset client_id: off.
  GitHubOAuthSettings github_oauth;
  // Pull requests from forks (issue 15): GET /api/v1/forks, POST /api/v1/forks/approve.
  // Unset: those routes answer 404.
  sources::ForkGate* forks = nullptr;
  // Prices and teams of /api/v1/cost (issue 12; api/cost_routes.hpp).
  engine::CostRates cost_rates;
  std::map<std::string, std::string> team_of; // member identity → team

  // Idle sleep (issue 12; api/wake_routes.hpp): the key the router sends to the wake
  // handler ("" = no wake handler), and how long a request waits there for a wake.
  std::string wake_key;
  util::Millis wake_timeout_ms = 30'000;
  // Where the runtime posts a woken app's upstream (core/wake_board.hpp); unset: the
  // handler waits for the store to say it is awake.
  std::shared_ptr<core::WakeBoard> wake_board;
  // Protected previews (issue 15; api/preview_auth.hpp). Unset domain: no preview routes.
  PreviewAuthSettings previews;
  // The engine's deploy telemetry for /metrics (Reconciler::metrics_text). Unset: none.
  std::function<std::string()> engine_metrics;
  // How long each request took, from its routing to its last byte written:
  // idp_http_request_duration_seconds{server,method,route,code} on /metrics. `route` is the
  // matched route with its parameters as {} (a path nobody routes is "(none)"), so a
  // caller cannot grow the series; streams (events, logs?follow, exec) are not counted.
  // Shared by the API and the webhook listener; unset: the server makes its own.
  std::shared_ptr<util::HistogramFamily> request_latency;
};

// The family ApiContext::request_latency holds.
std::shared_ptr<util::HistogramFamily> make_request_latency();

// A raw route for hooks: gets the exact body bytes and headers.
struct RawRequest {
  std::string method;
  std::string path;
  std::string body;
  std::function<std::string(const std::string& header)> header; // "" when absent
  std::string remote_addr;
};
struct RawResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};
using RawHandler = std::function<RawResponse(const RawRequest&)>;

class ApiServer {
public:
  explicit ApiServer(ApiContext ctx);
  ~ApiServer();

  // Adds a POST route with a raw handler (before start()).
  void add_post_hook(const std::string& path, RawHandler handler);
  // Binds host:port (port 0 = any free port); returns the bound port.
  Expected<int> bind(const std::string& host, int port);
  // Serves on a background thread until stop().
  void start();
  void stop();

private:
  void routes();
  // The one check before any handler: Host, Origin, Content-Type, token, role. Throws
  // ApiError (421, 403, 415, 401, 403); on success the principal is the request's.
  void check_request(const httplib::Request& req);
  ApiContext m_ctx;
  std::unique_ptr<Authenticator> m_auth;
  std::set<std::string> m_raw_paths; // set before start(), read-only after
  // Dashboard sessions (cookie idp_session): sha256(session id) → the token's hash, a CSRF
  // token for actions, and an expiry. The token is checked again on every request, so a
  // revoked token ends its sessions. A GitHub sign-in has no token: its principal is kept.
  struct Session {
    std::string token_hash;
    std::string csrf;
    util::Millis expires_at = 0;
    std::optional<Principal> principal; // GitHub sessions
  };
  // Stores `s` under a new id; returns the Set-Cookie value that carries it.
  std::string open_session(const Session& s, const std::string& same_site, bool https);
  std::unique_ptr<GitHubOAuth> m_oauth;    // null when GitHub sign-in is off
  std::unique_ptr<PreviewAuth> m_previews; // null when ctx.previews is off
  std::mutex m_sessions_mutex;
  std::map<std::string, Session> m_sessions; // guarded by m_sessions_mutex
  std::string m_listen_host;                 // the bound address when it is a specific one
  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  std::atomic<bool> m_stopping{false};
  std::atomic<int> m_waiting{0}; // GET /api/v1/environments/{name} long polls waiting now
  util::Millis m_started_at = 0;
  int m_listen_fd = -1; // the listening socket (owned by httplib), to raise its backlog
};

} // namespace idp::api
