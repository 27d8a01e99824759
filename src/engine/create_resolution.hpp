#pragma once
// Asynchronous create. An API create is answered once its desired state is stored
// (Controller::submit_create): what needs the repository (the clone or fetch, the branch's
// commit, .idp/config.yml there, the template it names, the driver's plan) is done after,
// by a reconciler worker that holds the environment's lease (Reconciler::set_create_resolver).
// Until then the environment is pending with an empty `commit`; its template_name is the
// one the request named ("" = the config's), and expires_at is 0 when the request named no
// TTL (the config's TTL is applied once it is read; the reaper skips an expires_at of 0).
// A redeploy (Controller::redeploy) is asynchronous the same way: it stores a new generation
// with an empty `commit` and Environment::redeploy_ref (the commit asked for, "" = the
// branch's head), and the same worker step resolves it; a serving environment keeps serving
// meanwhile, and keeps serving what it served when the fetch or the config fails.

#include <functional>
#include <string>

#include "core/environment.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::engine {

// What the worker found for an environment awaiting its source.
struct CreateResolution {
  std::string commit;        // the branch's head, full sha
  std::string config_json;   // the validated config at that commit
  std::string template_name; // the template it runs
  util::Millis ttl = 0;      // the config's TTL, applied when the request named none
};

// The network half of a create: no store write, may take as long as a clone. Errors:
// transient (git could not clone or fetch), invalid_config (no such branch, a config or
// template error), invalid_argument.
using CreateResolver = std::function<Expected<CreateResolution>(const core::Environment&)>;

// True for an environment whose source is not resolved yet (an API create or a redeploy).
inline bool awaits_source(const core::Environment& env) { return env.commit.empty(); }

} // namespace idp::engine
