#pragma once
// idp exec over HTTP (docs/api.md "Exec sessions"). An exec session is a command started in
// an environment whose output is streamed as it comes and whose input arrives in chunks:
//   POST   /api/v1/environments/{env}/exec/sessions            {argv, tty, timeout, rows, cols} → 201 {id, ...}
//   GET    /api/v1/environments/{env}/exec/sessions/{id}/stream  NDJSON frames: {stream, data (base64)},
//          {event: "ping"} while quiet, then {event: "exit", exit_code, signal, timed_out}
//   POST   .../sessions/{id}/stdin   {data (base64), eof}       POST .../sessions/{id}/resize {rows, cols}
//   DELETE .../sessions/{id}                                    stops the command
//   POST   /api/v1/environments/{env}/exec  {argv} → {stdout, stderr, exit_code, signal, timed_out}: one-shot
// The command is stopped (its whole process group) at its deadline, when the stream's client
// goes away, when no client attaches in time, and when the server stops: none outlives its session.

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "api/server.hpp"
#include "core/environment.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace idp::api {

struct ExecRouteHooks {
  // Throws ApiError (403) unless the request's principal may exec in `env`. Called on the
  // handler's thread (the principal is per request).
  std::function<void(const core::Environment& env, const std::string& what)> authorize;
  // Who asks (for the server's log).
  std::function<std::string(const httplib::Request&)> actor;
  const std::atomic<bool>* stopping = nullptr; // set when the server stops: streams end
  // Takes one of the server's stream slots (max_streams; the stream then runs outside the
  // request threads) or answers 503 and returns false. Unset: no slot is taken.
  std::function<bool(httplib::Response&)> claim_stream;
  // The values of the environment's secrets: replaced by "***" in the command's output
  // (util/redact.hpp; a value split across reads is still caught unless the command pauses
  // mid-value). Unset: nothing is redacted.
  std::function<std::vector<std::string>(const core::Environment& env)> secret_values;
  size_t max_sessions = 16; // running exec sessions (at most half the API's threads); 503 beyond
};

// Adds the routes above to `server`. The sessions live as long as the server's handlers;
// destroying them stops every command that is left.
void register_exec_routes(httplib::Server& server, ApiContext& ctx, ExecRouteHooks hooks);

} // namespace idp::api
