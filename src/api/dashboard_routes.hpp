#pragma once
// The web dashboard's routes (docs/dashboard.md): the single-page app and its assets
// (compiled in from src/api/assets/), the sign-in page, and Sign in with GitHub:
//   GET /                        the app (needs a session; a browser without one goes to /login)
//   GET /assets/dashboard.{js,css}, GET /login, GET /auth/config   public: code, no data
//   GET /auth/github             → GitHub's authorize page (state + PKCE), sets idp_oauth
//   GET /auth/github/callback    → a session cookie and /, or a 403 page that says why
//   GET /api/v1/schedule-preview?expression=E[&count=N][&after=MS]   the Templates page's
//       schedule preview: the next N (default 5, at most 50) runs of E after MS (unix ms,
//       default now), or 400 invalid_schedule with the 1-based column of the error
// Every page is sent with a Content-Security-Policy that allows only this server's own
// scripts and styles: no inline script, so text that slipped into markup could not run.

#include <functional>
#include <string>

#include "api/oauth.hpp"
#include "api/server.hpp"
#include "util/time.hpp"

namespace httplib {
class Server;
struct Request;
} // namespace httplib

namespace idp::api {

struct DashboardHooks {
  // Opens a session for `p` and returns the Set-Cookie header value that carries it.
  std::function<std::string(const Principal& p, bool https)> open_session;
  // The server's clock (unix ms): the schedule preview's default start.
  std::function<util::Millis()> now_ms;
};

// Adds the routes above. `oauth` null: no GitHub sign-in (the /auth/github routes answer
// 404 and the sign-in page offers tokens only). `oauth` must outlive the server.
void register_dashboard_routes(httplib::Server& server, GitHubOAuth* oauth, DashboardHooks hooks);

// Paths served without a session or token (the sign-in flow and static code).
bool is_public_dashboard_path(const std::string& path);

// Whether the request came over HTTPS (directly or through the router's Caddy).
bool request_is_https(const httplib::Request& req);

} // namespace idp::api
