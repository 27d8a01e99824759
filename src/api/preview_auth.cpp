#include "api/preview_auth.hpp"

#include <algorithm>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "api/api_error.hpp"
#include "core/api_types.hpp"
#include "core/ttl.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::api {

using nlohmann::json;

namespace {

constexpr const char* k_preview_cookie = "idp_preview";
constexpr const char* k_share_cookie = "idp_share";
constexpr const char* k_share_param = "idp_share";
constexpr util::Millis k_share_max_ttl_ms = 30LL * 86'400'000;
constexpr util::Millis k_share_default_ttl_ms = 86'400'000;

std::string preview_cookie_value(const std::string& header, const std::string& name) {
  for (const auto& part : util::split(header, ';')) {
    std::string p = util::trim(part);
    if (util::starts_with(p, name + "=")) {
      return p.substr(name.size() + 1);
    }
  }
  return "";
}

// "Host:port" → lowercase host without the port.
std::string bare_host(const std::string& host) {
  std::string h = util::to_lower(host);
  auto colon = h.rfind(':');
  return colon == std::string::npos || h.find(']') != std::string::npos ? h : h.substr(0, colon);
}

bool is_label(const std::string& s) {
  return !s.empty() && s.size() <= 63 && s.front() != '-' && s.back() != '-' &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

// A path on the same host to send a browser back to: one leading '/', no scheme-relative
// "//host" or "/\host" (browsers read both as another host), no control characters.
bool is_local_path(const std::string& p) {
  if (p.empty() || p.front() != '/' || p.size() > 4096) {
    return false;
  }
  if (p.size() > 1 && (p[1] == '/' || p[1] == '\\')) {
    return false;
  }
  return std::none_of(p.begin(), p.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f || c == '\\'; });
}

// The uri without its idp_share parameter (the token never stays in the address bar).
std::string without_share_param(const std::string& uri) {
  auto q = uri.find('?');
  if (q == std::string::npos) {
    return uri;
  }
  std::string kept;
  for (const auto& part : util::split(uri.substr(q + 1), '&')) {
    if (part.empty() || util::starts_with(part, std::string(k_share_param) + "=") || part == k_share_param) {
      continue;
    }
    kept += (kept.empty() ? "" : "&") + part;
  }
  std::string path = uri.substr(0, q);
  return kept.empty() ? path : path + "?" + kept;
}

std::string share_param(const std::string& uri) {
  auto q = uri.find('?');
  if (q == std::string::npos) {
    return "";
  }
  for (const auto& part : util::split(uri.substr(q + 1), '&')) {
    if (util::starts_with(part, std::string(k_share_param) + "=")) {
      return util::url_decode(part.substr(std::string(k_share_param).size() + 1));
    }
  }
  return "";
}

PreviewAnswer text_answer(int status, const std::string& body) {
  PreviewAnswer a;
  a.status = status;
  a.headers = {{"Content-Type", "text/plain; charset=utf-8"}, {"Cache-Control", "no-store"}};
  a.body = body;
  return a;
}

json grant_json(const store::PreviewGrant& g, util::Millis now) {
  std::string status = g.revoked_at != 0 ? "revoked" : g.expires_at <= now ? "expired" : "active";
  return {{"id", g.id},
          {"environment", g.env},
          {"created_by", g.created_by},
          {"created_at", util::format_iso8601(g.created_at)},
          {"expires_at", util::format_iso8601(g.expires_at)},
          {"revoked_at", g.revoked_at == 0 ? json(nullptr) : json(util::format_iso8601(g.revoked_at))},
          {"status", status}};
}

void send(httplib::Response& res, const PreviewAnswer& a) {
  res.status = a.status;
  for (const auto& [k, v] : a.headers) {
    if (k != "Content-Type") {
      res.set_header(k, v);
    }
  }
  std::string type = "text/plain; charset=utf-8";
  for (const auto& [k, v] : a.headers) {
    if (k == "Content-Type") {
      type = v;
    }
  }
  res.set_content(a.body, type);
}

} // namespace

bool is_preview_auth_path(const std::string& path) {
  return path == "/internal/preview-auth" || path == "/internal/preview-auth/callback";
}

PreviewAuth::PreviewAuth(PreviewAuthSettings settings, store::StateStore& store, Authenticator& auth,
                         util::Clock& clock)
    : m_settings(std::move(settings)), m_store(store), m_auth(auth), m_clock(clock) {
  m_settings.domain = util::to_lower(m_settings.domain);
}

void PreviewAuth::set_dashboard_url(const std::string& url) {
  std::lock_guard lock(m_mutex);
  if (m_settings.dashboard_url.empty()) {
    m_settings.dashboard_url = url;
  }
}

std::string PreviewAuth::dashboard_url() const {
  std::lock_guard lock(m_mutex);
  return m_settings.dashboard_url;
}

std::string PreviewAuth::env_of_host(const std::string& host) const {
  std::string h = bare_host(host);
  std::string suffix = "." + m_settings.domain;
  if (m_settings.domain.empty() || h.size() <= suffix.size() || !util::ends_with(h, suffix)) {
    return "";
  }
  std::string label = h.substr(0, h.size() - suffix.size());
  return is_label(label) ? label : "";
}

std::string PreviewAuth::preview_origin(const std::string& env) const {
  bool https = m_settings.https_port > 0;
  int port = https ? m_settings.https_port : m_settings.router_port;
  bool default_port = (https && port == 443) || (!https && port == 80);
  return std::string(https ? "https://" : "http://") + env + "." + m_settings.domain +
         (default_port || port == 0 ? "" : ":" + std::to_string(port));
}

std::optional<std::string> PreviewAuth::cached(const std::string& key) {
  std::lock_guard lock(m_mutex);
  auto it = m_cache.find(key);
  if (it == m_cache.end()) {
    return std::nullopt;
  }
  if (it->second.until <= m_clock.now_ms()) {
    m_cache.erase(it);
    return std::nullopt;
  }
  return it->second.identity;
}

void PreviewAuth::remember(const std::string& key, const std::string& identity, util::Millis ends_at) {
  std::lock_guard lock(m_mutex);
  if (m_cache.size() >= k_max_cached) {
    m_cache.clear(); // bounded: a flood of credentials costs re-checks, never memory
  }
  util::Millis until = m_clock.now_ms() + k_decision_ttl_ms;
  m_cache[key] = {identity, ends_at > 0 ? std::min(until, ends_at) : until};
}

void PreviewAuth::forget_decisions() {
  std::vector<std::pair<std::string, std::string>> tokens; // session key, token hash
  {
    std::lock_guard lock(m_mutex);
    m_cache.clear();
    for (const auto& [key, s] : m_sessions) {
      if (!s.token_hash.empty()) {
        tokens.emplace_back(key, s.token_hash);
      }
    }
  }
  std::vector<std::string> ended;
  for (const auto& [key, hash] : tokens) {
    if (!m_auth.authenticate_hash(hash)) {
      ended.push_back(key); // revoked or expired (or not checkable now: sign in again)
    }
  }
  {
    std::lock_guard lock(m_mutex);
    for (const auto& key : ended) {
      m_sessions.erase(key);
    }
  }
  publish_sessions();
}

namespace {

// An identity the router may write into its own config as is: Caddy expands {…} in it.
bool routable_identity(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("._:@+-").find(c) != std::string_view::npos;
  });
}

} // namespace

void PreviewAuth::publish_sessions() {
  if (!m_settings.sessions) {
    return;
  }
  std::vector<core::PreviewSession> live;
  {
    std::lock_guard lock(m_mutex);
    util::Millis now = m_clock.now_ms();
    std::erase_if(m_sessions, [now](const auto& kv) { return kv.second.expires_at <= now; });
    for (const auto& [key, s] : m_sessions) {
      if (!routable_identity(s.principal.identity)) {
        continue; // checked here, on every request
      }
      util::Millis until = s.expires_at;
      if (s.principal.expires_at > 0) {
        until = std::min(until, s.principal.expires_at);
      }
      live.push_back({s.cookie, s.principal.identity, until});
    }
  }
  m_settings.sessions->replace(std::move(live));
}

std::optional<std::string> PreviewAuth::from_bearer(const std::string& header) {
  std::string key = "b:" + util::sha256_hex(header);
  if (auto hit = cached(key)) {
    return hit;
  }
  auto p = m_auth.authenticate(header);
  if (!p) {
    return std::nullopt; // every role may view; the reason stays in the API's log
  }
  remember(key, p->identity, 0);
  return p->identity;
}

std::optional<std::string> PreviewAuth::from_session(const std::string& id) {
  std::string hash = util::sha256_hex(id);
  std::string key = "s:" + hash;
  if (auto hit = cached(key)) {
    return hit;
  }
  std::optional<Session> s;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_sessions.find(hash);
    if (it != m_sessions.end() && it->second.expires_at > m_clock.now_ms()) {
      s = it->second;
    }
  }
  if (!s) {
    return std::nullopt;
  }
  if (!s->token_hash.empty() && !m_auth.authenticate_hash(s->token_hash)) {
    return std::nullopt; // its token was revoked or expired: so is the preview session
  }
  remember(key, s->principal.identity, s->expires_at);
  return s->principal.identity;
}

std::string PreviewAuth::grant_signature(const std::string& id, const std::string& env, util::Millis expires_at) const {
  return util::to_hex(util::hmac_sha256_raw(m_settings.grant_key, id + "|" + env + "|" + std::to_string(expires_at)));
}

Expected<std::string> PreviewAuth::from_grant(const std::string& token, const std::string& env) {
  const auto refused = [] {
    return make_error(ErrorCode::unauthorized,
                      "this share link is not valid (expired, revoked, or for another preview)");
  };
  std::string key = "g:" + env + ":" + util::sha256_hex(token);
  if (auto hit = cached(key)) {
    return *hit;
  }
  auto parts = util::split(token, '.');
  if (parts.size() != 3 || token.size() > 256) {
    return refused();
  }
  auto expires = util::parse_int<int64_t>(parts[1], 1, INT64_MAX);
  // The signature binds the id, this host's environment and the expiry: a link for
  // another environment, or with its expiry pushed back, fails here without a store read.
  if (!expires || !util::constant_time_equals(parts[2], grant_signature(parts[0], env, *expires))) {
    return refused();
  }
  util::Millis now = m_clock.now_ms();
  if (*expires <= now) {
    return refused();
  }
  auto g = m_store.find_preview_grant(parts[0]);
  if (!g) {
    return make_error(ErrorCode::transient, "cannot check the share link now: " + g.error().message);
  }
  if (!*g || (*g)->env != env || (*g)->revoked_at != 0 || (*g)->expires_at <= now) {
    return refused();
  }
  std::string identity = "share:" + (*g)->id;
  remember(key, identity, (*g)->expires_at);
  return identity;
}

PreviewAnswer PreviewAuth::check(const PreviewRequest& r) {
  std::string env = env_of_host(r.host);
  if (env.empty()) {
    return text_answer(404, "no preview environment at this address\n");
  }
  if (!r.lookup) {
    return check_access(r, env);
  }
  auto target = m_settings.routes ? m_settings.routes->get(env) : std::nullopt;
  if (!target) {
    return text_answer(404, "no preview environment at this address\n");
  }
  PreviewAnswer a;
  if (target->protect) {
    a = check_access(r, env);
    if (a.status < 200 || a.status >= 300) {
      return a;
    }
  } else {
    a.status = 200;
  }
  if (target->port > 0) {
    a.headers.push_back({"X-Idp-Kind", "proxy"});
    a.headers.push_back({"X-Idp-Upstream", "127.0.0.1:" + std::to_string(target->port)});
  } else {
    a.headers.push_back({"X-Idp-Kind", target->spa ? "spa" : "static"});
    a.headers.push_back({"X-Idp-Root", target->static_root});
  }
  return a;
}

PreviewAnswer PreviewAuth::check_access(const PreviewRequest& r, const std::string& env) {
  auto allow = [](const std::string& identity) {
    PreviewAnswer a;
    a.status = 200;
    a.headers = {{"X-Idp-User", identity}};
    return a;
  };
  // 1. A share link in the address: checked, turned into a host-only cookie, and taken out
  //    of the address (so the app never sees it and a copied address does not carry it).
  std::string share = share_param(r.uri);
  if (!share.empty()) {
    auto id = from_grant(share, env);
    if (!id) {
      return text_answer(id.error().code == ErrorCode::transient ? 503 : 403, id.error().message + "\n");
    }
    PreviewAnswer a = text_answer(303, "");
    std::string back = without_share_param(r.uri);
    a.headers.push_back({"Location", is_local_path(back) ? back : "/"});
    auto parts = util::split(share, '.');
    util::Millis left = util::parse_int<int64_t>(parts[1], 1, INT64_MAX).value_or(0) - m_clock.now_ms();
    a.headers.push_back(
        {"Set-Cookie", std::string(k_share_cookie) + "=" + share + "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" +
                           std::to_string(std::max<util::Millis>(left / 1000, 1)) + (r.https ? "; Secure" : "")});
    return a;
  }
  // 2. A token (CI, tests, scripts).
  if (!r.authorization.empty()) {
    if (auto who = from_bearer(r.authorization)) {
      return allow(*who);
    }
  }
  // 3. The preview session of a browser that signed in.
  if (std::string sid = preview_cookie_value(r.cookie, k_preview_cookie); !sid.empty() && sid.size() <= 128) {
    if (auto who = from_session(sid)) {
      return allow(*who);
    }
  }
  // 4. The cookie a share link left.
  if (std::string grant = preview_cookie_value(r.cookie, k_share_cookie); !grant.empty()) {
    if (auto who = from_grant(grant, env)) {
      return allow(*who);
    }
  }
  bool browser = (r.method == "GET" || r.method == "HEAD") && r.accept.find("text/html") != std::string::npos;
  std::string base = dashboard_url();
  if (browser && !base.empty()) {
    std::string here = std::string(r.https ? "https://" : "http://") + r.host + (is_local_path(r.uri) ? r.uri : "/");
    PreviewAnswer a = text_answer(302, "");
    a.headers.push_back({"Location", base + "/preview/signin?return=" + util::url_encode(here)});
    return a;
  }
  PreviewAnswer a = text_answer(401, "this preview needs a sign-in: send \"Authorization: Bearer <token>\" (any role), "
                                     "or open it in a browser to sign in\n");
  a.headers.push_back({"WWW-Authenticate", "Bearer realm=\"idp preview\""});
  return a;
}

Expected<std::string> PreviewAuth::handoff(const Principal& p, const std::string& token_hash,
                                           const std::string& return_url) {
  // Only http(s)://<env>.<domain>[:one of our ports]/path: anything else would make this an
  // open redirect that hands a sign-in code to someone else's host.
  const auto bad = [&return_url] {
    return make_error(ErrorCode::invalid_argument, "return: expected the address of a preview of this server, got " +
                                                       util::quote(return_url.substr(0, 200)));
  };
  std::string scheme;
  if (util::starts_with(return_url, "http://")) {
    scheme = "http";
  } else if (util::starts_with(return_url, "https://")) {
    scheme = "https";
  } else {
    return bad();
  }
  std::string rest = return_url.substr(scheme.size() + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.find_first_of("@\\?#") != std::string::npos || !is_local_path(path)) {
    return bad();
  }
  std::string host = bare_host(authority);
  std::string env = env_of_host(authority);
  if (env.empty()) {
    return bad();
  }
  int port = scheme == "https" ? 443 : 80;
  if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    auto n = util::parse_int<int>(authority.substr(colon + 1), 1, 65535);
    if (!n) {
      return bad();
    }
    port = *n;
  }
  bool ours = (scheme == "http" && port == m_settings.router_port) ||
              (scheme == "https" && m_settings.https_port > 0 && port == m_settings.https_port);
  if (!ours) {
    return bad();
  }
  std::string code = util::random_hex(32);
  {
    std::lock_guard lock(m_mutex);
    util::Millis now = m_clock.now_ms();
    std::erase_if(m_codes, [now](const auto& kv) { return kv.second.expires_at <= now; });
    if (m_codes.size() >= k_max_codes) {
      m_codes.erase(m_codes.begin());
    }
    m_codes[util::sha256_hex(code)] = {Session{"", p, token_hash, now + k_session_ttl_ms}, host, now + k_code_ttl_ms};
  }
  return scheme + "://" + authority + "/.idp/auth/callback?code=" + code + "&return=" + util::url_encode(path);
}

PreviewAnswer PreviewAuth::callback(const std::string& host, bool https, const std::string& code,
                                    const std::string& return_path) {
  std::optional<Code> c;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_codes.find(util::sha256_hex(code));
    if (it != m_codes.end()) {
      c = it->second;
      m_codes.erase(it); // single use, whatever happens next
    }
  }
  if (!c || c->expires_at <= m_clock.now_ms() || c->host != bare_host(host)) {
    return text_answer(403, "this sign-in link is unknown, already used, expired or for another preview: "
                            "open the preview again to sign in\n");
  }
  std::string id = util::random_hex(32);
  {
    std::lock_guard lock(m_mutex);
    util::Millis now = m_clock.now_ms();
    std::erase_if(m_sessions, [now](const auto& kv) { return kv.second.expires_at <= now; });
    Session s = c->session;
    s.cookie = id;
    m_sessions[util::sha256_hex(id)] = std::move(s);
  }
  publish_sessions(); // before the browser comes back with the cookie
  PreviewAnswer a = text_answer(303, "");
  a.headers.push_back({"Location", is_local_path(return_path) ? return_path : "/"});
  // Domain: every preview of this server shares the sign-in (and none other gets it).
  a.headers.push_back({"Set-Cookie", std::string(k_preview_cookie) + "=" + id + "; Domain=" + m_settings.domain +
                                         "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" +
                                         std::to_string(k_session_ttl_ms / 1000) + (https ? "; Secure" : "")});
  return a;
}

Expected<NewGrant> PreviewAuth::mint_grant(const std::string& env, util::Millis ttl_ms, const std::string& created_by) {
  NewGrant g;
  util::Millis now = m_clock.now_ms();
  g.grant.id = "shr_" + util::random_hex(6);
  g.grant.env = env;
  g.grant.created_by = created_by;
  g.grant.created_at = now;
  g.grant.expires_at = now + ttl_ms;
  IDP_TRY(m_store.insert_preview_grant(g.grant));
  g.token = g.grant.id + "." + std::to_string(g.grant.expires_at) + "." +
            grant_signature(g.grant.id, env, g.grant.expires_at);
  return g;
}

void register_preview_routes(httplib::Server& s, PreviewAuth& auth, store::StateStore& store, util::Clock& clock,
                             PreviewRouteHooks hooks) {
  s.Get("/internal/preview-auth", [&auth](const httplib::Request& req, httplib::Response& res) {
    PreviewRequest r;
    r.host = req.get_header_value("Host");
    r.uri = req.get_header_value("X-Forwarded-Uri");
    r.method = req.get_header_value("X-Forwarded-Method");
    r.accept = req.get_header_value("Accept");
    r.cookie = req.get_header_value("Cookie");
    r.authorization = req.get_header_value("Authorization");
    r.https = util::to_lower(req.get_header_value("X-Forwarded-Proto")) == "https";
    r.lookup = req.get_header_value("X-Idp-Lookup") == "1";
    send(res, auth.check(r));
  });
  s.Get("/internal/preview-auth/callback", [&auth](const httplib::Request& req, httplib::Response& res) {
    bool https = util::to_lower(req.get_header_value("X-Forwarded-Proto")) == "https";
    send(res, auth.callback(req.get_header_value("Host"), https, req.get_param_value("code"),
                            req.get_param_value("return")));
  });
  s.Get("/preview/signin", [&auth, hooks](const httplib::Request& req, httplib::Response& res) {
    auto to = auth.handoff(hooks.principal(), hooks.token_hash(), req.get_param_value("return"));
    if (!to) {
      throw ApiError::from(to.error());
    }
    res.set_header("Cache-Control", "no-store");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_redirect(*to, 303);
  });
  s.Post(R"(/api/v1/environments/([^/]+)/shares)",
         [&auth, &store, &clock, hooks](const httplib::Request& req, httplib::Response& res) {
           std::string name = req.matches[1].str();
           auto env = unwrap(store.get_environment(name));
           store::PreviewGrant probe;
           probe.env = env.name;
           hooks.authorize(probe, "share");
           util::Millis ttl = k_share_default_ttl_ms;
           if (!req.body.empty()) {
             auto body = core::parse_json_object(req.body);
             if (!body) {
               throw ApiError(400, "invalid_json", body.error().message);
             }
             if (body->contains("ttl") && !(*body)["ttl"].is_null()) {
               const json& t = (*body)["ttl"];
               Expected<util::Millis> d = make_error(ErrorCode::invalid_argument, "not a string");
               if (t.is_string()) {
                 d = core::parse_duration(t.get<std::string>());
               }
               if (!d || *d <= 0 || *d > k_share_max_ttl_ms) {
                 throw ApiError(400, "invalid_argument",
                                "field \"ttl\": expected a duration from 1m to 30d like 24h, got " +
                                    util::quote(t.is_string() ? t.get<std::string>() : t.dump()));
               }
               ttl = *d;
             }
           }
           if (env.phase == core::Phase::destroyed) {
             throw ApiError(409, "conflict", "environment " + util::quote(name) + " is destroyed");
           }
           auto g = unwrap(auth.mint_grant(env.name, ttl, hooks.principal().identity));
           core::Event ev;
           ev.env = env.name;
           ev.at = clock.now_ms();
           ev.actor = hooks.actor(req);
           ev.action = "share-create";
           ev.reason = "share link " + g.grant.id + " until " + util::format_iso8601(g.grant.expires_at);
           if (auto r = store.append_event(ev); !r) {
             spdlog::error("api: cannot record share link {}: {}", g.grant.id, r.error().message);
           }
           json out = grant_json(g.grant, clock.now_ms());
           out["url"] = auth.preview_origin(env.name) + "/?" + k_share_param + "=" + g.token;
           send_json(res, 201, out);
         });
  s.Get(R"(/api/v1/environments/([^/]+)/shares)",
        [&store, &clock](const httplib::Request& req, httplib::Response& res) {
          std::string name = req.matches[1].str();
          unwrap(store.get_environment(name));
          json out = json::array();
          util::Millis now = clock.now_ms();
          for (const auto& g : unwrap(store.list_preview_grants(name))) {
            out.push_back(grant_json(g, now));
          }
          send_json(res, 200, {{"shares", out}});
        });
  s.Delete(R"(/api/v1/shares/([^/]+))",
           [&auth, &store, &clock, hooks](const httplib::Request& req, httplib::Response& res) {
             std::string id = req.matches[1].str();
             auto found = unwrap(store.find_preview_grant(id));
             if (!found) {
               throw ApiError(404, "not_found", "share link " + util::quote(id) + " not found");
             }
             hooks.authorize(*found, "revoke a share link of");
             util::Millis now = clock.now_ms();
             auto g = unwrap(store.revoke_preview_grant(id, now));
             auth.forget_decisions(); // from the next request on, the link is refused
             core::Event ev;
             ev.env = g.env;
             ev.at = now;
             ev.actor = hooks.actor(req);
             ev.action = "share-revoke";
             ev.reason = "share link " + g.id;
             if (auto r = store.append_event(ev); !r) {
               spdlog::error("api: cannot record the revocation of share link {}: {}", g.id, r.error().message);
             }
             send_json(res, 200, grant_json(g, now));
           });
}

} // namespace idp::api
