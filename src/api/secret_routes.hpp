#pragma once
// The server's secret store over HTTP (issue 9; admin tokens only, see required_role):
//   GET    /api/v1/secrets[?repo=R]        {secrets: [{name, repos, source, from, updated_by, updated_at}]}
//   POST   /api/v1/secrets/{name}          {value, repo?} → {name, repos, source, updated_by, updated_at}
//   DELETE /api/v1/secrets/{name}[?repo=R] → {name, repos, deleted: true}
// No answer ever holds a value; set and remove are recorded as events (name and scope only).

#include <functional>
#include <string>

#include "api/server.hpp"

namespace httplib {
class Server;
struct Request;
} // namespace httplib

namespace idp::api {

struct SecretRouteHooks {
  // Who asks (the audit actor of the request being served).
  std::function<std::string(const httplib::Request&)> actor;
  // The token's identity (recorded as the secret's updated_by).
  std::function<std::string()> identity;
};

// Adds the routes above to `server` when ctx.secrets is set.
void register_secret_routes(httplib::Server& server, ApiContext& ctx, SecretRouteHooks hooks);

} // namespace idp::api
