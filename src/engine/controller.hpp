#pragma once
// Controller: the only writer of desired state. Every trigger (API, webhook, poller,
// reaper) goes through it; it validates, records the change with an event, and wakes
// the reconciler. It never calls a driver's apply/destroy. Thread-safe.

#include <functional>
#include <optional>
#include <string>

#include "core/environment.hpp"
#include "engine/create_resolution.hpp"
#include "engine/driver_set.hpp"
#include "engine/options.hpp"
#include "engine/repo_resolver.hpp"
#include "engine/templates.hpp"
#include "store/state_store.hpp"
#include "util/time.hpp"

namespace idp::engine {

struct CreateRequest {
  std::string repo;
  std::string branch;
  std::string name;          // "" = derived from the branch (and tracks it)
  std::string template_name; // "" = the repo config's template
  std::string ttl;           // "" = the repo config's ttl
  std::string owner;
  std::string runtime; // "" = the server default
  std::optional<int> pr_number;
};

// A branch moved (push, PR sync, poll): deploy `commit` (or the branch head when empty).
struct BranchUpdate {
  std::string repo;
  std::string branch;
  std::string commit;
  // With a commit: deploy it only if it is still the branch head (fetched now); otherwise
  // refuse (conflict) and record why, so a stale or replayed push never rolls back.
  bool only_if_head = false;
  std::string owner;
  std::optional<int> pr_number;
  std::string default_template; // the watched repo's default template, "" = none
  std::string runtime;
  // A pull request from a fork (issue 15): `commit` is the approved head of pull request
  // fork_pr (refs/pull/<n>/head; `branch` is ignored). It is deployed only if it is still
  // that head, as an environment of profile "untrusted" (EngineOptions::untrusted) named
  // after the pull request and tracked by fork_source_key.
  std::optional<int> fork_pr;
};

// Hooks into the reconciler, so the controller does not depend on it.
struct EngineSignals {
  std::function<void(const std::string& env)> wake = [](const std::string&) {};
  // Stops an operation in flight on env that acts on an older generation than the one
  // given (0: any operation, the environment is being destroyed).
  std::function<void(const std::string& env, int64_t generation)> cancel = [](const std::string&, int64_t) {};
  // The budgets' guardrail before a create (engine/budgets.hpp): an error refuses it.
  // Unset: no budget blocks.
  std::function<Expected<void>(const std::string& repo, const std::string& owner)> admit_budget;
};

class Controller {
public:
  Controller(store::StateStore& store, util::Clock& clock, RepoResolver& repos, const TemplateCatalog& templates,
             const DriverSet& drivers, const EngineOptions& options, EngineSignals signals);

  // Validates everything (branch, name, ttl, config at the commit, template, runtime) and
  // records a new environment. invalid_argument / invalid_config / already_exists; nothing
  // is recorded on error. Fetches the repository on the calling thread.
  Expected<core::Environment> create(const CreateRequest& req, const std::string& actor);
  // The API's create (engine/create_resolution.hpp): validates what needs no repository
  // (repo and branch syntax, name, ttl, a named template and runtime, duplicates) and records
  // the environment, pending with no commit; a reconciler worker fetches the branch and
  // reads its config (resolve_create), and what fails there becomes the environment's
  // failed phase and message. Errors as create's; nothing is recorded on error.
  Expected<core::Environment> submit_create(const CreateRequest& req, const std::string& actor);
  // The repository half of a create, for an environment created by submit_create (or about
  // to be by create), and of a redeploy (env.redeploy_ref: that commit, or the branch's
  // head): the commit, the checked config there, its template, the driver's plan. No store
  // write; takes as long as a clone.
  Expected<CreateResolution> resolve_create(const core::Environment& env);
  // expires_at := max(now, expires_at) + ttl, within the policy's maximum lifetime from now.
  Expected<core::Environment> extend(const std::string& name, const std::string& ttl, const std::string& actor);
  // Deploys the environment again: at `commit` (7-40 hex digits) or, when empty, at its
  // branch's head, even when that commit is deployed or failed already (the retry a user
  // asks for). Expiry is unchanged. Like submit_create, answers once the desired state is
  // stored (a new generation, commit "" and redeploy_ref): a reconciler worker fetches and
  // reads the config there (resolve_create); what fails there is recorded on the
  // environment (a serving one keeps serving). Errors, with nothing recorded: not_found,
  // conflict (destroyed), invalid_argument (not a commit sha). Never waits on git.
  Expected<core::Environment> redeploy(const std::string& name, const std::string& commit, const std::string& actor);
  // Marks the environment for removal. Idempotent: destroying a destroyed or destroying
  // environment is ok and records nothing new.
  Expected<core::Environment> destroy(const std::string& name, const std::string& actor, const std::string& reason);
  // The reaper's destroy: marks the environment for removal only if, read inside the
  // store's transaction, it is still present and its expires_at <= now (so an extend or a
  // push that landed after the reaper listed it wins). Returns whether it was marked;
  // not_found for an unknown environment.
  Expected<bool> expire(const std::string& name, util::Millis now);
  // Create-or-redeploy the environment tracking repo+branch at a commit; moves expiry out
  // by the config's TTL. A config error at that commit records a failed phase with the
  // errors (the branch's owner sees them) and returns invalid_config.
  Expected<core::Environment> sync_branch(const BranchUpdate& upd, const std::string& actor, const std::string& reason);
  // Destroys the environment tracking repo+branch, if any. ok(nullopt) when none.
  Expected<std::optional<core::Environment>> remove_branch(const std::string& repo, const std::string& branch,
                                                           const std::string& actor, const std::string& reason);
  // QA freeze (issue 12): the environment keeps its commit; pushes to its branch move its
  // expiry out and are remembered, not deployed; a redeploy is refused. `until` 0 = until
  // unfreeze. Freezing a frozen environment changes its reason and end, and keeps what is
  // waiting. conflict for a destroyed environment.
  Expected<core::Environment> freeze(const std::string& name, util::Millis until, const std::string& reason,
                                     const std::string& actor);
  // Ends the freeze and deploys the newest commit pushed meanwhile (a redeploy of it: a
  // worker fetches it and reads its config). Ok and unchanged when not frozen.
  Expected<core::Environment> unfreeze(const std::string& name, const std::string& actor, const std::string& why);
  // Idle sleep (issue 12): asks the driver to stop a ready environment's processes (its
  // database, files and URL stay); the first request to its URL, or wake(), starts it
  // again. `by` names who decided ("idle", "cli:alice", "budget:<name>", "limits"). Ok and
  // unchanged when already asleep or on the way; conflict when it is not ready.
  Expected<core::Environment> sleep(const std::string& name, const std::string& by, const std::string& reason,
                                    const std::string& actor);
  // Ends a sleep: the serving revision starts again. Ok and unchanged when awake.
  Expected<core::Environment> wake(const std::string& name, const std::string& actor, const std::string& reason);
  // Destroys the environment of pull request `pr` from a fork of `repo`, if any.
  Expected<std::optional<core::Environment>> remove_fork(const std::string& repo, int pr, const std::string& actor,
                                                         const std::string& reason);

  // What an environment of req.repo/req.branch (its head, fetched now) would be applied as
  // on req.runtime (the server's default when empty), as the driver renders it (idp
  // render): the environment's name (the one tracking the branch, else the branch's),
  // the commit, the template and the manifests. Records nothing, applies nothing, needs no
  // cluster. Errors as create's; invalid_argument for a runtime that cannot render.
  struct Rendered {
    std::string name;
    std::string runtime;
    std::string commit;
    std::string template_name;
    std::string manifests;
  };
  Expected<Rendered> render(const CreateRequest& req);

  // Config of `repo` at `commit` checked against its template and (with check_ttl) the TTL
  // policy, by the rules `idp config validate` applies; for create and sync.
  struct Resolved {
    core::AppConfig config;
    Template tmpl;
    std::string config_json;
  };
  // With `untrusted`, the config is then bound by the untrusted profile (apply_untrusted).
  Expected<Resolved> resolve_config(const std::string& repo, const std::string& commit,
                                    const std::string& template_override, const std::string& default_template,
                                    bool check_ttl = true, bool untrusted = false);
  // The untrusted profile over a checked config: cpu and memory capped at
  // EngineOptions::untrusted, no secrets, no public preview, the profile's TTL. Returns
  // what it changed, for the events ("" = nothing).
  std::string apply_untrusted(Resolved& r) const;

  static std::string source_key(const std::string& repo, const std::string& branch);
  // The source key of the environment of a fork's pull request: no branch can have it (a
  // space is not allowed in a branch name), so it never clashes with a branch of the repo.
  static std::string fork_source_key(const std::string& repo, int pr);

private:
  // The checks of a create that need no repository, and the environment they describe
  // (everything but its source).
  Expected<core::Environment> new_environment(const CreateRequest& req, util::Millis now);
  Expected<std::string> pick_name(const std::string& base, const std::string& identity);
  // sync_branch for a fork's pull request (upd.fork_pr), and the create-or-redeploy both
  // share: the environment of source `key` at `commit`.
  Expected<core::Environment> sync_fork(const BranchUpdate& upd, const std::string& actor, const std::string& reason);
  Expected<core::Environment> sync_source(const BranchUpdate& upd, const std::string& repo, const std::string& commit,
                                          const std::string& key, const std::string& actor, const std::string& reason);
  Expected<void> plan(const core::Environment& env, const Resolved& r);
  // The driver of env.runtime and what it would be handed for `r` (the template must have
  // parts for the runtime).
  Expected<std::pair<drivers::Driver*, drivers::DeploySpec>> spec_for(const core::Environment& env,
                                                                      const Resolved& r) const;

  store::StateStore& m_store;
  util::Clock& m_clock;
  RepoResolver& m_repos;
  const TemplateCatalog& m_templates;
  const DriverSet& m_drivers;
  const EngineOptions& m_options;
  EngineSignals m_signals;
};

// Appends a phase-change event and sets the phase (no-op event when unchanged).
void set_phase(core::Environment& env, core::Phase to, const std::string& actor, const std::string& reason,
               std::vector<core::Event>& events, util::Millis now);

} // namespace idp::engine
