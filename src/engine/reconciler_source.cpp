// The worker's half of an asynchronous create or redeploy (engine/create_resolution.hpp):
// the environment is stored first (desired state before any action), then the worker that
// holds its lease fetches the branch (or the commit a redeploy names), reads the config and
// records both before the deploy. A worker killed in the middle leaves the environment as it was stored, so the next
// holder of the lease (after a restart: the dead owner's lease is broken) starts again.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/controller.hpp"
#include "engine/reconciler.hpp"
#include "util/failpoint.hpp"
#include "util/strings.hpp"

namespace idp::engine {

using core::Desired;
using core::Environment;
using core::Event;
using core::Phase;

void Reconciler::set_create_resolver(CreateResolver resolver) { m_create_resolver = std::move(resolver); }

void Reconciler::set_repo_reader(RepoFileReader reader) { m_repo_reader = std::move(reader); }

Expected<nlohmann::json> Reconciler::template_values_for(const Environment& env, const core::AppConfig& cfg,
                                                         const std::vector<std::string>& components) const {
  nlohmann::json values = nlohmann::json::object();
  const std::string& seed = cfg.database.seed;
  if (!m_repo_reader || seed.empty() ||
      std::find(components.begin(), components.end(), "database") == components.end()) {
    return values;
  }
  auto content = m_repo_reader(env.repo, env.commit, seed);
  if (!content) {
    return Unexpected(content.error().with_context("database.seed " + util::quote(seed) + " at commit " +
                                                   util::short_commit(env.commit)));
  }
  if (*content) {
    values["database_seed"] = std::move(**content); // absent: the driver says the file is missing
  }
  return values;
}

std::optional<Environment> Reconciler::resolve_source(const Environment& env, Operation& op) {
  static const std::string k_engine = "engine";
  const std::string name = env.name;
  const int64_t gen = env.generation;
  auto still_waiting = [gen](const Environment& e) -> Expected<void> {
    if (e.generation != gen || e.desired != Desired::present || !awaits_source(e)) {
      return make_error(ErrorCode::conflict, "superseded"); // a push, a redeploy or a destroy came first
    }
    return {};
  };
  auto marked = write_env(op, "mark fetching", [&](Environment& e, std::vector<Event>&) -> Expected<void> {
    IDP_TRY(still_waiting(e));
    e.message = (e.redeploy_ref && !e.redeploy_ref->empty() ? "fetching commit " + *e.redeploy_ref
                                                            : "fetching branch " + util::quote(e.branch)) +
                " of " + util::quote(e.repo);
    return {};
  });
  if (!marked) {
    return std::nullopt; // superseded (the loop looks again) or the lease is gone
  }
  Expected<CreateResolution> res =
      m_create_resolver
          ? m_create_resolver(*marked)
          : Expected<CreateResolution>(make_error(ErrorCode::internal, "this server resolves no sources"));
  if (res && IDP_FAILPOINT("engine.create.resolved")) { // fetched, not yet recorded (docs/hacking.md)
    res = Unexpected(util::failpoint_error("engine.create.resolved"));
  }
  util::Millis now = m_clock.now_ms();
  if (op.lease_lost) {
    spdlog::warn("{}: lease lost while fetching its source; leaving the environment to its new holder", name);
    return std::nullopt;
  }
  if (!res) {
    const Error& err = res.error();
    // A missing branch or an invalid config stays so until something changes (a push,
    // `idp redeploy`); a clone that failed (the network, the server) is retried.
    bool permanent = err.code == ErrorCode::permanent || err.code == ErrorCode::invalid_config ||
                     err.code == ErrorCode::invalid_argument;
    (void)write_env(op, "record failed fetch", // retried; outcome logged by write_env
                    [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                      IDP_TRY(still_waiting(e));
                      e.attempts += 1;
                      e.updated_at = now;
                      if (!e.deployed_commit.empty()) {
                        // A redeploy of a serving environment: it keeps serving what it
                        // served (its config and template were never replaced).
                        std::string msg = "redeploy failed: " + err.full_message() + "; still serving " +
                                          util::short_commit(e.deployed_commit);
                        if (permanent) {
                          // Given up: the environment is whole again (the serving commit is
                          // the desired one), and this generation is done with.
                          e.commit = e.deployed_commit;
                          e.redeploy_ref.reset();
                          e.observed_generation = std::max(e.observed_generation, gen);
                          e.next_attempt_at = 0;
                          e.message = msg;
                        } else {
                          util::Millis delay = backoff_delay(m_options, e.attempts);
                          e.next_attempt_at = now + delay;
                          e.message = msg + " (attempt " + std::to_string(e.attempts) + ", retrying in " +
                                      util::format_duration(delay) + ")";
                        }
                        events.push_back(engine_event(e, now, "reject", msg));
                        return {};
                      }
                      if (permanent) {
                        e.observed_generation = std::max(e.observed_generation, gen);
                        e.next_attempt_at = 0;
                        e.message = err.full_message();
                      } else {
                        util::Millis delay = backoff_delay(m_options, e.attempts);
                        e.next_attempt_at = now + delay;
                        e.message = err.full_message() + " (attempt " + std::to_string(e.attempts) + ", retrying in " +
                                    util::format_duration(delay) + ")";
                      }
                      set_phase(e, Phase::failed, k_engine, err.full_message(), events, now);
                      return {};
                    });
    spdlog::warn("{}: cannot resolve branch {} of {}: {}", name, util::quote(env.branch), util::quote(env.repo),
                 err.full_message());
    return std::nullopt;
  }
  auto resolved =
      write_env(op, "record fetched source", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
        IDP_TRY(still_waiting(e));
        e.commit = res->commit;
        e.redeploy_ref.reset();
        e.config_json = res->config_json;
        e.template_name = res->template_name;
        if (e.expires_at == 0) {
          e.expires_at = now + res->ttl; // the life the config asks for starts now
        }
        e.attempts = 0;
        e.next_attempt_at = 0;
        e.message = "";
        e.updated_at = now;
        events.push_back(engine_event(e, now, "fetch",
                                      "branch " + util::quote(e.branch) + " at " + util::short_commit(e.commit) +
                                          ", template " + e.template_name + ", expires " +
                                          util::format_iso8601(e.expires_at)));
        return {};
      });
  if (!resolved) {
    return std::nullopt;
  }
  spdlog::info("{}: branch {} is at {}", name, util::quote(env.branch), util::short_commit(res->commit));
  return *resolved;
}

} // namespace idp::engine
