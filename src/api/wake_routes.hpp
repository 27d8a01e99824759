#pragma once
// Idle sleep (issue 12): the wake handler and the sleep/wake actions.
//   GET /internal/wake   (the router of this machine only: loopback, with X-Idp-Wake-Key)
//       X-Idp-Wake-Env: NAME. Wakes the environment if it sleeps and holds the request until
//       it serves (ApiContext::wake_timeout_ms at most): 200 with X-Idp-Upstream
//       "127.0.0.1:<port>", where the router then sends the request. Past the deadline, 503
//       with Retry-After: 2 (a browser gets a small "waking up" page that reloads itself);
//       404 for no such environment; 503 with the reason when it failed to start.
//   POST /api/v1/environments/{name}/sleep  {reason?}  → 202, the environment (owner or admin)
//   POST /api/v1/environments/{name}/wake              → 202, the environment (owner or admin)

#include <string>

#include "api/server.hpp"

namespace httplib {
class Server;
struct Request;
} // namespace httplib

namespace idp::api {

inline constexpr const char* k_wake_path = "/internal/wake";

// Whether `req` may call the wake handler: from loopback, with the wake key.
bool wake_request_allowed(const httplib::Request& req, const ApiContext& ctx);

// The wake handler (only with ctx.wake_key set).
void register_wake_handler(httplib::Server& server, ApiContext& ctx);

// The actions; `env_json` renders an environment as the other routes do, and `require_owner`
// refuses (throws ApiError 403) a caller who may not act on it.
void register_sleep_routes(httplib::Server& server, ApiContext& ctx,
                           std::function<nlohmann::json(const core::Environment&)> env_json,
                           std::function<void(const core::Environment&, const std::string&)> require_owner,
                           std::function<std::string(const httplib::Request&)> actor_of);

} // namespace idp::api
