#include "api/dashboard_routes.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "api/api_error.hpp"
#include "core/schedule.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::api {

extern const char* const k_asset_dashboard_html;
extern const char* const k_asset_dashboard_js;
extern const char* const k_asset_dashboard_css;
extern const char* const k_asset_login_html;

namespace {

constexpr const char* k_oauth_cookie = "idp_oauth";
constexpr const char* k_next_cookie = "idp_next"; // where a sign-in goes afterwards (a preview's hand-off)

// Only the preview hand-off may follow a sign-in: any other target would be an open redirect.
bool is_next_target(const std::string& next) {
  return util::starts_with(next, "/preview/signin?") && next.find_first_of("\\\r\n") == std::string::npos;
}
constexpr const char* k_csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                              "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

void secure_headers(httplib::Response& res) {
  res.set_header("Content-Security-Policy", k_csp);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer"); // the callback URL carries the code
  res.set_header("Cache-Control", "no-store");
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

std::string request_cookie(const httplib::Request& req, const std::string& name) {
  for (const auto& part : util::split(req.get_header_value("Cookie"), ';')) {
    std::string p = util::trim(part);
    if (util::starts_with(p, name + "=")) {
      return p.substr(name.size() + 1);
    }
  }
  return "";
}

// A small page for a sign-in that did not work: what happened and a way back.
void send_refusal(httplib::Response& res, int status, const std::string& title, const std::string& why) {
  res.status = status;
  secure_headers(res);
  res.set_content("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                  "<title>idp: " +
                      html_escape(title) +
                      "</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\">"
                      "</head><body class=\"signin\"><main class=\"signin-box\"><h1>" +
                      html_escape(title) + "</h1><p id=\"refusal\" role=\"alert\">" + html_escape(why) +
                      "</p><p><a href=\"/login\">Back to sign-in</a></p></main></body></html>\n",
                  "text/html; charset=utf-8");
}

constexpr size_t k_preview_default_runs = 5;
constexpr size_t k_preview_max_runs = 50;
constexpr size_t k_preview_max_expression = 256;
constexpr util::Millis k_preview_last_ms = 7258118400000; // 2200-01-01: the parser's last year is 2199

// GET /api/v1/schedule-preview (the header above): 200 {expression, kind, after, runs: [{at,
// at_ms}]} or 400 with what was wrong and what was expected.
void schedule_preview(const httplib::Request& req, httplib::Response& res, util::Millis now) {
  const std::string expected = "expected a schedule expression such as rate(5 minutes) or cron(0 9 ? * MON-FRI *)";
  std::string expr = req.get_param_value("expression");
  if (util::trim(expr).empty()) {
    throw ApiError(400, "invalid_argument", "query parameter \"expression\" is missing or empty: " + expected);
  }
  if (expr.size() > k_preview_max_expression) {
    throw ApiError(400, "invalid_argument",
                   "query parameter \"expression\": " + expected + " of at most " +
                       std::to_string(k_preview_max_expression) + " characters, got " + std::to_string(expr.size()));
  }
  size_t count = k_preview_default_runs;
  if (req.has_param("count")) {
    std::string v = req.get_param_value("count");
    auto n = util::parse_int<size_t>(v, 1, 999999999);
    if (!n) {
      throw ApiError(400, "invalid_argument",
                     "query parameter \"count\": expected a whole number of runs from 1 (at most " +
                         std::to_string(k_preview_max_runs) + " are listed), got " + util::quote(v));
    }
    count = std::min(*n, k_preview_max_runs);
  }
  util::Millis after = now;
  if (req.has_param("after")) {
    std::string v = req.get_param_value("after");
    auto t = util::parse_int<util::Millis>(v, 0, k_preview_last_ms);
    if (!t) {
      throw ApiError(400, "invalid_argument",
                     "query parameter \"after\": expected a time in unix milliseconds from 0 to " +
                         std::to_string(k_preview_last_ms) + ", got " + util::quote(v));
    }
    after = *t;
  }
  if (auto err = core::Schedule::parse_error(expr)) {
    size_t column = err->position + 1;
    res.status = 400;
    nlohmann::json body = {{"error", "invalid_schedule"},
                           {"message", "at column " + std::to_string(column) + ": " + err->message},
                           {"column", column},
                           {"expression", expr}};
    res.set_content(util::json_dump(body) + "\n", "application/json");
    return;
  }
  core::Schedule schedule = unwrap(core::Schedule::parse(expr));
  nlohmann::json runs = nlohmann::json::array();
  for (util::Millis t : schedule.next_runs(after, count)) {
    runs.push_back({{"at", util::format_iso8601(t)}, {"at_ms", t}});
  }
  nlohmann::json body = {{"expression", expr},
                         {"kind", schedule.is_rate() ? "rate" : "cron"},
                         {"after", util::format_iso8601(after)},
                         {"after_ms", after},
                         {"runs", runs}};
  res.set_content(util::json_dump(body) + "\n", "application/json");
}

} // namespace

bool request_is_https(const httplib::Request& req) {
  return util::to_lower(req.get_header_value("X-Forwarded-Proto")) == "https";
}

bool is_public_dashboard_path(const std::string& path) {
  return path == "/login" || path == "/logout" || path == "/auth/config" || path == "/auth/github" ||
         path == "/auth/github/callback" || path == "/assets/dashboard.js" || path == "/assets/dashboard.css";
}

void register_dashboard_routes(httplib::Server& s, GitHubOAuth* oauth, DashboardHooks hooks) {
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    secure_headers(res);
    res.set_content(k_asset_dashboard_html, "text/html; charset=utf-8");
  });
  s.Get("/login", [](const httplib::Request&, httplib::Response& res) {
    secure_headers(res);
    res.set_content(k_asset_login_html, "text/html; charset=utf-8");
  });
  s.Get("/assets/dashboard.js", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(k_asset_dashboard_js, "text/javascript; charset=utf-8");
  });
  s.Get("/assets/dashboard.css", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(k_asset_dashboard_css, "text/css; charset=utf-8");
  });
  s.Get("/api/v1/schedule-preview", [hooks](const httplib::Request& req, httplib::Response& res) {
    schedule_preview(req, res, hooks.now_ms ? hooks.now_ms() : 0);
  });
  s.Get("/auth/config", [oauth](const httplib::Request&, httplib::Response& res) {
    res.set_content(oauth ? "{\"github\":true}\n" : "{\"github\":false}\n", "application/json");
  });
  if (!oauth) {
    return;
  }
  s.Get("/auth/github", [oauth](const httplib::Request& req, httplib::Response& res) {
    bool https = request_is_https(req);
    // The Host was checked before routing (a loopback or configured server name).
    std::string redirect_uri =
        std::string(https ? "https://" : "http://") + req.get_header_value("Host") + "/auth/github/callback";
    auto start = oauth->start(redirect_uri);
    // Binds the flow to this browser. Lax: GitHub's redirect back is a cross-site
    // navigation, which a Strict cookie would not ride along with.
    res.set_header("Set-Cookie", std::string(k_oauth_cookie) + "=" + start.state +
                                     "; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age=600" +
                                     (https ? "; Secure" : ""));
    if (std::string next = req.get_param_value("next"); is_next_target(next)) {
      res.set_header("Set-Cookie", std::string(k_next_cookie) + "=" + util::url_encode(next) +
                                       "; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age=600" +
                                       (https ? "; Secure" : ""));
    }
    secure_headers(res);
    res.set_redirect(start.authorize_url, 302);
  });
  s.Get("/auth/github/callback", [oauth, hooks](const httplib::Request& req, httplib::Response& res) {
    std::string state = req.get_param_value("state");
    std::string expected = request_cookie(req, k_oauth_cookie);
    bool https = request_is_https(req);
    std::string clear_flow = std::string(k_oauth_cookie) + "=; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age=0";
    res.set_header("Set-Cookie", clear_flow);
    if (req.has_param("error")) {
      send_refusal(res, 403, "Sign-in cancelled",
                   "GitHub did not sign you in: " + req.get_param_value("error").substr(0, 100));
      return;
    }
    if (state.empty() || expected.empty() || !util::constant_time_equals(state, expected)) {
      send_refusal(res, 400, "Sign-in failed",
                   "this sign-in did not start in this browser (its state does not match): start again");
      return;
    }
    auto done = oauth->finish(state, req.get_param_value("code"));
    if (!done) {
      spdlog::warn("dashboard: GitHub sign-in failed: {}", done.error().message);
      send_refusal(res, done.error().code == ErrorCode::transient ? 503 : 401, "Sign-in failed", done.error().message);
      return;
    }
    if (!done->decision.role) {
      spdlog::info("dashboard: GitHub sign-in refused: {}", done->decision.refusal);
      send_refusal(res, 403, "Not allowed", done->decision.refusal);
      return;
    }
    Principal p;
    p.identity = done->membership.login;
    p.role = *done->decision.role;
    p.token_id = "github";
    spdlog::info("dashboard: {} signed in with GitHub as {}", p.identity, role_name(p.role));
    res.headers.erase("Set-Cookie");
    res.set_header("Set-Cookie", clear_flow);
    res.set_header("Set-Cookie", hooks.open_session(p, https));
    std::string next = util::url_decode(request_cookie(req, k_next_cookie), false);
    if (!next.empty()) {
      res.set_header("Set-Cookie",
                     std::string(k_next_cookie) + "=; Path=/auth/github; HttpOnly; SameSite=Lax; Max-Age=0");
    }
    secure_headers(res);
    res.set_redirect(is_next_target(next) ? next : "/", 303);
  });
}

} // namespace idp::api
