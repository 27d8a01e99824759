#include "api/server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <httplib.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include "api/api_error.hpp"
#include "api/client_watch.hpp"
#include "api/connection_pool.hpp"
#include "api/cost_routes.hpp"
#include "api/dashboard_routes.hpp"
#include "api/exec_routes.hpp"
#include "api/secret_routes.hpp"
#include "api/wake_routes.hpp"
#include "core/api_types.hpp"
#include "core/ttl.hpp"
#include "util/git.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/periodic_thread.hpp"
#include "util/redact.hpp"
#include "util/strings.hpp"

namespace idp::api {

using nlohmann::json;

namespace {

// The principal of the request this thread is serving. httplib runs the pre-routing
// handler, the route handler and its content provider on one worker thread, one request
// at a time, and its Request is const by then: a thread-local is how the check made
// before routing reaches the handler. Reset at the start of every request.
thread_local std::optional<Principal> t_principal;

// The CSRF token of the dashboard session this request came with ("" for bearer tokens).
thread_local std::string t_session_csrf;
// The hash of the token behind this request (bearer or a token's dashboard session; "" for
// a GitHub sign-in): a preview session made from it ends when the token is revoked.
thread_local std::string t_token_hash;
// When the request on this thread reached the router (steady clock, ns); 0 = none.
thread_local int64_t t_request_started_ns = 0;

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The route a request matched, its parameters written {}: "/api/v1/environments/{}/logs".
// httplib matched the route's pattern against req.path; a request refused before routing
// or matching no route is "(none)", so no caller can add a series of its own.
std::string route_label(const httplib::Request& req) {
  if (req.matches.empty()) {
    return "(none)";
  }
  std::string out;
  size_t at = 0;
  for (size_t i = 1; i < req.matches.size(); ++i) {
    if (!req.matches[i].matched) {
      continue;
    }
    auto pos = static_cast<size_t>(req.matches.position(i));
    if (pos < at) {
      continue; // a group inside one already written
    }
    out += req.path.substr(at, pos - at) + "{}";
    at = pos + static_cast<size_t>(req.matches.length(i));
  }
  return out + req.path.substr(std::min(at, req.path.size()));
}

bool is_stream(const httplib::Response& res) {
  std::string type = res.get_header_value("Content-Type");
  return type == "text/event-stream" || type == "application/x-ndjson";
}

constexpr const char* k_session_cookie = "idp_session";
constexpr util::Millis k_session_ttl_ms = 12LL * 3600 * 1000;

std::string cookie_value(const httplib::Request& req, const std::string& name) {
  for (const auto& part : util::split(req.get_header_value("Cookie"), ';')) {
    std::string p = util::trim(part);
    if (util::starts_with(p, name + "=")) {
      return p.substr(name.size() + 1);
    }
  }
  return "";
}

const Principal& principal() {
  if (!t_principal) {
    throw ApiError(401, "unauthorized", "this endpoint needs an API token: send \"Authorization: Bearer <token>\"");
  }
  return *t_principal;
}

// The audit actor: the token's identity. X-Idp-Actor (sent by the CLI) may only add a
// note in parentheses; it never replaces the identity.
std::string actor_of(const httplib::Request& req) {
  const Principal& p = principal();
  std::string actor = p.identity;
  // A GitHub sign-in has no token record to look its role up in later: the record says it.
  std::string how = p.token_id == "github" ? "GitHub " + std::string(role_name(p.role)) : "";
  std::string a = req.get_header_value("X-Idp-Actor");
  if (a.empty() || a == actor) {
    return how.empty() ? actor : actor + " (" + how + ")";
  }
  std::string note;
  for (char c : a.substr(0, 64)) {
    note += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  return actor + " (" + (how.empty() ? "" : how + ", ") + note + ")";
}

// Developers act only on environments they own; admins on every one.
void require_owner(const core::Environment& env, const std::string& what) {
  const Principal& p = principal();
  if (p.role == Role::admin || (p.role == Role::developer && env.owner == p.identity)) {
    return;
  }
  throw ApiError(403, "forbidden",
                 "token " + util::quote(p.identity) + " (" + std::string(role_name(p.role)) + ") may not " + what +
                     " environment " + util::quote(env.name) + ": it belongs to " + util::quote(env.owner) +
                     "; only its owner or an admin may");
}

constexpr const char* k_tls_ask_path = "/internal/tls-ask";

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") {
    return true;
  }
  if (util::ends_with(host, ".localhost")) {
    return false; // environments' names: not the API
  }
  return util::starts_with(host, "127.") && host.find_first_not_of("0123456789.") == std::string::npos;
}

// The request's peer is this machine (an IPv4-mapped IPv6 address counts as its IPv4).
bool from_loopback(const httplib::Request& req) {
  std::string peer = util::to_lower(req.remote_addr);
  return is_loopback_host(util::starts_with(peer, "::ffff:") ? peer.substr(7) : peer);
}

// "host:port" → "host" ("[::1]:80" → "[::1]"), lowercased.
std::string host_without_port(const std::string& host_header) {
  std::string h = util::to_lower(host_header);
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    return close == std::string::npos ? h : h.substr(0, close + 1);
  }
  auto colon = h.rfind(':');
  return colon == std::string::npos ? h : h.substr(0, colon);
}

std::string media_type(const std::string& content_type) {
  return util::to_lower(util::trim(content_type.substr(0, content_type.find(';'))));
}

Role required_role(const httplib::Request& req) {
  if (req.path == "/api/v1/tokens" || util::starts_with(req.path, "/api/v1/tokens/") || req.path == "/api/v1/secrets" ||
      util::starts_with(req.path, "/api/v1/secrets/")) {
    return Role::admin;
  }
  if (req.method == "GET" || req.method == "HEAD") {
    // Logs may hold anything an app prints: its owner's business, not every reader's.
    bool logs = util::starts_with(req.path, "/api/v1/environments/") && util::ends_with(req.path, "/logs");
    return logs ? Role::developer : Role::viewer;
  }
  return Role::developer;
}

json token_json(const store::ApiToken& t, util::Millis now) {
  std::string status = t.revoked_at != 0                            ? "revoked"
                       : (t.expires_at != 0 && t.expires_at <= now) ? "expired"
                                                                    : "active";
  auto time_or_null = [](util::Millis ms) { return ms == 0 ? json(nullptr) : json(util::format_iso8601(ms)); };
  return {{"id", t.id},
          {"name", t.name},
          {"role", t.role},
          {"owner", t.owner},
          {"created_by", t.created_by},
          {"created_at", util::format_iso8601(t.created_at)},
          {"expires_at", time_or_null(t.expires_at)},
          {"last_used_at", time_or_null(t.last_used_at)},
          {"revoked_at", time_or_null(t.revoked_at)},
          {"status", status}};
}

bool valid_token_name(const std::string& n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
           c == '.' || c == '@';
  });
}

bool query_bool(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) {
    return false;
  }
  std::string v = req.get_param_value(key);
  if (v.empty() || v == "1" || v == "true" || v == "yes") {
    return true;
  }
  if (v == "0" || v == "false" || v == "no") {
    return false;
  }
  throw ApiError(400, "invalid_argument",
                 std::string("query parameter \"") + key + "\": expected true or false, got " + util::quote(v));
}

size_t query_size(const httplib::Request& req, const char* key, size_t def, size_t max) {
  if (!req.has_param(key)) {
    return def;
  }
  std::string v = req.get_param_value(key);
  auto n = util::parse_int<size_t>(v, 0, 999999999);
  if (!n) {
    throw ApiError(400, "invalid_argument",
                   std::string("query parameter \"") + key + "\": expected a non-negative integer, got " +
                       util::quote(v));
  }
  return std::min<size_t>(*n, max);
}

// since=10m (relative) or an ISO-8601 time.
util::Millis query_since(const httplib::Request& req, util::Millis now) {
  if (!req.has_param("since")) {
    return 0;
  }
  std::string v = req.get_param_value("since");
  if (auto t = util::parse_iso8601(v)) {
    return *t;
  }
  auto d = core::parse_duration(v);
  if (!d) {
    throw ApiError(400, "invalid_argument",
                   "query parameter \"since\": expected a duration like 10m or a time like 2026-01-02T03:04:05Z, got " +
                       util::quote(v));
  }
  return now - *d;
}

json parse_body(const httplib::Request& req) {
  auto j = core::parse_json_object(req.body);
  if (!j) {
    throw ApiError(400, "invalid_json", j.error().message);
  }
  return *j;
}

// Every string in `j` with the secret values `r` knows replaced (what a runtime reports may
// quote an app's output or its environment).
void redact_strings(json& j, const util::Redactor& r) {
  if (j.is_string()) {
    j = r.redact(j.get<std::string>());
  } else if (j.is_structured()) {
    for (auto& v : j) {
      redact_strings(v, r);
    }
  }
}

json line_json(const drivers::LogLine& l) {
  return {{"at", util::format_iso8601(l.at).substr(0, 19) + "." + std::to_string(1000 + l.at % 1000).substr(1) + "Z"},
          {"stream", l.stream},
          {"text", l.text}};
}

// Takes a stream slot for this request's connection (api/connection_pool.hpp), or answers
// 503 with Retry-After and returns false: every slot is taken.
bool claim_stream_slot(httplib::Response& res) {
  ConnectionPool::Claim c = ConnectionPool::claim_stream();
  if (c == ConnectionPool::Claim::claimed || c == ConnectionPool::Claim::held) {
    return true;
  }
  if (c == ConnectionPool::Claim::not_pooled) {
    spdlog::error("api: a stream was asked for outside the server's connection pool; refused");
  }
  res.set_header("Retry-After", "5");
  send_json(res, 503,
            {{"error", "unavailable"},
             {"message", "this server already serves as many streams (events, logs --follow, exec output) as it allows "
                         "(max_streams in the server config); close one or try again later"}});
  return false;
}

// Counts itself in `n` while it lives.
class Counted {
public:
  explicit Counted(std::atomic<int>& n) : m_n(n) { m_n += 1; }
  ~Counted() { m_n -= 1; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;

private:
  std::atomic<int>& m_n;
};

// A name of the state of an environment's record: the hash of its JSON, which holds its
// phase, message, generations and updated_at.
std::string environment_state(const core::Environment& env) {
  return util::sha256_hex(util::json_dump(core::to_json(env))).substr(0, 16);
}

// net.core.somaxconn: the largest listen backlog the kernel grants (4096 when unreadable).
int system_listen_backlog() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int n = 0;
  if (in >> n && n > 0) {
    return n;
  }
  return 4096;
}

// Why host:port cannot be bound, from a plain bind with the options the server uses
// (httplib keeps no errno).
std::string bind_failure_reason(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    return "cannot resolve " + util::quote(host);
  }
  std::string why = "the address is not available";
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
      why = errno == EADDRINUSE ? "the address is already in use (another idp serve, or another program)"
                                : std::string(std::strerror(errno));
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return why;
}

// Removes the br coding from Accept-Encoding ("gzip, deflate, br, zstd" -> "gzip, deflate,
// zstd"), so httplib compresses with gzip (or not at all) instead of slow brotli.
void drop_brotli(httplib::Request& req) {
  auto [first, last] = req.headers.equal_range("Accept-Encoding");
  for (auto it = first; it != last; ++it) {
    std::string kept;
    for (const auto& part : util::split(it->second, ',')) {
      std::string coding = util::trim(part);
      if (util::to_lower(util::trim(coding.substr(0, coding.find(';')))) == "br") {
        continue;
      }
      kept += (kept.empty() ? "" : ", ") + coding;
    }
    it->second = kept;
  }
}

} // namespace

std::shared_ptr<util::HistogramFamily> make_request_latency() {
  return std::make_shared<util::HistogramFamily>(
      "idp_http_request_duration_seconds",
      "How long the server took to answer a request, by listener (api, hooks), method, route and status code.",
      std::vector<std::string>{"server", "method", "route", "code"});
}

ApiServer::ApiServer(ApiContext ctx) : m_ctx(std::move(ctx)), m_server(std::make_unique<httplib::Server>()) {
  if (!m_ctx.request_latency) {
    m_ctx.request_latency = make_request_latency();
  }
  size_t threads = m_ctx.threads;
  size_t max_streams = m_ctx.hooks_only ? 0 : m_ctx.max_streams;
  std::string pool_name = m_ctx.hooks_only ? "hooks_http" : "api_http";
  m_server->new_task_queue = [threads, max_streams, pool_name] {
    return new ConnectionPool(pool_name, threads, max_streams);
  };
  m_server->set_payload_max_length(m_ctx.max_body_bytes);
  m_server->set_read_timeout(10, 0);
  // Small answers (the preview checks Caddy sends for every request of a protected preview,
  // api/preview_auth.hpp) go out at once rather than after a delayed ACK, and the router's
  // connection is reused for more than httplib's default 5 requests.
  m_server->set_tcp_nodelay(true);
  m_server->set_keep_alive_max_count(1000);
  m_server->set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      send_json(res, e.status(), e.body());
    } catch (const std::exception& e) {
      spdlog::error("api: unexpected exception: {}", e.what());
      send_json(res, 500, {{"error", "internal"}, {"message", "internal error"}});
    } catch (...) {
      send_json(res, 500, {{"error", "internal"}, {"message", "internal error"}});
    }
  });
  m_server->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) {
      return;
    }
    if (res.status == 413) {
      send_json(res, 413, {{"error", "too_large"}, {"message", "request body is larger than the server accepts"}});
    } else if (res.status == 404) {
      send_json(res, 404,
                {{"error", "not_found"}, {"message", "no such endpoint " + util::quote(req.method + " " + req.path)}});
    } else if (res.status == 405) {
      send_json(res, 405, {{"error", "method_not_allowed"}, {"message", "method not allowed"}});
    } else if (res.status >= 400) {
      send_json(res, res.status, {{"error", "http_" + std::to_string(res.status)}, {"message", "request failed"}});
    }
  });
  m_auth = std::make_unique<Authenticator>(*m_ctx.store, *m_ctx.clock);
  if (m_ctx.previews.enabled() && !m_ctx.hooks_only) {
    m_previews = std::make_unique<PreviewAuth>(m_ctx.previews, *m_ctx.store, *m_auth, *m_ctx.clock);
  }
  m_server->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // httplib prefers brotli whenever the client offers it, at quality 11: 450 ms for the
    // 160 KB list of 200 environments against 50 ms for gzip (bench/dashboard). Answer
    // with gzip. The request is httplib's own non-const object, handed to us as const.
    drop_brotli(const_cast<httplib::Request&>(req));
    t_request_started_ns = steady_ns();
    t_principal.reset();
    t_session_csrf.clear();
    t_token_hash.clear();
    try {
      check_request(req);
    } catch (const ApiError& e) {
      if (e.status() == 401 && req.path == "/" &&
          req.get_header_value("Accept").find("text/html") != std::string::npos) {
        res.set_redirect("/login", 303); // a browser: to the sign-in page
        return httplib::Server::HandlerResponse::Handled;
      }
      if (e.status() == 401 && req.path == "/preview/signin" &&
          req.get_header_value("Accept").find("text/html") != std::string::npos) {
        // Signs in, then comes back here to be sent on to the preview (login.html: next).
        res.set_redirect("/login?next=" + util::url_encode("/preview/signin?return=" +
                                                           util::url_encode(req.get_param_value("return"))),
                         303);
        return httplib::Server::HandlerResponse::Handled;
      }
      send_json(res, e.status(), e.body());
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Called once the response is written, for every request that reached the router.
  m_server->set_logger([latency = m_ctx.request_latency, server = std::string(m_ctx.hooks_only ? "hooks" : "api")](
                           const httplib::Request& req, const httplib::Response& res) {
    int64_t started = std::exchange(t_request_started_ns, 0);
    if (started == 0 || is_stream(res)) {
      return;
    }
    std::string method = req.method;
    if (method != "GET" && method != "HEAD" && method != "POST" && method != "PUT" && method != "PATCH" &&
        method != "DELETE" && method != "OPTIONS") {
      method = "(other)";
    }
    latency->observe({server, method, route_label(req), std::to_string(res.status)},
                     static_cast<double>(steady_ns() - started) / 1e9);
  });
  if (!m_ctx.hooks_only) {
    // Dashboard sign-in: a token pasted once becomes an HttpOnly, SameSite=Strict cookie.
    m_server->Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
      json body = parse_body(req);
      std::string token = body.contains("token") && body["token"].is_string() ? body["token"].get<std::string>() : "";
      auto p = m_auth->authenticate("Bearer " + token);
      if (!p) {
        throw ApiError::from(p.error());
      }
      Session s{token_hash(token), util::random_hex(16), m_ctx.clock->now_ms() + k_session_ttl_ms, std::nullopt};
      res.set_header("Set-Cookie", open_session(s, "Strict", request_is_https(req)));
      send_json(res, 200, {{"identity", p->identity}, {"role", role_name(p->role)}, {"csrf", s.csrf}});
    });
    // The app, its assets, and Sign in with GitHub (api/dashboard_routes.cpp).
    if (m_ctx.github_oauth.enabled()) {
      m_oauth = std::make_unique<GitHubOAuth>(m_ctx.github_oauth, *m_ctx.clock);
    }
    DashboardHooks dashboard_hooks;
    dashboard_hooks.now_ms = [this] { return m_ctx.clock->now_ms(); };
    dashboard_hooks.open_session = [this](const Principal& p, bool https) {
      // Lax: the sign-in ends with GitHub's cross-site redirect, and the session must ride
      // along with the navigation to / that follows. Actions still need the CSRF token.
      return open_session(Session{"", util::random_hex(16), m_ctx.clock->now_ms() + k_session_ttl_ms, p}, "Lax", https);
    };
    register_dashboard_routes(*m_server, m_oauth.get(), std::move(dashboard_hooks));
    m_server->Post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
      std::string id = cookie_value(req, k_session_cookie);
      if (!id.empty()) {
        std::lock_guard lock(m_sessions_mutex);
        m_sessions.erase(util::sha256_hex(id));
      }
      res.set_header("Set-Cookie", std::string(k_session_cookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
      send_json(res, 200, {{"status", "signed out"}});
    });
    if (m_previews) {
      PreviewRouteHooks preview_hooks;
      preview_hooks.principal = []() -> const Principal& { return principal(); };
      preview_hooks.token_hash = [] { return t_token_hash; };
      preview_hooks.actor = [](const httplib::Request& req) { return actor_of(req); };
      preview_hooks.authorize = [this](const store::PreviewGrant& g, const std::string& what) {
        auto env = m_ctx.store->get_environment(g.env);
        core::Environment e;
        e.name = g.env;
        e.owner = env ? env->owner : ""; // a destroyed environment's links: admins only
        require_owner(e, what);
      };
      register_preview_routes(*m_server, *m_previews, *m_ctx.store, *m_ctx.clock, std::move(preview_hooks));
    }
    m_server->Get("/api/v1/session", [](const httplib::Request&, httplib::Response& res) {
      const Principal& p = principal();
      send_json(res, 200,
                {{"identity", p.identity},
                 {"role", role_name(p.role)},
                 {"csrf", t_session_csrf.empty() ? json(nullptr) : json(t_session_csrf)}});
    });
  }
  if (!m_ctx.hooks_only) {
    routes();
  }
  if (!m_ctx.hooks_only) {
    register_wake_handler(*m_server, m_ctx);
  }
  if (m_ctx.tls_ask && !m_ctx.hooks_only) {
    m_server->Get(k_tls_ask_path, [this](const httplib::Request& req, httplib::Response& res) {
      bool yes = m_ctx.tls_ask(util::to_lower(req.get_param_value("domain")));
      send_json(res, yes ? 200 : 403, {{"allowed", yes}});
    });
  }
  m_server->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    send_json(
        res, 200,
        {{"status", "ok"}, {"version", m_ctx.version}, {"uptime_s", (m_ctx.clock->now_ms() - m_started_at) / 1000}});
  });
}

ApiServer::~ApiServer() { stop(); }

std::string ApiServer::open_session(const Session& s, const std::string& same_site, bool https) {
  std::string id = util::random_hex(32);
  {
    std::lock_guard lock(m_sessions_mutex);
    util::Millis now = m_ctx.clock->now_ms();
    std::erase_if(m_sessions, [now](const auto& kv) { return kv.second.expires_at <= now; });
    m_sessions[util::sha256_hex(id)] = s;
  }
  return std::string(k_session_cookie) + "=" + id + "; Path=/; HttpOnly; SameSite=" + same_site +
         "; Max-Age=" + std::to_string(k_session_ttl_ms / 1000) + (https ? "; Secure" : "");
}

void ApiServer::check_request(const httplib::Request& req) {
  if (m_raw_paths.count(req.path) || req.path == "/healthz") {
    // Hooks authenticate each request themselves (signatures); /healthz tells nothing.
    return;
  }
  if (m_ctx.hooks_only) {
    throw ApiError(404, "not_found", "no such endpoint " + util::quote(req.method + " " + req.path));
  }
  if (m_previews && is_preview_auth_path(req.path)) {
    // Caddy on this machine asks, with the preview's own Host and the visitor's headers
    // (api/preview_auth.hpp decides from those). Nobody else may: 404 from elsewhere.
    if (!from_loopback(req)) {
      throw ApiError(404, "not_found", "no such endpoint " + util::quote(req.method + " " + req.path));
    }
    return;
  }
  if (req.path == k_wake_path && !m_ctx.wake_key.empty()) {
    // The router on this machine, with the key it was given: nobody else may wake (and
    // learn the port of) an environment through here.
    if (!from_loopback(req) || !wake_request_allowed(req, m_ctx)) {
      throw ApiError(404, "not_found", "no such endpoint " + util::quote(req.method + " " + req.path));
    }
    return;
  }
  if (req.path == k_tls_ask_path && m_ctx.tls_ask) {
    // For the Caddy on this machine only. It tells no more than whether a host name is an
    // environment, but that is nobody else's business either.
    if (!from_loopback(req) || req.has_header("X-Forwarded-For")) {
      throw ApiError(404, "not_found", "no such endpoint " + util::quote(req.method + " " + req.path));
    }
    return;
  }
  // DNS rebinding: a page on attacker.example whose name now points at 127.0.0.1 sends
  // Host: attacker.example. Only loopback names and the configured ones reach the API.
  std::string host_header = req.get_header_value("Host");
  std::string host = host_without_port(host_header);
  bool known = is_loopback_host(host) || host == m_listen_host;
  for (const auto& n : m_ctx.server_names) {
    known = known || host == util::to_lower(n);
  }
  if (!known) {
    throw ApiError(421, "misdirected_request",
                   "this server does not answer to host " + util::quote(host) +
                       "; add it to server_names in the server config if it is one of its names");
  }
  bool state_changing = req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS";
  if (state_changing) {
    // A browser sends Origin with every cross-origin POST/DELETE: refuse them all, so a web
    // page cannot drive the API with the browser's (or the machine's) credentials.
    std::string origin = util::to_lower(req.get_header_value("Origin"));
    if (!origin.empty() && origin != "http://" + util::to_lower(host_header) &&
        origin != "https://" + util::to_lower(host_header)) {
      throw ApiError(403, "forbidden", "cross-origin request from " + util::quote(origin) + " refused");
    }
    // text/plain and form bodies are "simple" requests a page may send without a preflight.
    // Checked before the body is read (httplib reads it after this pre-routing check).
    std::string length = req.get_header_value("Content-Length");
    bool has_body = (!length.empty() && length != "0") || req.has_header("Transfer-Encoding");
    if (has_body && media_type(req.get_header_value("Content-Type")) != "application/json") {
      throw ApiError(415, "unsupported_media_type",
                     "request body must be application/json, got " +
                         util::quote(req.get_header_value("Content-Type").substr(0, 100)));
    }
  }
  if ((req.path == "/metrics" && m_ctx.metrics_public) || is_public_dashboard_path(req.path)) {
    return;
  }
  std::string authorization = req.get_header_value("Authorization");
  std::string session_id = authorization.empty() ? cookie_value(req, k_session_cookie) : "";
  Expected<Principal> p = make_error(ErrorCode::unauthorized, "");
  if (!session_id.empty()) {
    std::optional<Session> s;
    {
      std::lock_guard lock(m_sessions_mutex);
      auto it = m_sessions.find(util::sha256_hex(session_id));
      if (it != m_sessions.end() && it->second.expires_at > m_ctx.clock->now_ms()) {
        s = it->second;
      }
    }
    if (!s) {
      throw ApiError(401, "unauthorized", "the dashboard session has ended: sign in again at /login");
    }
    // A cookie rides along with any request the browser makes: actions also need the
    // session's CSRF token, which only the dashboard's own page can read.
    if (state_changing && !util::constant_time_equals(req.get_header_value("X-Idp-Csrf"), s->csrf)) {
      throw ApiError(403, "forbidden", "missing or wrong X-Idp-Csrf header for a dashboard session");
    }
    p = s->principal ? Expected<Principal>(*s->principal) : m_auth->authenticate_hash(s->token_hash);
    t_session_csrf = s->csrf;
    t_token_hash = s->principal ? "" : s->token_hash;
  } else {
    std::string hash;
    p = m_auth->authenticate(authorization, &hash);
    if (p) {
      t_token_hash = std::move(hash);
    }
  }
  if (!p) {
    throw ApiError::from(p.error());
  }
  t_principal = *p;
  Role need = required_role(req);
  if (p->role < need) {
    throw ApiError(403, "forbidden",
                   "token " + util::quote(p->identity) + " has role " + std::string(role_name(p->role)) + "; " +
                       util::quote(req.method + " " + req.path) + " needs " + std::string(role_name(need)));
  }
}

void ApiServer::add_post_hook(const std::string& path, RawHandler handler) {
  m_raw_paths.insert(path);
  m_server->Post(path, [handler](const httplib::Request& req, httplib::Response& res) {
    RawRequest r;
    r.method = req.method;
    r.path = req.path;
    r.body = req.body;
    r.remote_addr = req.remote_addr;
    r.header = [&req](const std::string& h) { return req.get_header_value(h); };
    RawResponse out = handler(r);
    res.status = out.status;
    res.set_content(out.body, out.content_type);
  });
}

Expected<int> ApiServer::bind(const std::string& host, int port) {
  // cpp-httplib's default options set SO_REUSEPORT, with which a second server binds the
  // same address and the kernel splits connections between the two. SO_REUSEADDR alone
  // still allows a restart over TIME_WAIT but refuses an address in use.
  m_server->set_socket_options([this](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    m_listen_fd = sock;
  });
  m_listen_host = util::to_lower(host);
  if (m_listen_host == "0.0.0.0" || m_listen_host == "::" || m_listen_host == "[::]") {
    m_listen_host.clear(); // any address: not a name clients use
  }
  int bound = port == 0 ? m_server->bind_to_any_port(host) : (m_server->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return make_error(ErrorCode::io_error,
                      "cannot listen on " + host + ":" + std::to_string(port) + ": " + bind_failure_reason(host, port));
  }
  // httplib listens with a backlog of 5 (compiled in); listen() again raises it to the
  // kernel's cap so a burst of clients is queued rather than refused.
  if (m_listen_fd >= 0) {
    ::listen(m_listen_fd, system_listen_backlog());
  }
  if (m_previews) {
    // Where a browser sent to sign in reaches the dashboard, unless the daemon said
    // (https: idp.<domain>). A wildcard listen is reached over loopback on this machine.
    std::string h = m_listen_host.empty() ? "127.0.0.1" : m_listen_host;
    if (h.find(':') != std::string::npos && h.front() != '[') {
      h = "[" + h + "]";
    }
    m_previews->set_dashboard_url("http://" + h + ":" + std::to_string(bound));
  }
  return bound;
}

void ApiServer::start() {
  m_started_at = m_ctx.clock->now_ms();
  m_thread = std::thread([this] {
    util::thread_main("api_server", [this] {
      if (!m_stopping.load()) {
        m_server->listen_after_bind();
      }
    });
  });
  // httplib's stop() does nothing before the accept loop runs: wait for it, so a stop()
  // right after start() cannot hang.
  for (int i = 0; i < 5000 && !m_server->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void ApiServer::stop() {
  if (m_stopping.exchange(true)) {
    return;
  }
  m_server->stop();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

void ApiServer::routes() {
  auto& s = *m_server;
  ApiContext& ctx = m_ctx;

  auto env_json = [&ctx](const core::Environment& env, bool details) {
    json j = core::to_json(env);
    if (details) {
      json revs = json::array();
      if (auto rs = ctx.store->list_revisions(env.name, 10)) {
        for (const auto& r : *rs) {
          revs.push_back(core::to_json(r));
        }
      }
      j["revisions"] = revs;
      json runs = json::array();
      if (auto rs = ctx.store->list_job_runs(env.name, 10)) {
        for (const auto& r : *rs) {
          runs.push_back(core::to_json(r));
        }
      }
      j["job_runs"] = runs;
      auto lease = ctx.store->get_lease(env.name);
      j["lease"] = (lease && *lease)
                       ? json{{"owner", (*lease)->owner}, {"expires_at", util::format_iso8601((*lease)->expires_at)}}
                       : json(nullptr);
    }
    return j;
  };

  // Prometheus text format.
  s.Get("/metrics", [&ctx, this](const httplib::Request&, httplib::Response& res) {
    auto envs = unwrap(ctx.store->list_environments(true));
    std::map<std::string, int> by_phase;
    for (int p = 0; p < 8; ++p) {
      by_phase[std::string(core::phase_name(static_cast<core::Phase>(p)))] = 0;
    }
    int retrying = 0;
    for (const auto& e : envs) {
      by_phase[std::string(core::phase_name(e.phase))] += 1;
      retrying += e.attempts > 0 ? 1 : 0;
    }
    std::string out;
    out += "# HELP idp_environments Environments by phase.\n# TYPE idp_environments gauge\n";
    for (const auto& [phase, n] : by_phase) {
      out += "idp_environments{phase=\"" + phase + "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP idp_environments_retrying Environments whose last operation failed and is being retried.\n";
    out += "# TYPE idp_environments_retrying gauge\nidp_environments_retrying " + std::to_string(retrying) + "\n";
    out += "# HELP idp_uptime_seconds Seconds since the server started.\n# TYPE idp_uptime_seconds gauge\n";
    out += "idp_uptime_seconds " + std::to_string((ctx.clock->now_ms() - m_started_at) / 1000) + "\n";
    out += "# HELP idp_build_info Version of the server.\n# TYPE idp_build_info gauge\n";
    out += "idp_build_info{version=\"" + ctx.version + "\"} 1\n";
    if (ctx.engine_metrics) {
      out += ctx.engine_metrics();
    }
    out += unwrap(cost_metrics_text(ctx));
    out += ctx.request_latency->text();
    out += "# HELP idp_api_waiting Requests waiting for an environment to change (GET ...?since=&wait_ms=).\n"
           "# TYPE idp_api_waiting gauge\nidp_api_waiting " +
           std::to_string(m_waiting.load()) + "\n";
    res.set_content(out, "text/plain; version=0.0.4");
  });

  // Server-sent events: every new audit event, as it is recorded.
  s.Get("/api/v1/events/stream", [&ctx, this](const httplib::Request& req, httplib::Response& res) {
    auto after = std::make_shared<int64_t>(static_cast<int64_t>(query_size(req, "after", 0, INT64_MAX)));
    if (!req.has_param("after")) {
      store::EventQuery q;
      q.limit = 1;
      q.newest_first = true;
      auto newest = unwrap(ctx.store->list_events(q));
      *after = newest.empty() ? 0 : newest.front().id;
    }
    std::string env = req.has_param("env") ? req.get_param_value("env") : "";
    util::Millis poll = ctx.log_poll_ms;
    if (!claim_stream_slot(res)) {
      return;
    }
    auto watch = std::make_shared<ClientWatch>(req);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [&ctx, this, after, env, poll, watch](size_t, httplib::DataSink& sink) {
          int64_t last_write = util::steady_ms();
          while (!m_stopping) {
            store::EventQuery q;
            q.env = env;
            q.after_id = *after;
            q.limit = 500;
            auto evs = ctx.store->list_events(q);
            if (evs) {
              std::string out;
              for (const auto& e : *evs) {
                out += "id: " + std::to_string(e.id) + "\ndata: " + util::json_dump(core::to_json(e)) + "\n\n";
                *after = e.id;
              }
              if (!out.empty()) {
                if (!sink.write(out.data(), out.size())) {
                  return false;
                }
                last_write = util::steady_ms();
              }
            }
            if (util::steady_ms() - last_write > 15000) {
              static const std::string k_ping = ": ping\n\n";
              if (!sink.write(k_ping.data(), k_ping.size())) {
                return false;
              }
              last_write = util::steady_ms();
            }
            if (!sink.is_writable() || !watch->wait(poll)) {
              return false; // the client has gone: its thread and slot are freed
            }
          }
          sink.done();
          return true;
        });
  });

  s.Get("/api/v1/capabilities", [&ctx](const httplib::Request&, httplib::Response& res) {
    json templates = json::array();
    for (const auto& t : ctx.templates->list()) {
      templates.push_back(t.name);
    }
    send_json(res, 200,
              {{"version", ctx.version},
               {"drivers", ctx.drivers->names()},
               {"templates", templates},
               {"stores", json::array({"sqlite"})},
               {"reaper_interval", core::format_ttl(ctx.reaper_interval_ms)},
               {"ttl_min", core::format_ttl(ctx.ttl_min_ms)},
               {"ttl_max", core::format_ttl(ctx.ttl_max_ms)}});
  });

  s.Get("/api/v1/templates", [&ctx](const httplib::Request&, httplib::Response& res) {
    std::vector<std::string> problems;
    json out = json::array();
    for (const auto& t : ctx.templates->list(&problems)) {
      out.push_back(t.to_json());
    }
    send_json(res, 200, {{"templates", out}, {"problems", problems}});
  });

  s.Get(R"(/api/v1/templates/([^/]+))", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto t = unwrap(ctx.templates->get(req.matches[1]));
    send_json(res, 200, t.to_json());
  });

  s.Get("/api/v1/environments", [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
    bool all = query_bool(req, "all");
    auto envs = unwrap(ctx.store->list_environments(all));
    json out = json::array();
    for (const auto& e : envs) {
      out.push_back(env_json(e, false));
    }
    send_json(res, 200, {{"environments", out}});
  });

  s.Post("/api/v1/environments", [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto parsed = unwrap(core::CreateEnvironmentRequest::from_json(body));
    engine::CreateRequest cr;
    // A credential in the URL ("https://user:token@host/…") is kept by the server for git
    // alone; the environment, events and answers only ever carry the stripped URL.
    cr.repo = unwrap(util::remember_url_credentials(parsed.repo));
    cr.branch = parsed.branch;
    cr.name = parsed.name;
    cr.template_name = parsed.template_name;
    cr.ttl = parsed.ttl;
    std::string actor = actor_of(req);
    const Principal& p = principal();
    if (!parsed.owner.empty() && parsed.owner != p.identity && p.role != Role::admin) {
      throw ApiError(403, "forbidden",
                     "only an admin may create an environment owned by someone else (owner " +
                         util::quote(parsed.owner) + ", token of " + util::quote(p.identity) + ")");
    }
    cr.owner = parsed.owner.empty() ? p.identity : parsed.owner;
    cr.runtime = parsed.runtime;
    // Answered once the desired state is stored: the clone and the config are a worker's
    // (engine/create_resolution.hpp); their errors become the environment's failed phase.
    auto env = unwrap(ctx.controller->submit_create(cr, actor));
    send_json(res, 202, env_json(env, true));
  });

  // idp render: what an environment of repo/branch would be applied as on a runtime (the
  // branch's head, fetched now). Records and applies nothing; a developer's, as a create
  // (it clones the repository).
  s.Post("/api/v1/render", [&ctx](const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto parsed = unwrap(core::CreateEnvironmentRequest::from_json(body));
    engine::CreateRequest cr;
    cr.repo = unwrap(util::remember_url_credentials(parsed.repo));
    cr.branch = parsed.branch;
    cr.name = parsed.name;
    cr.template_name = parsed.template_name;
    cr.ttl = parsed.ttl;
    cr.owner = parsed.owner.empty() ? principal().identity : parsed.owner;
    cr.runtime = parsed.runtime;
    auto r = unwrap(ctx.controller->render(cr));
    send_json(res, 200,
              {{"name", r.name},
               {"runtime", r.runtime},
               {"commit", r.commit},
               {"template", r.template_name},
               {"manifests", r.manifests}});
  });

  s.Get(R"(/api/v1/environments/([^/]+))", [&ctx, env_json, this](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    auto env = unwrap(ctx.store->get_environment(name));
    // X-Idp-State names this state of the environment's record. A long poll (the CLI's
    // waits): with ?since=<an earlier X-Idp-State>&wait_ms=N the answer comes when the record
    // differs from that state, or after N ms (at most 30 s) unchanged, as usual either way.
    // The waiting request takes a stream slot; with none free it answers at once.
    std::string state = environment_state(env);
    const size_t wait_ms = query_size(req, "wait_ms", 0, 30000);
    if (wait_ms > 0 && req.has_param("since") && req.get_param_value("since") == state) {
      auto claim = ConnectionPool::claim_stream();
      if (claim == ConnectionPool::Claim::claimed || claim == ConnectionPool::Claim::held) {
        const std::string since = state;
        ClientWatch watch(req);
        const int64_t deadline = util::steady_ms() + static_cast<int64_t>(wait_ms);
        Counted waiting(m_waiting);
        while (state == since && !m_stopping && util::steady_ms() < deadline) {
          // The store has no change feed: a read of one row every 2 ms.
          if (!watch.wait(2)) {
            return; // the client has gone
          }
          env = unwrap(ctx.store->get_environment(name));
          state = environment_state(env);
        }
      }
    }
    res.set_header("X-Idp-State", state);
    json out = env_json(env, true);
    // What the runtime shows now (kubernetes: pods and events). Its failure is part of the
    // answer, not an error of it: the store's view is still worth having.
    auto driver = ctx.drivers->get(env.runtime);
    if (env.phase != core::Phase::destroyed && driver) {
      auto described = (*driver)->describe(env);
      json runtime = described ? *described : json{{"error", described.error().message}};
      if (!runtime.empty()) {
        if (ctx.secrets) {
          redact_strings(runtime, util::Redactor(ctx.secrets->values_for(env)));
        }
        out["runtime_status"] = std::move(runtime);
      }
    }
    send_json(res, 200, out);
  });

  s.Post(R"(/api/v1/environments/([^/]+)/extend)",
         [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
           json body = parse_body(req);
           auto ext = unwrap(core::ExtendRequest::from_json(body));
           require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "extend");
           auto env = unwrap(ctx.controller->extend(req.matches[1].str(), ext.ttl, actor_of(req)));
           send_json(res, 200, env_json(env, false));
         });

  s.Post(R"(/api/v1/environments/([^/]+)/redeploy)",
         [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
           json body = req.body.empty() ? json::object() : parse_body(req);
           const json& commit = body.contains("commit") ? body["commit"] : json("");
           if (!commit.is_string()) {
             throw ApiError(400, "invalid_argument", "commit: expected a commit sha string");
           }
           auto env = unwrap(ctx.controller->redeploy(req.matches[1].str(), commit.get<std::string>(), actor_of(req)));
           send_json(res, 202, env_json(env, false));
         });

  // QA freeze (issue 12): {until?: "2d", reason?: "..."}; unfreeze deploys the newest held push.
  s.Post(R"(/api/v1/environments/([^/]+)/freeze)",
         [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
           json body = req.body.empty() ? json::object() : parse_body(req);
           if (!body.is_object()) {
             throw ApiError(400, "invalid_argument", "expected a JSON object {until?, reason?}");
           }
           util::Millis until = 0;
           std::string reason;
           for (const auto& [k, v] : body.items()) {
             if (k == "until") {
               if (!v.is_string()) {
                 throw ApiError(400, "invalid_argument", "until: expected a duration like 2d");
               }
               auto d = core::parse_duration(v.get<std::string>());
               if (!d || *d <= 0) {
                 throw ApiError(400, "invalid_argument",
                                "until: expected a duration like 2d, got " + util::quote(v.get<std::string>()));
               }
               until = ctx.clock->now_ms() + *d;
             } else if (k == "reason") {
               if (!v.is_string()) {
                 throw ApiError(400, "invalid_argument", "reason: expected a string");
               }
               reason = v.get<std::string>();
             } else {
               throw ApiError(400, "invalid_argument", "unknown field " + util::quote(k) + " (expected until, reason)");
             }
           }
           require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "freeze");
           auto env = unwrap(ctx.controller->freeze(req.matches[1].str(), until, reason, actor_of(req)));
           send_json(res, 200, env_json(env, false));
         });
  s.Post(R"(/api/v1/environments/([^/]+)/unfreeze)",
         [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
           require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "unfreeze");
           auto env = unwrap(ctx.controller->unfreeze(req.matches[1].str(), actor_of(req), "unfrozen"));
           send_json(res, 202, env_json(env, false));
         });

  // Pull requests from forks (issue 15): the ones recorded, and their approval.
  auto fork_json = [&ctx](const store::ForkRequest& f) {
    json env = nullptr;
    if (auto e = ctx.store->find_by_source_key(
            engine::Controller::fork_source_key(engine::RepoResolver::canonical_repo(f.repo), f.pr));
        e && *e) {
      env = (*e)->name;
    }
    auto time_or_null = [](util::Millis ms) { return ms == 0 ? json(nullptr) : json(util::format_iso8601(ms)); };
    return json{{"repo", f.github_repo.empty() ? f.repo : f.github_repo},
                {"repo_url", f.repo},
                {"pr", f.pr},
                {"head_repo", f.head_repo},
                {"head_ref", f.head_ref},
                {"head_sha", f.head_sha},
                {"author", f.author},
                {"state", f.state},
                {"approved_commit", f.approved_commit.empty() ? json(nullptr) : json(f.approved_commit)},
                {"approved_by", f.approved_by.empty() ? json(nullptr) : json(f.approved_by)},
                {"approved_at", time_or_null(f.approved_at)},
                {"updated_at", time_or_null(f.updated_at)},
                {"environment", env}};
  };
  s.Get("/api/v1/forks", [&ctx, fork_json](const httplib::Request&, httplib::Response& res) {
    if (!ctx.forks) {
      throw ApiError(404, "not_found", "this server watches no repositories");
    }
    json out = json::array();
    for (const auto& f : unwrap(ctx.forks->list())) {
      out.push_back(fork_json(f));
    }
    send_json(res, 200, json{{"forks", out}});
  });
  s.Post("/api/v1/forks/approve", [&ctx, fork_json](const httplib::Request& req, httplib::Response& res) {
    if (!ctx.forks) {
      throw ApiError(404, "not_found", "this server watches no repositories");
    }
    json body = parse_body(req);
    if (!body.is_object()) {
      throw ApiError(400, "invalid_argument", "expected a JSON object {repo, pr, commit?}");
    }
    for (const auto& [k, v] : body.items()) {
      if (k != "repo" && k != "pr" && k != "commit") {
        throw ApiError(400, "invalid_argument", "unknown field " + util::quote(k) + " (expected repo, pr, commit)");
      }
    }
    if (!body.contains("repo") || !body["repo"].is_string() || body["repo"].get<std::string>().empty()) {
      throw ApiError(400, "invalid_argument", "repo: expected owner/name or the repository's URL");
    }
    if (!body.contains("pr") || !body["pr"].is_number_integer() || body["pr"].get<int64_t>() <= 0 ||
        body["pr"].get<int64_t>() > 1'000'000'000) {
      throw ApiError(400, "invalid_argument", "pr: expected a pull request number");
    }
    std::string commit;
    if (body.contains("commit")) {
      if (!body["commit"].is_string()) {
        throw ApiError(400, "invalid_argument", "commit: expected a commit sha string");
      }
      commit = body["commit"].get<std::string>();
    }
    const std::string name = body["repo"].get<std::string>();
    const sources::WatchedRepo* repo = ctx.forks->find_repo(name);
    if (!repo) {
      throw ApiError(404, "not_found", "repository " + util::quote(name) + " is not watched by this server");
    }
    auto f = unwrap(ctx.forks->approve(*repo, static_cast<int>(body["pr"].get<int64_t>()), commit, actor_of(req)));
    send_json(res, 202, fork_json(f));
  });

  s.Delete(R"(/api/v1/environments/([^/]+))", [&ctx, env_json](const httplib::Request& req, httplib::Response& res) {
    std::string reason = req.has_param("reason") ? req.get_param_value("reason") : "requested through the API";
    require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "destroy");
    auto env = unwrap(ctx.controller->destroy(req.matches[1].str(), actor_of(req), reason.substr(0, 500)));
    send_json(res, 202, env_json(env, false));
  });

  s.Get(R"(/api/v1/environments/([^/]+)/events)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1].str();
    unwrap(ctx.store->get_environment(name));
    store::EventQuery q;
    q.env = name;
    q.after_id = static_cast<int64_t>(query_size(req, "after", 0, INT64_MAX));
    q.limit = query_size(req, "limit", 1000, 10000);
    auto evs = unwrap(ctx.store->list_events(q));
    json out = json::array();
    for (const auto& e : evs) {
      out.push_back(core::to_json(e));
    }
    send_json(res, 200, {{"events", out}});
  });

  s.Get("/api/v1/events", [&ctx](const httplib::Request& req, httplib::Response& res) {
    store::EventQuery q;
    q.env = req.has_param("env") ? req.get_param_value("env") : "";
    q.after_id = static_cast<int64_t>(query_size(req, "after", 0, INT64_MAX));
    q.limit = query_size(req, "limit", 1000, 10000);
    auto evs = unwrap(ctx.store->list_events(q));
    json out = json::array();
    for (const auto& e : evs) {
      out.push_back(core::to_json(e));
    }
    send_json(res, 200, {{"events", out}});
  });

  s.Post(R"(/api/v1/environments/([^/]+)/unlock)", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1].str();
    auto env = unwrap(ctx.store->get_environment(name));
    require_owner(env, "unlock");
    auto driver = unwrap(ctx.drivers->get(env.runtime));
    json out = {{"environment", name}};
    auto lease = unwrap(ctx.store->get_lease(name));
    if (lease) {
      unwrap(ctx.store->break_lease(name));
      out["lease"] = {{"owner", lease->owner}, {"expires_at", util::format_iso8601(lease->expires_at)}};
    } else {
      out["lease"] = nullptr;
    }
    out["runtime"] = unwrap(driver->unlock(env));
    core::Event ev;
    ev.env = name;
    ev.at = ctx.clock->now_ms();
    ev.actor = actor_of(req);
    ev.action = "unlock";
    ev.reason = (lease ? "broke lease of " + lease->owner + "; " : std::string("no lease; ")) +
                out["runtime"].get<std::string>();
    ev.from_phase = ev.to_phase = std::string(core::phase_name(env.phase));
    (void)ctx.store->append_event(ev);
    send_json(res, 200, out);
  });

  // idp exec: exec sessions and the one-shot form (api/exec_routes.cpp).
  ExecRouteHooks exec_hooks;
  exec_hooks.authorize = [](const core::Environment& env, const std::string& what) { require_owner(env, what); };
  exec_hooks.actor = [](const httplib::Request& req) { return actor_of(req); };
  exec_hooks.stopping = &m_stopping;
  exec_hooks.claim_stream = [](httplib::Response& res) { return claim_stream_slot(res); };
  if (ctx.secrets) {
    exec_hooks.secret_values = [&ctx](const core::Environment& env) { return ctx.secrets->values_for(env); };
  }
  register_exec_routes(s, ctx, std::move(exec_hooks));

  register_cost_routes(s, ctx);
  register_sleep_routes(
      s, ctx, [env_json](const core::Environment& env) { return env_json(env, false); },
      [](const core::Environment& env, const std::string& what) { require_owner(env, what); },
      [](const httplib::Request& req) { return actor_of(req); });

  s.Get(R"(/api/v1/environments/([^/]+)/logs)", [&ctx, this](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1].str();
    auto env = unwrap(ctx.store->get_environment(name));
    require_owner(env, "read the logs of");
    auto driver = unwrap(ctx.drivers->get(env.runtime));
    drivers::LogQuery q;
    q.since = query_since(req, ctx.clock->now_ms());
    q.tail = query_size(req, "tail", 0, 100000);
    q.cursor = req.has_param("cursor") ? req.get_param_value("cursor") : "";
    bool follow = query_bool(req, "follow");
    if (!follow) {
      auto chunk = unwrap(driver->read_logs(env, q));
      util::Redactor redactor(ctx.secrets ? ctx.secrets->values_for(env) : std::vector<std::string>{});
      json lines = json::array();
      for (auto l : chunk.lines) {
        l.text = redactor.redact(l.text);
        lines.push_back(line_json(l));
      }
      send_json(res, 200, {{"environment", name}, {"lines", lines}, {"cursor", chunk.cursor}});
      return;
    }
    // Follow: newline-delimited JSON, one object per log line, until the environment is
    // destroyed, the client goes away, or the server stops.
    auto state = std::make_shared<drivers::LogQuery>(q);
    util::Millis poll = ctx.log_poll_ms;
    if (!claim_stream_slot(res)) {
      return;
    }
    auto watch = std::make_shared<ClientWatch>(req);
    // The values as the stream starts: one line is never split, so no overlap is needed.
    auto redactor =
        std::make_shared<util::Redactor>(ctx.secrets ? ctx.secrets->values_for(env) : std::vector<std::string>{});
    res.set_chunked_content_provider("application/x-ndjson", [&ctx, this, name, driver, state, poll, watch,
                                                              redactor](size_t, httplib::DataSink& sink) {
      while (!m_stopping) {
        auto env = ctx.store->get_environment(name);
        if (!env) {
          sink.done();
          return true;
        }
        auto chunk = driver->read_logs(*env, *state);
        if (chunk) {
          std::string out;
          for (auto l : chunk->lines) {
            l.text = redactor->redact(l.text);
            out += util::json_dump(line_json(l)) + "\n";
          }
          if (!chunk->cursor.empty()) {
            state->cursor = chunk->cursor;
          }
          state->tail = 0;
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            return false;
          }
        }
        if (env->phase == core::Phase::destroyed) {
          sink.done();
          return true;
        }
        if (!sink.is_writable() || !watch->wait(poll)) {
          return false; // the client has gone: its thread and slot are freed
        }
      }
      sink.done();
      return true;
    });
  });

  // --- The server's secret store (admin only: required_role; api/secret_routes.cpp) ---
  SecretRouteHooks secret_hooks;
  secret_hooks.actor = [](const httplib::Request& req) { return actor_of(req); };
  secret_hooks.identity = [] { return principal().identity; };
  register_secret_routes(s, ctx, std::move(secret_hooks));

  // --- API tokens (admin only: required_role) ---

  s.Get("/api/v1/tokens", [&ctx](const httplib::Request&, httplib::Response& res) {
    auto tokens = unwrap(ctx.store->list_api_tokens());
    util::Millis now = ctx.clock->now_ms();
    json out = json::array();
    for (const auto& t : tokens) {
      out.push_back(token_json(t, now));
    }
    send_json(res, 200, {{"tokens", out}});
  });

  s.Post("/api/v1/tokens", [this, &ctx](const httplib::Request& req, httplib::Response& res) {
    json body = parse_body(req);
    auto field = [&body](const char* key) -> std::string {
      if (!body.contains(key) || body[key].is_null()) {
        return "";
      }
      if (!body[key].is_string()) {
        throw ApiError(400, "invalid_argument", std::string("field \"") + key + "\": expected a string");
      }
      return body[key].get<std::string>();
    };
    std::string name = field("name");
    if (!valid_token_name(name)) {
      throw ApiError(400, "invalid_argument",
                     "field \"name\": expected 1-64 characters of letters, digits, - _ . @, got " + util::quote(name));
    }
    std::string role_text = field("role");
    auto role = parse_role(role_text);
    if (!role) {
      throw ApiError(400, "invalid_argument",
                     "field \"role\": expected viewer, developer or admin, got " + util::quote(role_text));
    }
    std::string owner = field("owner");
    if (owner.empty()) {
      owner = name;
    } else if (!valid_token_name(owner)) {
      throw ApiError(400, "invalid_argument",
                     "field \"owner\": expected 1-64 characters of letters, digits, - _ . @, got " +
                         util::quote(owner));
    }
    util::Millis now = ctx.clock->now_ms();
    util::Millis expires_at = 0;
    if (std::string ttl = field("ttl"); !ttl.empty()) {
      auto d = core::parse_duration(ttl);
      if (!d || *d <= 0) {
        throw ApiError(400, "invalid_argument",
                       "field \"ttl\": expected a duration like 30d or 12h, got " + util::quote(ttl));
      }
      expires_at = now + *d;
    }
    std::string actor = actor_of(req);
    NewToken t = mint_token(name, *role, owner, principal().identity, now, expires_at);
    unwrap(ctx.store->insert_api_token(t.record));
    m_auth->forget_all();
    core::Event ev;
    ev.at = now;
    ev.actor = actor;
    ev.action = "token-create";
    ev.reason = "token " + t.record.id + " " + util::quote(name) + " (" + t.record.role + ") for " + util::quote(owner);
    if (auto r = ctx.store->append_event(ev); !r) {
      spdlog::error("api: cannot record the creation of token {}: {}", t.record.id, r.error().message);
    }
    json out = token_json(t.record, now);
    out["token"] = t.secret; // the only time it is ever shown
    send_json(res, 201, out);
  });

  s.Delete(R"(/api/v1/tokens/([^/]+))", [this, &ctx](const httplib::Request& req, httplib::Response& res) {
    util::Millis now = ctx.clock->now_ms();
    auto t = unwrap(ctx.store->revoke_api_token(req.matches[1].str(), now));
    m_auth->forget_all(); // from the next request on, the token is refused
    if (m_previews) {
      m_previews->forget_decisions(); // and so are its preview sessions
    }
    core::Event ev;
    ev.at = now;
    ev.actor = actor_of(req);
    ev.action = "token-revoke";
    ev.reason = "token " + t.id + " " + util::quote(t.name) + " (" + t.role + ") of " + util::quote(t.owner);
    if (auto r = ctx.store->append_event(ev); !r) {
      spdlog::error("api: cannot record the revocation of token {}: {}", t.id, r.error().message);
    }
    send_json(res, 200, token_json(t, now));
  });
}

} // namespace idp::api
