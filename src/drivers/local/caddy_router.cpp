#include "drivers/local/caddy_router.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/periodic_thread.hpp"
#include "util/proc.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

constexpr const char* k_server = "idp";
constexpr const char* k_tls_server = "idp_tls";
constexpr int64_t k_ready_timeout_ms = 15000;
constexpr int64_t k_stop_grace_ms = 5000;
constexpr int64_t k_backoff_min_ms = 100;
constexpr int64_t k_backoff_max_ms = 5000;

std::string route_id(const std::string& env) { return "idp-env-" + env; }
constexpr const char* k_sessions_id = "idp-preview-sessions";
constexpr const char* k_access_logger = "idp_access";
constexpr const char* k_session_var = "idp_session";

core::PreviewTarget lookup_target(const RouteTarget& r) {
  core::PreviewTarget t;
  t.port = r.port;
  t.static_root = r.static_root;
  t.spa = r.spa;
  t.protect = r.protect;
  return t;
}

// Caddy listens with SO_REUSEPORT, so a second Caddy on a taken port starts "fine" and the
// kernel splits connections between the two. Binding without SO_REUSEPORT first tells.
Expected<void> check_port_free(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res) != 0 || !res) {
    return make_error(ErrorCode::invalid_config, "router: cannot resolve listen host " + util::quote(host));
  }
  int err = 0;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
      err = errno;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  if (err == EADDRINUSE) {
    return make_error(ErrorCode::transient, "router: address " + host + ":" + service + " is already in use");
  }
  return {};
}

} // namespace

nlohmann::json RouteTarget::to_json() const {
  nlohmann::json j =
      port > 0 ? nlohmann::json{{"port", port}} : nlohmann::json{{"static_root", static_root}, {"spa", spa}};
  if (protect) {
    j["protect"] = true;
  }
  if (wake) {
    j = {{"wake", true}, {"protect", protect}};
  }
  return j;
}

std::optional<RouteTarget> RouteTarget::from_json(const nlohmann::json& j) {
  if (!j.is_object()) {
    return std::nullopt;
  }
  RouteTarget r;
  r.port = j.value("port", 0);
  r.static_root = j.value("static_root", "");
  r.spa = j.value("spa", false);
  r.protect = j.value("protect", false);
  r.wake = j.value("wake", false);
  if (r.port <= 0 && r.static_root.empty() && !r.wake) {
    return std::nullopt;
  }
  return r;
}

CaddyRouter::CaddyRouter(RouterConfig cfg) : m_cfg(std::move(cfg)) {
  m_config_path = util::path_join(m_cfg.dir, "caddy.json");
  std::string sock = util::path_join(m_cfg.dir, "admin.sock");
  if (sock.size() < sizeof(sockaddr_un::sun_path) - 1) {
    m_socket = sock;
  }
}

CaddyRouter::~CaddyRouter() { stop(); }

std::string CaddyRouter::host_for(const std::string& env) const { return env + "." + m_cfg.domain; }

std::string CaddyRouter::access_log_path() const { return util::path_join(m_cfg.dir, "access.log"); }

pid_t CaddyRouter::pid() const {
  std::lock_guard<std::mutex> g(m_mutex);
  return m_pid;
}

int CaddyRouter::restarts() const {
  std::lock_guard<std::mutex> g(m_mutex);
  return m_restarts;
}

std::optional<RouteTarget> CaddyRouter::route(const std::string& env) const {
  std::lock_guard<std::mutex> g(m_mutex);
  auto it = m_routes.find(env);
  return it == m_routes.end() ? std::nullopt : std::optional<RouteTarget>(it->second);
}

namespace {

// Request headers that only the daemon's answer may set (lookup mode, and X-Idp-User).
const std::vector<std::string> k_answer_headers = {"X-Idp-User", "X-Idp-Upstream", "X-Idp-Root", "X-Idp-Kind"};

// The JSON form of the Caddyfile `root * R; try_files {path} /index.html; file_server`.
// With `spa`, page paths that are no file serve /index.html; `spa_if` (lookup mode) is one
// more condition of that fallback, since the route serves every kind of site.
nlohmann::json static_site_handle(const std::string& root, bool spa, const nlohmann::json& spa_if) {
  nlohmann::json routes = nlohmann::json::array();
  routes.push_back({{"handle", {{{"handler", "vars"}, {"root", root}}}}});
  if (spa) {
    // Only page routes fall back to index.html: a missing file with an extension
    // (/assets/app.js) is a 404, not HTML that a browser would run as a script.
    nlohmann::json has_extension = nlohmann::json::object();
    has_extension["path_regexp"] = {{"pattern", "\\.[A-Za-z0-9]+$"}};
    nlohmann::json matcher = spa_if.is_object() ? spa_if : nlohmann::json::object();
    matcher["file"] = {{"try_files", {"{http.request.uri.path}", "/index.html"}}};
    matcher["not"] = nlohmann::json::array({has_extension});
    routes.push_back({{"match", nlohmann::json::array({matcher})},
                      {"handle", {{{"handler", "rewrite"}, {"uri", "{http.matchers.file.relative}"}}}}});
  }
  routes.push_back({{"handle", {{{"handler", "file_server"}}}}});
  return nlohmann::json::array({{{"handler", "subroute"}, {"routes", routes}}});
}

// What proved the request may pass is ours, not the app's: an app could replay a session
// cookie or token it saw (docs/security.md). Every route strips them, open ones too: the
// preview cookie is set for the whole domain, so a browser sends it to every preview, and
// an open app must not collect it either.
nlohmann::json strip_credentials_json() {
  nlohmann::json strip_cookies = {
      {"handler", "headers"},
      {"request", {{"replace", {{"Cookie", {{{"search_regexp", "(^|;\\s*)idp_[a-z_]+=[^;]*"}, {"replace", ""}}}}}}}}};
  nlohmann::json idp_bearer = nlohmann::json::object();
  idp_bearer["header_regexp"] = {{"Authorization", {{"pattern", "(?i)^\\s*bearer\\s+idp_"}}}};
  nlohmann::json strip_token = {
      {"handler", "subroute"},
      {"routes",
       {{{"match", nlohmann::json::array({idp_bearer})},
         {"handle", {{{"handler", "headers"}, {"request", {{"delete", {"Authorization"}}}}}}}}}}};
  return nlohmann::json::array({strip_cookies, strip_token});
}

} // namespace

nlohmann::json CaddyRouter::wake_handle(const std::string& env) const {
  if (m_cfg.auth_upstream.empty() || m_cfg.wake_key.empty()) {
    return nlohmann::json::array({{{"handler", "static_response"},
                                   {"status_code", 503},
                                   {"body", "this preview is asleep and the router cannot wake it\n"}}});
  }
  // Like forward_auth: the request's headers go to the daemon as a GET (the body waits);
  // a 2xx answer names the woken app's upstream, anything else is the client's answer.
  nlohmann::json copy_upstream = {
      {"handle",
       {{{"handler", "headers"},
         {"request", {{"set", {{"X-Idp-Upstream", {"{http.reverse_proxy.header.X-Idp-Upstream}"}}}}}}}}}};
  nlohmann::json ask = {
      {"handler", "reverse_proxy"},
      {"upstreams", {{{"dial", m_cfg.auth_upstream}}}},
      {"rewrite", {{"method", "GET"}, {"uri", "/internal/wake"}}},
      {"headers", {{"request", {{"set", {{"X-Idp-Wake-Env", {env}}, {"X-Idp-Wake-Key", {m_cfg.wake_key}}}}}}}},
      {"handle_response", {{{"match", {{"status_code", {2}}}}, {"routes", {copy_upstream}}}}},
      // A daemon that restarts refuses connections for a moment: hold the request.
      {"load_balancing", {{"try_duration", "10s"}, {"try_interval", "50ms"}}}};
  nlohmann::json proxy = {{"handler", "reverse_proxy"},
                          {"upstreams", {{{"dial", "{http.request.header.X-Idp-Upstream}"}}}},
                          {"headers", {{"request", {{"delete", {"X-Idp-Upstream"}}}}}}};
  // Only the daemon names the upstream: the client's header of that name goes first.
  return nlohmann::json::array({{{"handler", "headers"}, {"request", {{"delete", {"X-Idp-Upstream"}}}}}, ask, proxy});
}

nlohmann::json CaddyRouter::route_json(const RouteTarget& r) const {
  nlohmann::json handle;
  if (r.wake) {
    handle = wake_handle(r.env);
  } else if (r.port > 0) {
    handle = nlohmann::json::array(
        {{{"handler", "reverse_proxy"}, {"upstreams", {{{"dial", "127.0.0.1:" + std::to_string(r.port)}}}}}});
  } else {
    handle = static_site_handle(r.static_root, r.spa, nullptr);
  }
  if (r.protect || !m_cfg.auth_upstream.empty()) {
    handle = guarded_handle(handle, r.protect);
  }
  return {{"@id", route_id(r.env)}, {"match", {{{"host", {host_for(r.env)}}}}}, {"handle", handle}, {"terminal", true}};
}

nlohmann::json CaddyRouter::callback_route_json() const {
  // The sign-in's last step (api/preview_auth.hpp): the daemon sets the preview cookie on
  // this host's domain. Under /internal/, which the https API route never forwards. On
  // open routes too: the code in its address must never reach an app.
  return {{"match", {{{"path", {"/.idp/auth/callback"}}}}},
          {"handle",
           {{{"handler", "rewrite"}, {"uri", "/internal/preview-auth/callback?{http.request.uri.query}"}},
            {{"handler", "reverse_proxy"}, {"upstreams", {{{"dial", m_cfg.auth_upstream}}}}}}},
          {"terminal", true}};
}

nlohmann::json CaddyRouter::ask_json(bool lookup) const {
  // The JSON `caddy adapt` makes of the Caddyfile's `forward_auth <daemon> { uri
  // /internal/preview-auth; copy_headers X-Idp-User }` (Caddy 2.6): the request's headers go
  // to the daemon as a GET; a 2xx answer lets the request on (with the daemon's X-Idp-User),
  // anything else is the client's answer (302 to sign in, 401, 303 after a share link, 404
  // for a host without an environment in lookup mode). Lookup mode copies where the request
  // goes as well, and X-Idp-User only when the daemon sent one (a protected preview).
  auto copy = [](const std::vector<std::string>& names) {
    nlohmann::json set = nlohmann::json::object();
    for (const auto& n : names) {
      set[n] = {"{http.reverse_proxy.header." + n + "}"};
    }
    return nlohmann::json{{"handle", {{{"handler", "headers"}, {"request", {{"set", set}}}}}}};
  };
  nlohmann::json on_allowed = nlohmann::json::array();
  if (lookup) {
    nlohmann::json with_user = {{"status_code", {2}}, {"headers", {{"X-Idp-User", nlohmann::json::array()}}}};
    on_allowed.push_back({{"match", with_user}, {"routes", {copy(k_answer_headers)}}});
    on_allowed.push_back({{"match", {{"status_code", {2}}}},
                          {"routes", {copy({k_answer_headers.begin() + 1, k_answer_headers.end()})}}});
  } else {
    on_allowed.push_back({{"match", {{"status_code", {2}}}}, {"routes", {copy({"X-Idp-User"})}}});
  }
  nlohmann::json ask = {{"handler", "reverse_proxy"},
                        {"upstreams", {{{"dial", m_cfg.auth_upstream}}}},
                        {"rewrite", {{"method", "GET"}, {"uri", "/internal/preview-auth"}}},
                        {"headers",
                         {{"request",
                           {{"set",
                             {{"X-Forwarded-Method", {"{http.request.method}"}},
                              {"X-Forwarded-Uri", {"{http.request.uri}"}},
                              {"X-Idp-Lookup", {lookup ? "1" : "0"}}}}}}}},
                        {"handle_response", on_allowed}};
  if (lookup) {
    // A daemon that restarts refuses connections for a moment: hold the request and ask
    // again rather than fail it.
    ask["load_balancing"] = {{"try_duration", "10s"}, {"try_interval", "50ms"}};
  }
  return ask;
}

nlohmann::json CaddyRouter::guarded_handle(const nlohmann::json& app, bool protect) const {
  // Fail closed: without the daemon's address no request may reach a protected app.
  if (protect && m_cfg.auth_upstream.empty()) {
    return nlohmann::json::array({{{"handler", "static_response"},
                                   {"status_code", 503},
                                   {"body", "this preview needs a sign-in the router cannot check\n"}}});
  }
  nlohmann::json chain = nlohmann::json::array();
  if (protect) {
    // A live session's cookie (marked by the route of sessions_route_json_locked) passes
    // without the round trip to the daemon; anything else is asked. Both set X-Idp-User,
    // replacing the client's. Vars are the server's own: no client can set them.
    nlohmann::json signed_in = {
        {"match", {{{"vars", {{k_session_var, {"1"}}}}}}},
        {"handle", {{{"handler", "headers"}, {"request", {{"set", {{"X-Idp-User", {"{http.vars.idp_user}"}}}}}}}}},
        {"group", "idp-auth"}};
    // One group: only the first route that matches applies. (Not `terminal`, which would
    // end the whole chain, the app's proxy included.)
    nlohmann::json ask = {{"handle", {ask_json(false)}}, {"group", "idp-auth"}};
    chain.push_back({{"handler", "subroute"}, {"routes", nlohmann::json::array({signed_in, ask})}});
  } else {
    // Only the daemon names the user: an open app must not be told one by its client.
    chain.push_back({{"handler", "headers"}, {"request", {{"delete", k_answer_headers}}}});
  }
  for (const auto& h : strip_credentials_json()) {
    chain.push_back(h);
  }
  for (const auto& h : app) {
    chain.push_back(h);
  }
  return nlohmann::json::array(
      {{{"handler", "subroute"}, {"routes", nlohmann::json::array({callback_route_json(), {{"handle", chain}}})}}});
}

nlohmann::json CaddyRouter::sessions_route_json_locked() const {
  // Not terminal: it only marks the request, for the route of its host to read. The cookie
  // values are 64 hex characters and identities are plain (api/preview_auth.cpp), so
  // neither can carry a Caddy placeholder or wildcard.
  nlohmann::json marks = nlohmann::json::array();
  for (const auto& s : m_sessions) {
    nlohmann::json cookie = {{"header", {{"Cookie", {"*idp_preview=" + s.cookie + "*"}}}}};
    marks.push_back({{"match", nlohmann::json::array({cookie})},
                     {"handle", {{{"handler", "vars"}, {k_session_var, "1"}, {"idp_user", s.identity}}}},
                     {"group", "idp-session"}});
  }
  return {{"@id", k_sessions_id}, {"handle", {{{"handler", "subroute"}, {"routes", marks}}}}};
}

util::Millis CaddyRouter::now_ms() const {
  static const util::SystemClock system;
  return (m_cfg.clock ? m_cfg.clock : &system)->now_ms();
}

Expected<void> CaddyRouter::set_sessions(std::vector<core::PreviewSession> sessions) {
  if (m_cfg.lookup) {
    return {};
  }
  std::lock_guard<std::mutex> w(m_write_mutex);
  {
    std::lock_guard<std::mutex> g(m_mutex);
    util::Millis now = now_ms();
    std::erase_if(sessions, [now](const core::PreviewSession& s) { return s.expires_at <= now; });
    if (sessions == m_sessions) {
      return {};
    }
    m_sessions = std::move(sessions);
    if (!m_ready) {
      return {}; // caddy.json of the next (re)start carries them
    }
  }
  if (auto r = sync_all(); !r) {
    std::lock_guard<std::mutex> g(m_mutex);
    m_dirty = true;
    return Unexpected(r.error().with_context("router"));
  }
  return {};
}

nlohmann::json CaddyRouter::lookup_route_json() const {
  auto kind_is = [](std::initializer_list<const char*> kinds) {
    nlohmann::json values = nlohmann::json::array();
    for (const char* k : kinds) {
      values.push_back(k);
    }
    return nlohmann::json{{"header", {{"X-Idp-Kind", values}}}};
  };
  nlohmann::json proxy = {
      {"match", nlohmann::json::array({kind_is({"proxy"})})},
      {"handle",
       {{{"handler", "reverse_proxy"},
         {"upstreams", {{{"dial", "{http.request.header.X-Idp-Upstream}"}}}},
         {"headers", {{"request", {{"delete", {"X-Idp-Upstream", "X-Idp-Root", "X-Idp-Kind"}}}}}}}}},
      {"terminal", true}};
  nlohmann::json files = {{"match", nlohmann::json::array({kind_is({"static", "spa"})})},
                          {"handle", static_site_handle("{http.request.header.X-Idp-Root}", true, kind_is({"spa"}))},
                          {"terminal", true}};
  nlohmann::json none = {{"handle",
                          {{{"handler", "static_response"},
                            {"status_code", 502},
                            {"body", "the daemon named no target for this preview\n"}}}}};
  nlohmann::json chain = nlohmann::json::array({{{"handler", "headers"}, {"request", {{"delete", k_answer_headers}}}}});
  chain.push_back(ask_json(true));
  for (const auto& h : strip_credentials_json()) {
    chain.push_back(h);
  }
  chain.push_back({{"handler", "subroute"}, {"routes", nlohmann::json::array({proxy, files, none})}});
  nlohmann::json handle = nlohmann::json::array(
      {{{"handler", "subroute"}, {"routes", nlohmann::json::array({callback_route_json(), {{"handle", chain}}})}}});
  return {
      {"@id", "idp-previews"}, {"match", {{{"host", {"*." + m_cfg.domain}}}}}, {"handle", handle}, {"terminal", true}};
}

std::string CaddyRouter::root_ca_path() const {
  return m_cfg.tls.mode == "internal" ? util::path_join(m_cfg.dir, "data/pki/authorities/local/root.crt") : "";
}

std::string CaddyRouter::routes_path() const {
  return std::string("/config/apps/http/servers/") + (m_cfg.tls.on() ? k_tls_server : k_server) + "/routes";
}

nlohmann::json CaddyRouter::api_route_json() const {
  nlohmann::json proxy = {{"handler", "reverse_proxy"},
                          {"upstreams", {{{"dial", m_cfg.tls.api_upstream}}}},
                          // The daemon marks the dashboard's session cookie Secure on this.
                          {"headers", {{"request", {{"set", {{"X-Forwarded-Proto", {"https"}}}}}}}}};
  // The ask endpoint is for Caddy itself (over loopback), not for the internet.
  nlohmann::json internal = {{"match", {{{"path", {"/internal/*"}}}}},
                             {"handle", {{{"handler", "static_response"}, {"status_code", 404}}}},
                             {"terminal", true}};
  return {{"@id", "idp-api"},
          {"match", {{{"host", {m_cfg.tls.api_host}}}}},
          {"handle", {{{"handler", "subroute"}, {"routes", {internal, {{"handle", {proxy}}}}}}}},
          {"terminal", true}};
}

nlohmann::json CaddyRouter::tls_app_json() const {
  nlohmann::json issuer = {{"module", "internal"}};
  if (m_cfg.tls.mode == "acme") {
    issuer = {{"module", "acme"},
              {"email", m_cfg.tls.acme_email},
              // The CA reaches these ports as 80 and 443 (or this is them); Caddy's own servers
              // there answer the challenges.
              {"challenges",
               {{"http", {{"alternate_port", m_cfg.port}}}, {"tls-alpn", {{"alternate_port", m_cfg.tls.port}}}}}};
    if (!m_cfg.tls.acme_ca.empty()) {
      issuer["ca"] = m_cfg.tls.acme_ca;
    }
    if (!m_cfg.tls.acme_ca_root.empty()) {
      issuer["trusted_roots_pem_files"] = {m_cfg.tls.acme_ca_root};
    }
  }
  // On demand, with the ask endpoint: a certificate only for a host that is an environment
  // (or the API), never for whatever name a client sends in its TLS handshake. Caddy 2.6
  // takes the endpoint as on_demand.ask (2.8 also as permission: {module: http}).
  return {
      {"automation",
       {{"policies", {{{"issuers", {issuer}}, {"on_demand", true}}}}, {"on_demand", {{"ask", m_cfg.tls.ask_url}}}}}};
}

nlohmann::json CaddyRouter::routes_json_locked() const {
  nlohmann::json routes = nlohmann::json::array();
  if (m_cfg.tls.on()) {
    routes.push_back(api_route_json()); // first: an environment named like the API host never shadows it
  }
  if (m_cfg.lookup) {
    routes.push_back(lookup_route_json());
  } else {
    if (!m_sessions.empty() && !m_cfg.auth_upstream.empty()) {
      routes.push_back(sessions_route_json_locked());
    }
    for (const auto& [env, r] : m_routes) {
      routes.push_back(route_json(r));
    }
  }
  routes.push_back({{"@id", "idp-catch-all"},
                    {"handle",
                     {{{"handler", "static_response"},
                       {"status_code", 404},
                       {"body", "no preview environment at this address\n"}}}}});
  return routes;
}

nlohmann::json CaddyRouter::config_json_locked() const {
  nlohmann::json admin = {{"config", {{"persist", false}}}};
  if (!m_socket.empty()) {
    admin["listen"] = "unix/" + m_socket;
    admin["origins"] = {"localhost"};
  } else {
    admin["listen"] = "127.0.0.1:" + std::to_string(m_admin_port);
  }
  std::string listen =
      m_cfg.listen_host.find(':') != std::string::npos ? "[" + m_cfg.listen_host + "]" : m_cfg.listen_host;
  nlohmann::json servers = nlohmann::json::object();
  nlohmann::json apps = nlohmann::json::object();
  if (m_cfg.tls.on()) {
    std::string port = m_cfg.tls.port == 443 ? "" : ":" + std::to_string(m_cfg.tls.port);
    nlohmann::json redirect = {
        {"handle",
         {{{"handler", "static_response"},
           {"status_code", 308},
           {"headers", {{"Location", {"https://{http.request.host}" + port + "{http.request.uri}"}}}}}}}};
    servers[k_server] = {{"listen", {listen + ":" + std::to_string(m_cfg.port)}},
                         {"automatic_https", {{"disable", true}}},
                         {"routes", nlohmann::json::array({redirect})}};
    servers[k_tls_server] = {{"listen", {listen + ":" + std::to_string(m_cfg.tls.port)}},
                             {"automatic_https", {{"disable", true}}},
                             {"tls_connection_policies", nlohmann::json::array({nlohmann::json::object()})},
                             // No HTTP/3: it would need the UDP port as well.
                             {"protocols", nlohmann::json::array({"h1", "h2"})},
                             {"routes", routes_json_locked()}};
    apps["tls"] = tls_app_json();
    // The local CA stays ours: Caddy must not try to add it to the system's trust store.
    apps["pki"] = {{"certificate_authorities", {{"local", {{"install_trust", false}}}}}};
  } else {
    servers[k_server] = {{"listen", {listen + ":" + std::to_string(m_cfg.port)}},
                         {"automatic_https", {{"disable", true}}},
                         {"routes", routes_json_locked()}};
  }
  // Every request is one JSON line in access.log (idle sleep reads the last of each host);
  // Caddy's own log stays in caddy.log without them.
  for (auto& [name, server] : servers.items()) {
    (void)name;
    server["logs"] = {{"default_logger_name", k_access_logger}};
  }
  apps["http"] = {{"servers", servers}};
  const std::string access_logger = std::string("http.log.access.") + k_access_logger;
  return {
      {"admin", admin},
      {"logging",
       {{"logs",
         {{"default",
           {{"writer", {{"output", "file"}, {"filename", util::path_join(m_cfg.dir, "caddy.log")}}},
            {"level", "INFO"},
            {"exclude", {access_logger}}}},
          {k_access_logger,
           {{"writer", {{"output", "file"}, {"filename", access_log_path()}, {"roll_size_mb", 8}, {"roll_keep", 1}}},
            {"encoder", {{"format", "json"}}},
            {"level", "INFO"},
            {"include", {access_logger}}}}}}}},
      {"storage", {{"module", "file_system"}, {"root", util::path_join(m_cfg.dir, "data")}}},
      {"apps", apps},
  };
}

Expected<nlohmann::json> CaddyRouter::admin(const std::string& method, const std::string& path, const std::string& body,
                                            long* status) const {
  struct InFlight {
    std::atomic<int>& n;
    explicit InFlight(std::atomic<int>& c) : n(c) { ++n; }
    ~InFlight() { --n; }
  } in_flight(m_admin_in_flight);
  util::HttpRequest req;
  req.method = method;
  if (!m_socket.empty()) {
    req.unix_socket = m_socket;
    req.url = "http://localhost" + path;
  } else {
    req.url = "http://127.0.0.1:" + std::to_string(m_admin_port) + path;
  }
  req.timeout_ms = 5000;
  req.connect_timeout_ms = 1000;
  if (!body.empty()) {
    req.body = body;
    req.headers.push_back({"Content-Type", "application/json"});
  }
  IDP_TRY_ASSIGN(auto resp, util::http_request(req));
  *status = resp.status;
  if (resp.body.empty()) {
    return nlohmann::json();
  }
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(resp.body) : j;
}

Expected<void> CaddyRouter::upsert(const RouteTarget& r) {
  std::string body = util::json_dump(route_json(r));
  long status = 0;
  // PATCH replaces the route when it exists; PUT at index 0 (1 behind the API's route)
  // inserts it before the catch-all. Never PUT blindly: Caddy would keep two routes with
  // the same @id.
  IDP_TRY(admin("PATCH", "/id/" + route_id(r.env), body, &status));
  if (status == 404) {
    IDP_TRY(admin("PUT", routes_path() + (m_cfg.tls.on() ? "/1" : "/0"), body, &status));
  }
  if (status < 200 || status >= 300) {
    return make_error(ErrorCode::transient,
                      "router rejected the route of " + util::quote(r.env) + " (HTTP " + std::to_string(status) + ")");
  }
  return {};
}

Expected<void> CaddyRouter::sync_all() {
  std::string body;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    body = util::json_dump(routes_json_locked());
  }
  long status = 0;
  IDP_TRY(admin("PATCH", routes_path(), body, &status));
  if (status < 200 || status >= 300) {
    return make_error(ErrorCode::transient, "router rejected the routes (HTTP " + std::to_string(status) + ")");
  }
  std::lock_guard<std::mutex> g(m_mutex);
  m_dirty = false;
  return {};
}

Expected<void> CaddyRouter::set_route(const RouteTarget& r) {
  // m_write_mutex keeps route changes in order against Caddy; m_mutex is held only to read
  // and write memory, so route(), pid() and observe() never wait on an admin call.
  std::lock_guard<std::mutex> w(m_write_mutex);
  std::optional<RouteTarget> prev;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    auto it = m_routes.find(r.env);
    prev = it == m_routes.end() ? std::nullopt : std::optional<RouteTarget>(it->second);
    m_routes[r.env] = r;
    if (!m_ready && !m_cfg.lookup) {
      return {}; // caddy.json of the next (re)start carries it
    }
  }
  // Lookup mode: the daemon answers the next request from the table; Caddy is not asked.
  auto res = m_cfg.lookup ? (m_cfg.lookup->set(r.env, lookup_target(r)), Expected<void>{}) : upsert(r);
  if (!res) {
    std::lock_guard<std::mutex> g(m_mutex);
    if (prev) {
      m_routes[r.env] = *prev;
    } else {
      m_routes.erase(r.env);
    }
    m_dirty = true;
    return Unexpected(res.error().with_context("router"));
  }
  IDP_FAILPOINT_RETURN("router.route_set"); // Caddy has the route; the caller has not recorded it
  return {};
}

Expected<void> CaddyRouter::remove_route(const std::string& env) {
  std::lock_guard<std::mutex> w(m_write_mutex);
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_routes.erase(env);
    if (m_cfg.lookup) {
      m_cfg.lookup->erase(env);
      return {};
    }
    if (!m_ready) {
      return {};
    }
  }
  long status = 0;
  auto res = admin("DELETE", "/id/" + route_id(env), "", &status);
  if (!res || (status != 404 && (status < 200 || status >= 300))) {
    std::lock_guard<std::mutex> g(m_mutex);
    m_dirty = true;
    return make_error(ErrorCode::transient, "router: cannot remove the route of " + util::quote(env) + ": " +
                                                (res ? "HTTP " + std::to_string(status) : res.error().message));
  }
  IDP_FAILPOINT_RETURN("router.route_removed");
  return {};
}

std::string CaddyRouter::log_tail() const {
  auto text = util::read_file(util::path_join(m_cfg.dir, "caddy.log"));
  return text ? util::trim(util::tail_lines(*text, 5)) : "";
}

Expected<void> enable_request_migration(const std::string& proc_file) {
  auto now = util::read_file(proc_file);
  if (!now) {
    return make_error(ErrorCode::permanent,
                      "this kernel has no net.ipv4.tcp_migrate_req (Linux 5.14+): " + now.error().message);
  }
  if (util::trim(*now) == "1") {
    return {};
  }
  // /proc files take a plain write, not the rename of write_file_atomic.
  int fd = ::open(proc_file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "1\n", 2) != 2) {
    int err = errno;
    if (fd >= 0) {
      ::close(fd);
    }
    return make_error(ErrorCode::permanent, "cannot set net.ipv4.tcp_migrate_req = 1: " + std::string(strerror(err)));
  }
  ::close(fd);
  return {};
}

std::string CaddyRouter::reload_warning() const {
  std::lock_guard<std::mutex> g(m_mutex);
  return m_reload_warning;
}

Expected<void> CaddyRouter::start(const std::vector<RouteTarget>& routes) {
  stop();
  if (m_cfg.tls.on() && (m_cfg.tls.port <= 0 || m_cfg.tls.ask_url.empty() || m_cfg.tls.api_upstream.empty() ||
                         m_cfg.tls.api_host.empty())) {
    // Without its ask endpoint, on-demand TLS would get a certificate for any name a client sends.
    return make_error(ErrorCode::invalid_config,
                      "router: https needs a port, an ask endpoint, the API's host name and address");
  }
  if (m_cfg.lookup && m_cfg.auth_upstream.empty()) {
    return make_error(ErrorCode::invalid_config, "router: lookup mode needs the daemon's address");
  }
  IDP_TRY(util::ensure_dir(m_cfg.dir, 0700));
  if (auto migrated = enable_request_migration(); !migrated) {
    std::lock_guard<std::mutex> g(m_mutex);
    m_reload_warning = "router: a route change may reset connections in flight to any environment (" +
                       migrated.error().message + "; run `sysctl -w net.ipv4.tcp_migrate_req=1` as root)";
    spdlog::warn("local driver: {}", m_reload_warning);
  }
  // A Caddy of this home that outlived its daemon (a crash, or a stop with keep_running)
  // keeps serving every environment meanwhile: adopt it rather than cut the traffic.
  pid_t adopted = adopt_running();
  if (adopted == 0 && m_socket.empty()) {
    IDP_TRY_ASSIGN(m_admin_port, util::find_free_app_port());
  }
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_routes.clear();
    for (const auto& r : routes) {
      m_routes[r.env] = r;
      if (m_cfg.lookup) {
        m_cfg.lookup->set(r.env, lookup_target(r));
      }
    }
    m_stopping = false;
    m_ready = false;
    m_dirty = false;
    m_first_done = false;
    m_first_error.reset();
    m_restarts = 0;
    m_detach = false;
    m_pid = adopted;
    m_adopted = adopted > 0;
  }
  m_thread = std::thread([this] { util::thread_main("router_supervise", [this] { supervise(); }); });
  std::unique_lock<std::mutex> lk(m_mutex);
  m_cv.wait(lk, [&] { return m_first_done; });
  if (m_first_error) {
    Error e = *m_first_error;
    lk.unlock();
    stop();
    return Unexpected(e);
  }
  return {};
}

namespace {

// Calls `ask` until it succeeds, the adopted Caddy `pid` is gone, `give_up()` is true or
// k_ready_timeout_ms pass. A busy Caddy may answer late, and replacing it would cut every
// environment's traffic, so it is asked again first.
template <typename Ask, typename GiveUp>
auto ask_busy_caddy(pid_t pid, Ask ask, GiveUp give_up) {
  auto r = ask();
  for (int64_t deadline = util::steady_ms() + k_ready_timeout_ms;
       !r && !give_up() && util::steady_ms() < deadline && util::process_alive(pid);) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    r = ask();
  }
  return r;
}

} // namespace

bool CaddyRouter::stopping_now() const {
  std::lock_guard<std::mutex> g(m_mutex);
  return m_stopping;
}

void CaddyRouter::detach() {
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_detach = true;
  }
  stop();
}

void CaddyRouter::stop() {
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_stopping = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

pid_t CaddyRouter::adopt_running() {
  auto running = util::find_processes_with_env("IDP_ROUTER_HOME_ID", m_cfg.home_id);
  if (running.size() == 1) {
    // Its admin address is in the config it runs (a TCP port changes with every launch).
    auto text = util::read_file(m_config_path);
    nlohmann::json cfg = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    std::string admin_listen = cfg.is_object() && cfg["admin"].is_object() ? cfg["admin"].value("listen", "") : "";
    bool reachable = false;
    if (m_socket.empty() && util::starts_with(admin_listen, "127.0.0.1:")) {
      m_admin_port = util::parse_int<int>(admin_listen.substr(10)).value_or(0);
      reachable = m_admin_port > 0;
    } else if (!m_socket.empty() && admin_listen == "unix/" + m_socket) {
      reachable = true;
    }
    long status = 0;
    std::string listen =
        m_cfg.listen_host.find(':') != std::string::npos ? "[" + m_cfg.listen_host + "]" : m_cfg.listen_host;
    auto ask = [&] {
      return reachable ? admin("GET", "/config/apps/http/servers/" + std::string(k_server) + "/listen", "", &status)
                       : Expected<nlohmann::json>(Unexpected(Error{ErrorCode::not_found, "no admin address"}));
    };
    // Only a wrong answer, or none for k_ready_timeout_ms, replaces it.
    auto r = ask_busy_caddy(running.front(), ask, [&] { return !reachable; });
    if (r && status == 200 && *r == nlohmann::json::array({listen + ":" + std::to_string(m_cfg.port)})) {
      spdlog::info("router: adopting the running caddy (pid {}) of this home", running.front());
      return running.front();
    }
    spdlog::warn("router: a caddy of this home (pid {}) runs but does not answer as expected; replacing it",
                 running.front());
  }
  if (!running.empty()) {
    util::terminate_processes(running, k_stop_grace_ms);
  }
  return 0;
}

bool CaddyRouter::wait_exit(pid_t pid, bool adopted, int64_t timeout_ms, int* code) {
  if (!adopted) {
    auto st = util::wait_child(pid, timeout_ms);
    if (st && code != nullptr) {
      *code = *st;
    }
    return st.has_value();
  }
  // Not our child: no waitpid. Gone, or another process under its pid.
  std::unique_lock<std::mutex> lk(m_mutex);
  m_cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return m_stopping; });
  lk.unlock();
  if (util::process_alive(pid) && util::process_env_value(pid, "IDP_ROUTER_HOME_ID").value_or("") == m_cfg.home_id) {
    return false;
  }
  if (code != nullptr) {
    *code = -1;
  }
  return true;
}

void CaddyRouter::kill_child(pid_t pid) {
  bool adopted;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    adopted = m_adopted && pid == m_pid;
  }
  if (adopted) {
    util::terminate_processes({pid}, k_stop_grace_ms);
    return;
  }
  ::kill(pid, SIGTERM);
  if (!util::wait_child(pid, k_stop_grace_ms)) {
    ::kill(pid, SIGKILL);
    util::wait_child(pid, k_stop_grace_ms);
  }
}

Expected<void> CaddyRouter::adopt_sync() {
  std::lock_guard<std::mutex> w(m_write_mutex);
  std::string config;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    config = util::json_dump(config_json_locked(), 2) + "\n";
  }
  IDP_TRY(util::write_file_atomic(m_config_path, config, 0600));
  // /load replaces the whole config gracefully: the listener stays, the routes become ours.
  long status = 0;
  auto r = admin("POST", "/load", config, &status);
  if (!r || status != 200) {
    return make_error(ErrorCode::transient,
                      "the adopted caddy refused its config" +
                          (r ? " (HTTP " + std::to_string(status) + ")" : ": " + r.error().message));
  }
  std::lock_guard<std::mutex> g(m_mutex);
  m_ready = true;
  return {};
}

Expected<void> CaddyRouter::launch() {
  bool adopted;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    adopted = m_adopted && m_pid > 0;
  }
  if (adopted) {
    auto r = ask_busy_caddy(
        pid(), [this] { return adopt_sync(); }, [this] { return stopping_now(); });
    if (!r) {
      spdlog::warn("router: {}; starting a new caddy", r.error().message);
      pid_t pid = this->pid();
      kill_child(pid);
      std::lock_guard<std::mutex> g(m_mutex);
      m_pid = 0;
      m_adopted = false;
      if (m_socket.empty()) {
        IDP_TRY_ASSIGN(m_admin_port, util::find_free_app_port());
      }
    } else {
      return {};
    }
  }
  IDP_TRY(check_port_free(m_cfg.listen_host, m_cfg.port));
  if (m_cfg.tls.on()) {
    IDP_TRY(check_port_free(m_cfg.listen_host, m_cfg.tls.port));
  }
  // Held until Caddy has every route: a route change meanwhile either lands in the file
  // or waits for the sync below.
  std::unique_lock<std::mutex> w(m_write_mutex);
  std::string config;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    config = util::json_dump(config_json_locked(), 2) + "\n";
  }
  IDP_TRY(util::write_file_atomic(m_config_path, config, 0600));
  w.unlock();
  if (!m_socket.empty()) {
    ::unlink(m_socket.c_str());
  }
  util::Command cmd;
  cmd.argv = {m_cfg.caddy_binary, "run", "--config", m_config_path};
  cmd.clear_env = true;
  const char* path = std::getenv("PATH");
  cmd.env = {{"PATH", path ? path : "/usr/local/bin:/usr/bin:/bin"},
             {"HOME", m_cfg.dir},
             {"XDG_DATA_HOME", util::path_join(m_cfg.dir, "data")},
             {"XDG_CONFIG_HOME", util::path_join(m_cfg.dir, "config")},
             {"IDP_ROUTER_HOME_ID", m_cfg.home_id}};
  cmd.cwd = m_cfg.dir;
  std::string out_path = util::path_join(m_cfg.dir, "caddy.log");
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  util::SpawnOptions so;
  so.detach = false;
  so.new_session = true; // no parent-death signal: Caddy outlives a crashed daemon (adopted at its start)
  so.stdout_fd = out_fd;
  so.stderr_fd = out_fd;
  auto pid = util::spawn(cmd, so);
  if (out_fd >= 0) {
    ::close(out_fd);
  }
  if (!pid) {
    return Unexpected(pid.error().with_context("cannot start caddy"));
  }
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_pid = *pid;
  }
  int64_t deadline = util::steady_ms() + k_ready_timeout_ms;
  while (true) {
    if (auto st = util::wait_child(*pid, 0)) {
      std::lock_guard<std::mutex> g(m_mutex);
      m_pid = 0;
      std::string tail = log_tail();
      return make_error(ErrorCode::transient,
                        "caddy exited with code " + std::to_string(*st) + (tail.empty() ? "" : ": " + tail));
    }
    long status = 0;
    auto r = admin("GET", "/config/apps/http/servers/idp/listen", "", &status);
    if (r && status == 200) {
      break;
    }
    bool stopping;
    {
      std::lock_guard<std::mutex> g(m_mutex);
      stopping = m_stopping;
    }
    if (stopping || util::steady_ms() >= deadline) {
      kill_child(*pid);
      std::lock_guard<std::mutex> g(m_mutex);
      m_pid = 0;
      return make_error(ErrorCode::transient, stopping
                                                  ? "router is stopping"
                                                  : "caddy did not answer on its admin API within " +
                                                        std::to_string(k_ready_timeout_ms / 1000) + "s: " + log_tail());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard<std::mutex> w2(m_write_mutex);
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_ready = true;
  }
  // Routes changed while Caddy was starting are in m_routes but maybe not in the file
  // it loaded: make Caddy match m_routes.
  if (auto r = sync_all(); !r) {
    std::lock_guard<std::mutex> g(m_mutex);
    m_dirty = true;
  }
  return {};
}

void CaddyRouter::supervise() {
  int64_t backoff = k_backoff_min_ms;
  bool first;
  pid_t left = 0;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    first = !m_first_done; // false when a previous run of this loop threw (thread_main restarts it)
    left = m_pid;
  }
  if (left > 0 && !first) {
    // That run threw while its Caddy ran: start afresh rather than lose track of it.
    kill_child(left);
    std::lock_guard<std::mutex> g(m_mutex);
    m_pid = 0;
    m_adopted = false;
    m_ready = false;
  }
  while (true) {
    {
      std::lock_guard<std::mutex> g(m_mutex);
      if (m_stopping) {
        break;
      }
    }
    auto launched = launch();
    if (first) {
      first = false;
      std::lock_guard<std::mutex> g(m_mutex);
      m_first_done = true;
      if (!launched) {
        m_first_error = launched.error();
      }
      m_cv.notify_all();
      if (!launched) {
        return;
      }
    }
    if (launched) {
      int64_t started = util::steady_ms();
      pid_t pid = this->pid();
      bool adopted = false;
      {
        std::lock_guard<std::mutex> g(m_mutex);
        adopted = m_adopted;
      }
      while (true) {
        util::thread_failpoint("router_supervise"); // a throw here restarts the loop (thread_main)
        int code = 0;
        if (wait_exit(pid, adopted, 100, &code)) {
          spdlog::warn("router: caddy (pid {}) exited{}; restarting", pid,
                       adopted ? "" : " with code " + std::to_string(code));
          break;
        }
        bool stopping = false;
        bool detach = false;
        bool dirty = false;
        {
          std::lock_guard<std::mutex> g(m_mutex);
          util::Millis now = now_ms();
          if (std::erase_if(m_sessions, [now](const core::PreviewSession& s) { return s.expires_at <= now; }) > 0) {
            m_dirty = true; // an expired session leaves Caddy's config now
          }
          stopping = m_stopping;
          detach = m_detach;
          dirty = m_dirty;
          if (stopping) {
            m_ready = false;
          }
        }
        if (stopping) {
          if (!detach) {
            kill_child(pid);
          }
          std::lock_guard<std::mutex> g(m_mutex);
          m_pid = 0;
          m_adopted = false;
          return;
        }
        if (dirty) {
          std::lock_guard<std::mutex> w(m_write_mutex);
          // A failure leaves m_dirty set: the next round tries again.
          (void)sync_all();
        }
      }
      std::lock_guard<std::mutex> g(m_mutex);
      m_ready = false;
      m_pid = 0;
      m_adopted = false;
      ++m_restarts;
      if (util::steady_ms() - started > 10000) {
        backoff = k_backoff_min_ms;
      }
    } else {
      spdlog::warn("router: {}", launched.error().message);
    }
    std::unique_lock<std::mutex> lk(m_mutex);
    if (m_cv.wait_for(lk, std::chrono::milliseconds(backoff), [&] { return m_stopping; })) {
      break;
    }
    backoff = std::min(backoff * 2, k_backoff_max_ms);
  }
}

} // namespace idp::drivers::local
