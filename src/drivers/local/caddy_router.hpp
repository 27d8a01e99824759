#pragma once
// The router of the local runtime: one supervised Caddy per IDP_HOME.
//
// Caddy runs as `caddy run --config <dir>/caddy.json` with HOME and the XDG directories
// inside <dir> (it writes nothing outside the home) and its own log in <dir>/caddy.log.
// One HTTP server listens on <listen_host>:<port> with automatic HTTPS disabled (with
// https on, it redirects to the TLS server that holds the routes: see RouterTls); every
// environment is one route "@id": "idp-env-<name>" matching the host <name>.<domain>,
// placed before a final catch-all that answers 404 "no preview environment at this
// address". The admin API listens on the unix socket <dir>/admin.sock (its allowed origin
// set to "localhost", which Caddy 2.6 needs for requests over a unix socket), or on a free
// loopback TCP port when the socket path is too long for sun_path.
//
// A dedicated supervisor thread starts Caddy, reaps it, and restarts it with backoff when
// it dies; every (re)start writes the current routes into caddy.json, so a restarted Caddy
// serves them at once. Caddy outlives a daemon that crashes (or stops with keep_running):
// the next start() adopts the Caddy of this home that still serves on our port (pushing
// the current routes through /load, which keeps the listener) instead of starting anew,
// so requests to the environments never see the daemon's restart.
//
// Every admin API change makes Caddy reload its whole config, and Caddy (2.6+) gives the
// new config a listening socket of its own beside the old one (SO_REUSEPORT): when the old
// socket closes, Linux resets the connections still waiting in its accept queue, so a
// route change for one environment would make requests to every environment fail. start()
// therefore enables net.ipv4.tcp_migrate_req (Linux 5.14+, per network namespace), which
// moves those connections to the new socket instead; when it cannot, reload_warning() says
// so and idp status shows it.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/preview_routes.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

// What one environment's host name leads to.
struct RouteTarget {
  std::string env;
  int port = 0;            // > 0: reverse proxy to 127.0.0.1:<port>
  std::string static_root; // port == 0: files from this directory
  bool spa = false;        // with static_root: unknown paths serve /index.html
  // Behind sign-in: Caddy asks the daemon (RouterConfig::auth_upstream) before proxying.
  // Every route (protected or not) strips the idp cookies and an idp bearer token.
  bool protect = false;
  // Asleep (idle sleep, issue 12): no app runs; Caddy asks the daemon's wake handler
  // (GET /internal/wake with X-Idp-Wake-Env and RouterConfig::wake_key), which starts the
  // app and answers with its upstream (X-Idp-Upstream) once it is healthy; the request then
  // goes there. Any other answer (the "waking up" page) is the client's. port and
  // static_root are unused.
  bool wake = false;

  bool operator==(const RouteTarget& o) const {
    return env == o.env && port == o.port && static_root == o.static_root && spa == o.spa && protect == o.protect &&
           wake == o.wake;
  }
  nlohmann::json to_json() const;
  static std::optional<RouteTarget> from_json(const nlohmann::json& j);
};

// HTTPS through the router (server config `https`). With mode "internal" or "acme" a
// second server "idp_tls" listens on <listen_host>:<port> with TLS: it holds the
// environments' routes, after a first route "idp-api" that proxies host `api_host` to the
// daemon's API (with X-Forwarded-Proto: https; /internal/* is not forwarded). The HTTP
// server then redirects every request to https. Certificates are on demand: Caddy asks
// `ask_url` (GET ?domain=<host>, 2xx = yes) before it issues one for a host, from its local
// CA (internal; root at <dir>/data/pki/authorities/local/root.crt, never installed into
// the system's trust store) or from an ACME CA with `acme_email` (acme: Let's Encrypt, or
// `acme_ca`, trusted through `acme_ca_root`). Challenges are answered on the router's own
// HTTP and TLS ports (the CA reaches them on 80/443, directly or through a port forward).
struct RouterTls {
  std::string mode = "off"; // off | internal | acme
  int port = 0;             // must be set (> 0) when on
  std::string acme_email;
  std::string acme_ca;      // "" = Let's Encrypt (Caddy's default)
  std::string acme_ca_root; // PEM file trusted for acme_ca's TLS; "" = the system's roots
  std::string ask_url;
  std::string api_host;     // "idp.<domain>"
  std::string api_upstream; // "127.0.0.1:<api port>"
  bool on() const { return mode == "internal" || mode == "acme"; }
};

struct RouterConfig {
  std::string dir; // <home>/router
  std::string caddy_binary = "caddy";
  std::string listen_host = "127.0.0.1";
  int port = 0; // must be set (> 0)
  std::string domain = "preview.localhost";
  std::string home_id; // IDP_ROUTER_HOME_ID marker of our Caddy processes
  RouterTls tls;
  // The daemon's API ("127.0.0.1:<port>") for protected routes: GET /internal/preview-auth
  // (forward_auth) and /.idp/auth/* of every preview host. "" = no route may be protected.
  std::string auth_upstream;
  // Set: lookup mode. Caddy holds one route for every host of the domain and asks the
  // daemon at auth_upstream (/internal/preview-auth with X-Idp-Lookup: 1) where each request
  // goes; the daemon answers from this table, which set_route/remove_route change without
  // any admin call. Needs auth_upstream. The daemon's answer names the upstream
  // (X-Idp-Upstream) or the directory (X-Idp-Root) and X-Idp-Kind (proxy, static, spa);
  // headers of those names from the client are dropped first.
  std::shared_ptr<core::PreviewRouteTable> lookup;
  // Sent with every wake request (RouteTarget::wake): the daemon answers no other caller.
  std::string wake_key;
  // Wall clock of session expiries (set_sessions); nullptr = the system's.
  const util::Clock* clock = nullptr;
};

class CaddyRouter {
public:
  explicit CaddyRouter(RouterConfig cfg);
  // Stops Caddy and the supervisor.
  ~CaddyRouter();
  CaddyRouter(const CaddyRouter&) = delete;
  CaddyRouter& operator=(const CaddyRouter&) = delete;

  // Adopts the Caddy of this home left by a previous daemon when it answers on its admin
  // API for our listen address (else kills it), or starts one; makes it serve `routes`
  // and waits until it does. Error (transient) with the tail of caddy.log when Caddy does
  // not come up. Not thread-safe with stop().
  Expected<void> start(const std::vector<RouteTarget>& routes);
  // Stops Caddy (TERM, then KILL) and the supervisor. Idempotent.
  void stop();
  // Stops the supervisor and leaves Caddy serving (the daemon stops with keep_running;
  // the next start() adopts it).
  void detach();

  // Adds or replaces the route of r.env (idempotent). While Caddy is restarting the route
  // is recorded and served once it is back. Error (transient) when Caddy is up but the
  // change could not be made; the previous route then stays in place. Thread-safe.
  Expected<void> set_route(const RouteTarget& r);
  // Removes the route of `env`; ok when there is none. Thread-safe.
  Expected<void> remove_route(const std::string& env);
  std::optional<RouteTarget> route(const std::string& env) const;
  // The preview sessions Caddy lets through by itself (core::PreviewSessionTable): a
  // request to a protected route whose idp_preview cookie is one of them goes to the app
  // with X-Idp-User set to its identity, without asking the daemon; anything else is asked
  // as before. One route "idp-preview-sessions" before the environments' holds them (a
  // cookie match per session); a session leaves it at its expires_at (the supervisor checks
  // every 100 ms). Replaces the set; an error (transient) leaves Caddy's old set and a
  // resync pending. No-op in lookup mode (every request is asked anyway). Thread-safe.
  Expected<void> set_sessions(std::vector<core::PreviewSession> sessions);

  // "<env>.<domain>".
  std::string host_for(const std::string& env) const;
  // Caddy's access log (JSON lines, one per request, rolled at 8 MB with one old file
  // kept): the local driver reads each environment's last request from it (idle sleep).
  std::string access_log_path() const;
  int port() const { return m_cfg.port; }
  // Caddy's local CA root certificate (https mode internal), "" otherwise. Exists once
  // start() succeeded.
  std::string root_ca_path() const;
  // Lookup mode (RouterConfig::lookup): route changes make no admin call.
  bool lookup_mode() const { return m_cfg.lookup != nullptr; }
  // Pid of the running Caddy, 0 when none. Thread-safe.
  pid_t pid() const;
  // How many times Caddy was restarted after dying. Thread-safe.
  int restarts() const;
  // Why route changes may reset connections in flight, "" when they do not (see above).
  std::string reload_warning() const;
  // Admin API calls under way (tests: a query must not wait for one).
  int admin_calls_in_flight_for_test() const { return m_admin_in_flight.load(); }

private:
  void supervise();
  Expected<void> launch();
  // The running Caddy of this home when it can be adopted (its admin address read from
  // caddy.json); otherwise kills any of them and returns 0.
  pid_t adopt_running();
  // An adopted Caddy gets the whole current config (POST /load).
  Expected<void> adopt_sync();
  bool stopping_now() const;
  // Waits up to timeout_ms for `pid` to end (reaped when our child, watched when adopted).
  bool wait_exit(pid_t pid, bool adopted, int64_t timeout_ms, int* code);
  void kill_child(pid_t pid);
  nlohmann::json route_json(const RouteTarget& r) const;
  // The handlers of an asleep environment's route: ask the daemon to wake it, then proxy.
  nlohmann::json wake_handle(const std::string& env) const;
  // Lookup mode: the one route of every preview host.
  nlohmann::json lookup_route_json() const;
  // The daemon's check (forward_auth); with `lookup` it also says where the request goes.
  nlohmann::json ask_json(bool lookup) const;
  // The sign-in's callback on every preview host, to the daemon.
  nlohmann::json callback_route_json() const;
  // The handlers of a route when the daemon is known: the sign-in callback to the daemon;
  // with `protect` the daemon's check; the idp credentials stripped; then `app`.
  nlohmann::json guarded_handle(const nlohmann::json& app, bool protect) const;
  // The route that marks a request with a live session's cookie (vars idp_session, idp_user).
  nlohmann::json sessions_route_json_locked() const;
  util::Millis now_ms() const;
  nlohmann::json api_route_json() const;
  nlohmann::json tls_app_json() const;
  // The admin API path of the routes that hold the environments (the TLS server's when on).
  std::string routes_path() const;
  nlohmann::json routes_json_locked() const;
  nlohmann::json config_json_locked() const;
  Expected<nlohmann::json> admin(const std::string& method, const std::string& path, const std::string& body,
                                 long* status) const;
  // Both need m_write_mutex held (not m_mutex): they talk to Caddy's admin API.
  Expected<void> upsert(const RouteTarget& r);
  Expected<void> sync_all();
  std::string log_tail() const;

  RouterConfig m_cfg;
  std::string m_config_path;
  std::string m_socket; // admin unix socket, "" when TCP
  int m_admin_port = 0; // admin TCP port when no socket
  std::thread m_thread;

  // Lock order: m_write_mutex, then m_mutex. m_write_mutex serialises changes sent to
  // Caddy (held across admin calls); m_mutex guards the members below and is never held
  // across I/O.
  std::mutex m_write_mutex;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::map<std::string, RouteTarget> m_routes;
  std::vector<core::PreviewSession> m_sessions; // live ones: the supervisor drops the expired
  bool m_stopping = false;
  bool m_ready = false; // Caddy runs and has every route of m_routes (or m_dirty)
  bool m_dirty = false; // an admin call failed: resync everything when possible
  bool m_first_done = false;
  std::optional<Error> m_first_error;
  pid_t m_pid = 0;
  bool m_adopted = false; // m_pid is a Caddy a previous daemon started (not our child)
  bool m_detach = false;  // stop() leaves Caddy running
  int m_restarts = 0;
  std::string m_reload_warning;
  mutable std::atomic<int> m_admin_in_flight{0};
};

// Makes Linux migrate the pending connections of a closed SO_REUSEPORT listener to the
// others of its group (net.ipv4.tcp_migrate_req = 1), so that Caddy's config reloads reset
// none. `proc_file` is for tests. Error when the kernel lacks it or we may not set it.
Expected<void> enable_request_migration(const std::string& proc_file = "/proc/sys/net/ipv4/tcp_migrate_req");

} // namespace idp::drivers::local
