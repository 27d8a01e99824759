#include "engine/controller.hpp"

#include <spdlog/spdlog.h>

#include "core/names.hpp"
#include "core/ttl.hpp"
#include "util/git.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::engine {

using core::Desired;
using core::Environment;
using core::Event;
using core::Phase;

namespace {

Event make_event(const Environment& env, util::Millis now, const std::string& actor, const std::string& action,
                 const std::string& reason) {
  Event e;
  e.env = env.name;
  e.at = now;
  e.actor = actor;
  e.action = action;
  e.reason = reason;
  e.from_phase = std::string(core::phase_name(env.phase));
  e.to_phase = e.from_phase;
  return e;
}

Expected<void> validate_repo(const std::string& repo) {
  if (repo.empty()) {
    return make_error(ErrorCode::invalid_argument, "repo is required: a git URL or a local path");
  }
  if (repo.front() == '-' || repo.size() > 2048 ||
      std::any_of(repo.begin(), repo.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid repo " + util::quote(repo) + ": expected a git URL or a local path");
  }
  return {};
}

Expected<void> validate_branch(const std::string& branch) {
  if (branch.empty()) {
    return make_error(ErrorCode::invalid_argument, "branch is required");
  }
  if (!util::is_valid_git_branch(branch) || branch.size() > 255) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid branch name " + util::quote(branch) + ": not a valid git branch name");
  }
  return {};
}

} // namespace

void set_phase(Environment& env, Phase to, const std::string& actor, const std::string& reason,
               std::vector<Event>& events, util::Millis now) {
  if (env.phase == to) {
    return;
  }
  Event e;
  e.env = env.name;
  e.at = now;
  e.actor = actor;
  e.action = "phase";
  e.reason = reason;
  e.from_phase = std::string(core::phase_name(env.phase));
  e.to_phase = std::string(core::phase_name(to));
  events.push_back(std::move(e));
  env.phase = to;
}

Controller::Controller(store::StateStore& store, util::Clock& clock, RepoResolver& repos,
                       const TemplateCatalog& templates, const DriverSet& drivers, const EngineOptions& options,
                       EngineSignals signals)
    : m_store(store), m_clock(clock), m_repos(repos), m_templates(templates), m_drivers(drivers), m_options(options),
      m_signals(std::move(signals)) {}

std::string Controller::source_key(const std::string& repo, const std::string& branch) { return repo + "\n" + branch; }

std::string Controller::fork_source_key(const std::string& repo, int pr) {
  return repo + "\nfork pull request #" + std::to_string(pr);
}

std::string Controller::apply_untrusted(Resolved& r) const {
  const auto& lim = m_options.untrusted;
  std::vector<std::string> changed;
  if (r.config.cpu > lim.cpu) {
    changed.push_back("cpu " + std::to_string(r.config.cpu) + " capped at " + std::to_string(lim.cpu));
    r.config.cpu = lim.cpu;
  }
  if (r.config.memory > lim.memory) {
    changed.push_back("memory " + std::to_string(r.config.memory) + " capped at " + std::to_string(lim.memory));
    r.config.memory = lim.memory;
  }
  if (!r.config.secrets.empty()) {
    std::vector<std::string> names;
    for (const auto& [var, name] : r.config.secrets) {
      names.push_back(var);
    }
    changed.push_back("secrets not given to a fork: " + util::join(names, ", "));
    r.config.secrets.clear();
  }
  if (r.config.public_preview) {
    changed.push_back("public: true ignored (a fork's preview always needs a sign-in)");
    r.config.public_preview = false;
  }
  r.config.ttl = core::format_ttl(lim.ttl);
  r.config.ttl_ms = lim.ttl;
  r.config_json = util::json_dump(core::to_json(r.config));
  return util::join(changed, "; ");
}

Expected<Controller::Resolved> Controller::resolve_config(const std::string& repo, const std::string& commit,
                                                          const std::string& template_override,
                                                          const std::string& default_template, bool check_ttl,
                                                          bool untrusted) {
  IDP_TRY_ASSIGN(auto text, m_repos.read_file(repo, commit, ".idp/config.yml"));
  // The same rules as `idp config validate` (core::validate_app_config), every error at once.
  core::AppConfigRules rules;
  rules.templates = m_templates.list();
  rules.ttl_policy = m_options.ttl_policy;
  rules.check_ttl = check_ttl;
  auto checked =
      core::validate_app_config(text ? *text : "", rules, ".idp/config.yml", template_override, default_template);
  if (!checked.ok()) {
    std::vector<std::string> lines;
    for (const auto& e : checked.errors) {
      lines.push_back(e.to_string());
    }
    return make_error(ErrorCode::invalid_config, util::join(lines, "\n"));
  }
  Resolved r;
  r.config = std::move(checked.config);
  IDP_TRY_ASSIGN(auto tmpl, core::find_template(rules.templates, r.config.template_name));
  r.tmpl = std::move(tmpl);
  r.config_json = util::json_dump(core::to_json(r.config));
  if (untrusted) {
    apply_untrusted(r);
  }
  return r;
}

Expected<std::string> Controller::pick_name(const std::string& base, const std::string& identity) {
  auto taken = [&](const std::string& n) -> Expected<bool> {
    auto e = m_store.get_environment(n);
    if (!e) {
      if (e.error().code == ErrorCode::not_found) {
        return false;
      }
      return Unexpected(e.error());
    }
    return e->phase != Phase::destroyed && e->source_key != identity;
  };
  IDP_TRY_ASSIGN(bool base_taken, taken(base));
  if (!base_taken) {
    return base;
  }
  std::string alt = core::env_name_with_suffix(base, identity);
  IDP_TRY_ASSIGN(bool alt_taken, taken(alt));
  if (alt_taken) {
    return make_error(ErrorCode::conflict,
                      "environment names " + util::quote(base) + " and " + util::quote(alt) + " are both taken");
  }
  return alt;
}

Expected<std::pair<drivers::Driver*, drivers::DeploySpec>> Controller::spec_for(const Environment& env,
                                                                                const Resolved& r) const {
  if (std::find(r.tmpl.runtimes.begin(), r.tmpl.runtimes.end(), env.runtime) == r.tmpl.runtimes.end()) {
    return make_error(ErrorCode::invalid_config, "template " + util::quote(r.tmpl.name) + " has no parts for runtime " +
                                                     util::quote(env.runtime) + " (it supports " +
                                                     util::join(r.tmpl.runtimes, ", ") + ")");
  }
  IDP_TRY_ASSIGN(drivers::Driver * driver, m_drivers.get(env.runtime));
  drivers::DeploySpec spec;
  spec.env = env;
  spec.config = r.config;
  spec.components = r.tmpl.components;
  spec.template_dir = r.tmpl.dir;
  return std::pair<drivers::Driver*, drivers::DeploySpec>{driver, std::move(spec)};
}

Expected<void> Controller::plan(const Environment& env, const Resolved& r) {
  IDP_TRY_ASSIGN(auto planned, spec_for(env, r));
  return planned.first->plan(planned.second);
}

Expected<Controller::Rendered> Controller::render(const CreateRequest& req) {
  IDP_TRY(validate_repo(req.repo));
  IDP_TRY(validate_branch(req.branch));
  if (!req.name.empty()) {
    IDP_TRY(core::validate_env_name(req.name));
  }
  Environment env;
  env.repo = RepoResolver::canonical_repo(req.repo);
  env.branch = req.branch;
  env.runtime = req.runtime.empty() ? m_options.default_runtime : req.runtime;
  IDP_TRY(m_drivers.get(env.runtime));
  if (!req.template_name.empty()) {
    if (auto tmpl = m_templates.get(req.template_name); !tmpl) {
      return make_error(ErrorCode::invalid_config, tmpl.error().message);
    }
  }
  util::Millis ttl = 0;
  if (!req.ttl.empty()) {
    IDP_TRY_ASSIGN(ttl, m_options.ttl_policy.parse(req.ttl));
  }
  IDP_TRY_ASSIGN(env.commit, m_repos.resolve_branch(env.repo, env.branch));
  IDP_TRY_ASSIGN(Resolved r,
                 resolve_config(env.repo, env.commit, req.template_name, m_options.default_template, ttl == 0));
  if (ttl == 0) {
    IDP_TRY_ASSIGN(ttl, m_options.ttl_policy.parse(r.config.ttl));
  }
  env.name = req.name;
  if (env.name.empty()) {
    IDP_TRY_ASSIGN(auto tracked, m_store.find_by_source_key(source_key(env.repo, env.branch)));
    env.name = tracked ? tracked->name : core::env_name_for_branch(env.branch);
  }
  env.template_name = r.tmpl.name;
  env.config_json = r.config_json;
  env.owner = req.owner;
  env.pr_number = req.pr_number;
  env.created_at = m_clock.now_ms();
  env.updated_at = env.created_at;
  env.expires_at = env.created_at + ttl;
  IDP_TRY_ASSIGN(auto planned, spec_for(env, r));
  planned.second.revision_id = 1;
  IDP_TRY_ASSIGN(std::string manifests, planned.first->render(planned.second));
  return Rendered{env.name, env.runtime, env.commit, env.template_name, std::move(manifests)};
}

Expected<Environment> Controller::new_environment(const CreateRequest& req, util::Millis now) {
  IDP_TRY(validate_repo(req.repo));
  IDP_TRY(validate_branch(req.branch));
  if (!req.name.empty()) {
    IDP_TRY(core::validate_env_name(req.name));
  }
  util::Millis ttl = 0;
  if (!req.ttl.empty()) {
    IDP_TRY_ASSIGN(ttl, m_options.ttl_policy.parse(req.ttl));
  }
  Environment env;
  env.repo = RepoResolver::canonical_repo(req.repo);
  env.branch = req.branch;
  env.runtime = req.runtime.empty() ? m_options.default_runtime : req.runtime;
  IDP_TRY(m_drivers.get(env.runtime));
  env.template_name.clear(); // the config's, until the request names one
  if (!req.template_name.empty()) {
    auto tmpl = m_templates.get(req.template_name);
    if (!tmpl) {
      return make_error(ErrorCode::invalid_config, tmpl.error().message);
    }
    if (std::find(tmpl->runtimes.begin(), tmpl->runtimes.end(), env.runtime) == tmpl->runtimes.end()) {
      return make_error(ErrorCode::invalid_config, "template " + util::quote(tmpl->name) +
                                                       " has no parts for runtime " + util::quote(env.runtime) +
                                                       " (it supports " + util::join(tmpl->runtimes, ", ") + ")");
    }
    env.template_name = tmpl->name;
  }
  env.owner = req.owner;
  env.pr_number = req.pr_number;
  if (m_signals.admit_budget) {
    IDP_TRY(m_signals.admit_budget(env.repo, env.owner)); // nothing recorded when refused
  }
  env.created_at = now;
  env.updated_at = now;
  env.expires_at = ttl > 0 ? now + ttl : 0; // 0: the config's TTL, once it is read
  if (!req.name.empty()) {
    env.name = req.name;
    auto existing = m_store.get_environment(req.name);
    if (existing && existing->phase != Phase::destroyed) {
      return make_error(ErrorCode::already_exists, "environment " + util::quote(req.name) + " already exists");
    }
  } else {
    env.source_key = source_key(env.repo, req.branch);
    IDP_TRY_ASSIGN(auto tracked, m_store.find_by_source_key(env.source_key));
    if (tracked) {
      return make_error(ErrorCode::already_exists,
                        "environment " + util::quote(tracked->name) + " already tracks branch " +
                            util::quote(req.branch) + " of " + util::quote(env.repo) +
                            "; to deploy its latest commit run: idp redeploy " + tracked->name);
    }
    IDP_TRY_ASSIGN(env.name, pick_name(core::env_name_for_branch(req.branch), env.source_key));
  }
  return env;
}

Expected<CreateResolution> Controller::resolve_create(const Environment& env) {
  const bool redeploy = env.redeploy_ref.has_value();
  std::string commit;
  if (redeploy && !env.redeploy_ref->empty()) {
    IDP_TRY_ASSIGN(commit, m_repos.resolve_commit(env.repo, *env.redeploy_ref));
  } else {
    IDP_TRY_ASSIGN(commit, m_repos.resolve_branch(env.repo, env.branch));
  }
  // An environment created without a TTL (its first fetch failed) gets the config's now.
  bool ttl_from_config = env.expires_at == 0;
  // A create's template (from `idp create --template`) overrides the config's. A redeploy
  // takes the config's, and keeps the environment's when the config names none; a create
  // whose config was refused never got a template, so the server's default applies then.
  std::string override_template = redeploy ? "" : env.template_name;
  std::string default_template =
      redeploy && !env.template_name.empty() ? env.template_name : m_options.default_template;
  IDP_TRY_ASSIGN(Resolved r, resolve_config(env.repo, commit, override_template, default_template,
                                            ttl_from_config && !env.untrusted(), env.untrusted()));
  if (env.untrusted()) {
    ttl_from_config = false; // the profile's TTL, set when the environment was made
  }
  CreateResolution out;
  if (ttl_from_config) {
    auto ttl = m_options.ttl_policy.parse(r.config.ttl);
    if (!ttl) {
      return make_error(ErrorCode::invalid_config, ".idp/config.yml: key \"ttl\": " + ttl.error().message);
    }
    out.ttl = *ttl;
  }
  Environment probe = env;
  probe.commit = commit;
  probe.template_name = r.tmpl.name;
  probe.config_json = r.config_json;
  IDP_TRY(plan(probe, r));
  out.commit = commit;
  out.config_json = std::move(r.config_json);
  out.template_name = r.tmpl.name;
  return out;
}

Expected<Environment> Controller::create(const CreateRequest& req, const std::string& actor) {
  util::Millis now = m_clock.now_ms();
  IDP_TRY_ASSIGN(Environment env, new_environment(req, now));
  IDP_TRY_ASSIGN(CreateResolution res, resolve_create(env));
  env.commit = res.commit;
  env.config_json = res.config_json;
  env.template_name = res.template_name;
  if (env.expires_at == 0) {
    env.expires_at = now + res.ttl;
  }
  std::vector<Event> events = {make_event(env, now, actor, "create",
                                          "branch " + util::quote(req.branch) + " at " +
                                              util::short_commit(env.commit) + ", template " + env.template_name +
                                              ", ttl " + core::format_ttl(env.expires_at - now))};
  IDP_TRY_ASSIGN(Environment stored, m_store.insert_environment(env, events));
  m_signals.wake(stored.name);
  return stored;
}

Expected<Environment> Controller::submit_create(const CreateRequest& req, const std::string& actor) {
  util::Millis now = m_clock.now_ms();
  IDP_TRY_ASSIGN(Environment env, new_environment(req, now));
  env.message = "waiting for a worker to fetch branch " + util::quote(req.branch);
  std::vector<Event> events = {
      make_event(env, now, actor, "create",
                 "branch " + util::quote(req.branch) + " of " + util::quote(env.repo) + ", template " +
                     (env.template_name.empty() ? std::string("from its config") : env.template_name) + ", ttl " +
                     (env.expires_at == 0 ? std::string("from its config") : core::format_ttl(env.expires_at - now)) +
                     "; a worker fetches the branch and reads its config")};
  IDP_TRY_ASSIGN(Environment stored, m_store.insert_environment(env, events));
  m_signals.wake(stored.name);
  return stored;
}

Expected<Environment> Controller::extend(const std::string& name, const std::string& ttl_text,
                                         const std::string& actor) {
  IDP_TRY_ASSIGN(util::Millis ttl, core::parse_duration(ttl_text));
  if (ttl <= 0) {
    return make_error(ErrorCode::invalid_argument, "expected a positive duration, got " + util::quote(ttl_text));
  }
  util::Millis now = m_clock.now_ms();
  const auto& policy = m_options.ttl_policy;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    if (env.phase == Phase::destroyed || env.desired == Desired::absent) {
      return make_error(ErrorCode::conflict, "environment " + util::quote(name) + " is " +
                                                 std::string(core::phase_name(env.phase)) + " and cannot be extended");
    }
    util::Millis base = std::max(env.expires_at, now);
    util::Millis target = base + ttl;
    if (target - now > policy.max) {
      return make_error(ErrorCode::invalid_argument, "extending by " + ttl_text + " would keep " + util::quote(name) +
                                                         " for " + util::format_duration(target - now) +
                                                         ", beyond the maximum of " + core::format_ttl(policy.max));
    }
    events.push_back(
        make_event(env, now, actor, "extend",
                   "expiry " + util::format_iso8601(env.expires_at) + " -> " + util::format_iso8601(target)));
    env.expires_at = target;
    env.updated_at = now;
    return {};
  });
  return updated;
}

Expected<Environment> Controller::redeploy(const std::string& name, const std::string& commit_ref,
                                           const std::string& actor) {
  auto gone = [&](const Environment& env) -> Expected<void> {
    if (env.phase == Phase::destroyed || env.desired == Desired::absent) {
      return make_error(ErrorCode::conflict, "environment " + util::quote(name) + " is " +
                                                 std::string(core::phase_name(env.phase)) +
                                                 " and cannot be redeployed");
    }
    return {};
  };
  if (!commit_ref.empty() && !RepoResolver::is_commit_sha(commit_ref)) {
    return make_error(ErrorCode::invalid_argument,
                      "expected a commit sha (7 to 40 hex digits), got " + util::quote(commit_ref));
  }
  util::Millis now = m_clock.now_ms();
  // Only the desired state is written here: the fetch (git, up to a clone's time) is the
  // worker's (resolve_create), so this answers at once whatever the remote does.
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    IDP_TRY(gone(env));
    if (env.freeze && env.freeze->active(now)) {
      return make_error(ErrorCode::conflict, "environment " + util::quote(name) + " is frozen by " + env.freeze->by +
                                                 (env.freeze->reason.empty() ? "" : " (" + env.freeze->reason + ")") +
                                                 "; idp unfreeze " + name + " deploys its newest commit");
    }
    std::string ref = commit_ref;
    if (env.untrusted()) {
      // A fork's environment runs approved commits only: the one it has, again.
      const std::string& approved = env.commit.empty() ? env.deployed_commit : env.commit;
      if (approved.empty() || (!ref.empty() && !util::starts_with(approved, ref))) {
        return make_error(ErrorCode::conflict, "environment " + util::quote(name) +
                                                   " runs a pull request from a fork: only its approved "
                                                   "commit " +
                                                   util::short_commit(approved) +
                                                   " is deployed; approve another with: idp approve REPO#" +
                                                   std::to_string(env.pr_number.value_or(0)));
      }
      ref = approved;
    }
    std::string what = ref.empty() ? "the head of branch " + util::quote(env.branch) : "commit " + ref;
    env.commit.clear();
    env.redeploy_ref = ref;
    env.generation += 1;
    env.attempts = 0;
    env.next_attempt_at = 0;
    env.message = "waiting for a worker to fetch " + what;
    env.updated_at = now;
    events.push_back(make_event(env, now, actor, "redeploy",
                                what + " (generation " + std::to_string(env.generation) +
                                    "); a worker fetches it and reads its config"));
    return {};
  });
  if (updated) {
    m_signals.cancel(name, updated->generation);
    m_signals.wake(name);
  }
  return updated;
}

Expected<Environment> Controller::destroy(const std::string& name, const std::string& actor,
                                          const std::string& reason) {
  util::Millis now = m_clock.now_ms();
  bool changed = false;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    if (env.phase == Phase::destroyed) {
      return {};
    }
    if (env.desired == Desired::absent) {
      if (env.recreate) {
        // A later removal wins over a push that asked for a recreate.
        env.recreate = false;
        env.updated_at = now;
        events.push_back(make_event(env, now, actor, "destroy", reason + " (the pending recreate is dropped)"));
      }
      return {};
    }
    changed = true;
    env.desired = Desired::absent;
    env.attempts = 0;
    env.next_attempt_at = 0;
    env.updated_at = now;
    events.push_back(make_event(env, now, actor, "destroy", reason));
    return {};
  });
  if (updated && changed) {
    m_signals.cancel(name, 0);
    m_signals.wake(name);
  }
  return updated;
}

Expected<bool> Controller::expire(const std::string& name, util::Millis now) {
  bool expired = false;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    expired = false; // the mutator may run again if the store retries the transaction
    // Decided on the row as it is now, not on the caller's older list: an extend or a push
    // that moved expires_at since then wins.
    if (env.phase == Phase::destroyed || env.desired == Desired::absent || env.expires_at <= 0 ||
        env.expires_at > now) {
      return {};
    }
    expired = true;
    std::string reason = "ttl expired at " + util::format_iso8601(env.expires_at) + " (overdue by " +
                         util::format_duration(now - env.expires_at) + ")";
    env.desired = Desired::absent;
    env.attempts = 0;
    env.next_attempt_at = 0;
    env.updated_at = now;
    events.push_back(make_event(env, now, "reaper", "destroy", reason));
    return {};
  });
  if (!updated) {
    return Unexpected(updated.error());
  }
  if (expired) {
    m_signals.cancel(name, 0);
    m_signals.wake(name);
  }
  return expired;
}

Expected<Environment> Controller::sync_branch(const BranchUpdate& upd, const std::string& actor,
                                              const std::string& reason) {
  IDP_TRY(validate_repo(upd.repo));
  if (upd.fork_pr) {
    return sync_fork(upd, actor, reason);
  }
  IDP_TRY(validate_branch(upd.branch));
  std::string repo = RepoResolver::canonical_repo(upd.repo);
  std::string commit = upd.commit;
  if (commit.empty()) {
    IDP_TRY_ASSIGN(commit, m_repos.resolve_branch(repo, upd.branch));
  }
  if (upd.only_if_head && !upd.commit.empty()) {
    // Before the environment is looked up: the fetch takes time, and the lookup must be as
    // fresh as it was without this check (a destroy may be finishing meanwhile).
    IDP_TRY_ASSIGN(auto head, m_repos.resolve_branch(repo, upd.branch));
    if (head != commit) {
      std::string msg = "refused " + util::short_commit(commit) + " (" + reason + "): branch " +
                        util::quote(upd.branch) + " is now at " + util::short_commit(head) +
                        "; only a branch's head is deployed, so a stale or "
                        "replayed delivery never rolls an environment back";
      auto live = m_store.find_by_source_key(source_key(repo, upd.branch));
      if (live && *live) {
        Event ev = make_event(**live, m_clock.now_ms(), actor, "refuse", msg);
        if (auto r = m_store.append_event(ev); !r) {
          spdlog::error("controller: cannot record a refusal for {}: {}", (*live)->name, r.error().message);
        }
      }
      return make_error(ErrorCode::conflict, msg);
    }
  }
  return sync_source(upd, repo, commit, source_key(repo, upd.branch), actor, reason);
}

Expected<Environment> Controller::sync_fork(const BranchUpdate& upd, const std::string& actor,
                                            const std::string& reason) {
  const int pr = *upd.fork_pr;
  if (pr <= 0 || !RepoResolver::is_commit_sha(upd.commit) || upd.commit.size() != 40) {
    return make_error(ErrorCode::invalid_argument, "a fork's pull request needs its number and its full head commit");
  }
  std::string repo = RepoResolver::canonical_repo(upd.repo);
  // Only the approved commit, and only while it is the pull request's head: a push after
  // the approval needs an approval of its own.
  IDP_TRY_ASSIGN(auto head, m_repos.resolve_pull_head(repo, pr));
  if (head != upd.commit) {
    return make_error(ErrorCode::conflict, "pull request #" + std::to_string(pr) + " is now at " +
                                               util::short_commit(head) + ", not at the approved " +
                                               util::short_commit(upd.commit) + ": its new head needs an approval");
  }
  BranchUpdate fork = upd;
  fork.branch = "pull/" + std::to_string(pr) + "/head";
  fork.pr_number = pr;
  return sync_source(fork, repo, upd.commit, fork_source_key(repo, pr), actor, reason);
}

Expected<Environment> Controller::sync_source(const BranchUpdate& upd, const std::string& repo,
                                              const std::string& commit, const std::string& key,
                                              const std::string& actor, const std::string& reason) {
  const bool untrusted = upd.fork_pr.has_value();
  IDP_TRY_ASSIGN(auto existing, m_store.find_by_source_key(key));
  util::Millis now = m_clock.now_ms();
  auto resolved = resolve_config(
      repo, commit, "", upd.default_template.empty() ? m_options.default_template : upd.default_template, !untrusted);
  if (!resolved) {
    if (existing && resolved.error().code == ErrorCode::invalid_config) {
      std::string msg = "config at " + util::short_commit(commit) + " is invalid: " + resolved.error().message;
      auto recorded = m_store.update_environment(existing->name,
                                                 [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
                                                   env.message = msg;
                                                   env.updated_at = now;
                                                   events.push_back(make_event(env, now, actor, "reject", msg));
                                                   return {};
                                                 });
      if (!recorded) {
        // The branch's owner would never see why the commit is not deployed: fail with the
        // store's error instead, which the caller retries when it is transient.
        return Unexpected(
            Error(recorded.error().code, "environment " + util::quote(existing->name) +
                                             ": cannot record the rejected config: " + recorded.error().message));
      }
    }
    return Unexpected(resolved.error());
  }
  auto ttl =
      untrusted ? Expected<util::Millis>(m_options.untrusted.ttl) : m_options.ttl_policy.parse(resolved->config.ttl);
  if (!ttl) {
    return make_error(ErrorCode::invalid_config, ".idp/config.yml: key \"ttl\": " + ttl.error().message);
  }
  // What the untrusted profile changed in the config, for the events.
  const std::string bound = untrusted ? apply_untrusted(*resolved) : "";
  const std::string what = untrusted ? "pull request #" + std::to_string(*upd.fork_pr) +
                                           " from a fork, untrusted profile" + (bound.empty() ? "" : " (" + bound + ")")
                                     : "branch " + util::quote(upd.branch);

  if (!existing) {
    if (m_signals.admit_budget) {
      // A push or a pull request creates like the API does: nothing is recorded when
      // refused (the caller tells GitHub, sources/github_notifier.hpp).
      IDP_TRY(m_signals.admit_budget(repo, upd.owner));
    }
    Environment env;
    env.repo = repo;
    env.branch = upd.branch;
    env.template_name = resolved->tmpl.name;
    env.runtime = upd.runtime.empty() ? m_options.default_runtime : upd.runtime;
    env.owner = upd.owner;
    env.commit = commit;
    env.config_json = resolved->config_json;
    env.pr_number = upd.pr_number;
    env.created_at = now;
    env.updated_at = now;
    env.expires_at = now + *ttl;
    env.source_key = key;
    env.profile = untrusted ? "untrusted" : "";
    IDP_TRY_ASSIGN(
        env.name,
        pick_name(untrusted ? "pr-" + std::to_string(*upd.fork_pr) : core::env_name_for_branch(upd.branch), key));
    IDP_TRY(plan(env, *resolved));
    std::vector<Event> events = {
        make_event(env, now, actor, "create", reason + ": " + what + " at " + util::short_commit(commit))};
    auto stored = m_store.insert_environment(env, events);
    if (!stored && stored.error().code == ErrorCode::already_exists) {
      // Another trigger created it a moment ago: treat this one as an update of it.
      return sync_source(upd, repo, commit, key, actor, reason);
    }
    if (stored) {
      m_signals.wake(stored->name);
    }
    return stored;
  }

  Environment probe = *existing;
  probe.runtime = existing->runtime;
  IDP_TRY(plan(probe, *resolved));
  bool redeploy = false;
  bool gone = false;
  auto updated =
      m_store.update_environment(existing->name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
        if (env.phase == Phase::destroyed) {
          // The destroy finished between the lookup above and this write: nothing would
          // act on a recreate flag now, so start over (the branch gets a new environment).
          gone = true;
          return make_error(ErrorCode::conflict, "environment " + util::quote(env.name) + " was destroyed meanwhile");
        }
        bool same = env.commit == commit && env.config_json == resolved->config_json;
        if (upd.pr_number) {
          env.pr_number = upd.pr_number;
        }
        if (env.desired == Desired::absent) {
          // A push after a destroy was asked for (started or not): the destroy finishes
          // first, then the environment is created afresh at this commit.
          env.recreate = true;
          env.commit = commit;
          env.redeploy_ref.reset();
          env.config_json = resolved->config_json;
          env.template_name = resolved->tmpl.name;
          env.expires_at = now + *ttl;
          env.updated_at = now;
          if (upd.pr_number) {
            env.pr_number = upd.pr_number;
          }
          events.push_back(make_event(env, now, actor, "deploy",
                                      reason + ": " + util::short_commit(commit) +
                                          " arrived after a destroy; recreating once it finishes"));
          redeploy = true;
          return {};
        }
        env.expires_at = std::max(env.expires_at, now + *ttl);
        env.updated_at = now;
        if (env.freeze && env.freeze->active(now) && !same) {
          // Frozen for QA: the push is remembered, not deployed; the newest one deploys when
          // the freeze ends. Its expiry still moves out (above).
          auto& waiting = env.freeze->waiting;
          bool known = std::find(waiting.begin(), waiting.end(), commit) != waiting.end() || commit == env.commit;
          if (!known) {
            waiting.push_back(commit);
            if (waiting.size() > core::Freeze::k_max_waiting) {
              waiting.erase(waiting.begin());
            }
            events.push_back(
                make_event(env, now, actor, "hold",
                           reason + ": " + util::short_commit(commit) + " not deployed: frozen by " + env.freeze->by +
                               (env.freeze->reason.empty() ? "" : " (" + env.freeze->reason + ")") + "; " +
                               std::to_string(waiting.size()) + " newer commit" + (waiting.size() == 1 ? "" : "s") +
                               " waiting; expiry " + util::format_iso8601(env.expires_at)));
          }
          return {};
        }
        if (same) {
          events.push_back(make_event(env, now, actor, "extend",
                                      reason + ": " + util::short_commit(commit) + " already deployed; expiry " +
                                          util::format_iso8601(env.expires_at)));
          return {};
        }
        env.commit = commit;
        env.redeploy_ref.reset(); // this commit supersedes a redeploy still being fetched
        env.config_json = resolved->config_json;
        env.template_name = resolved->tmpl.name;
        env.generation += 1;
        env.attempts = 0;
        env.next_attempt_at = 0;
        if (!env.message.empty() && env.message.rfind("config at ", 0) == 0) {
          env.message.clear();
        }
        events.push_back(make_event(env, now, actor, "deploy",
                                    reason + ": " + util::short_commit(commit) + " (generation " +
                                        std::to_string(env.generation) + "), expiry " +
                                        util::format_iso8601(env.expires_at)));
        redeploy = true;
        return {};
      });
  if (!updated && gone) {
    return sync_source(upd, repo, commit, key, actor, reason);
  }
  if (updated && redeploy) {
    m_signals.cancel(updated->name, updated->generation);
    m_signals.wake(updated->name);
  }
  return updated;
}

Expected<std::optional<Environment>> Controller::remove_branch(const std::string& repo, const std::string& branch,
                                                               const std::string& actor, const std::string& reason) {
  IDP_TRY(validate_repo(repo));
  IDP_TRY(validate_branch(branch));
  IDP_TRY_ASSIGN(auto existing, m_store.find_by_source_key(source_key(RepoResolver::canonical_repo(repo), branch)));
  if (!existing) {
    return std::optional<Environment>();
  }
  IDP_TRY_ASSIGN(Environment env, destroy(existing->name, actor, reason));
  return std::optional<Environment>(env);
}

Expected<Environment> Controller::freeze(const std::string& name, util::Millis until, const std::string& reason,
                                         const std::string& actor) {
  util::Millis now = m_clock.now_ms();
  if (until != 0 && until <= now) {
    return make_error(ErrorCode::invalid_argument, "a freeze must end in the future");
  }
  if (reason.size() > 500) {
    return make_error(ErrorCode::invalid_argument, "a freeze's reason is at most 500 characters");
  }
  return m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    if (env.phase == Phase::destroyed || env.desired == Desired::absent) {
      return make_error(ErrorCode::conflict, "environment " + util::quote(name) + " is " +
                                                 std::string(core::phase_name(env.phase)) + " and cannot be frozen");
    }
    core::Freeze f = env.freeze && env.freeze->active(now) ? *env.freeze : core::Freeze{};
    f.by = actor;
    f.reason = reason;
    f.at = f.at == 0 ? now : f.at;
    f.until = until;
    env.freeze = f;
    env.updated_at = now;
    const std::string& at = env.commit.empty() ? env.deployed_commit : env.commit;
    events.push_back(make_event(env, now, actor, "freeze",
                                "frozen at " + util::short_commit(at) +
                                    (until ? " until " + util::format_iso8601(until) : std::string(" until unfrozen")) +
                                    (reason.empty() ? "" : ": " + reason)));
    return {};
  });
}

Expected<Environment> Controller::unfreeze(const std::string& name, const std::string& actor, const std::string& why) {
  util::Millis now = m_clock.now_ms();
  bool deploy = false;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    if (!env.freeze) {
      return {}; // not frozen: nothing to do
    }
    std::vector<std::string> waiting = env.freeze->waiting;
    env.freeze.reset();
    env.updated_at = now;
    if (env.phase == Phase::destroyed || env.desired == Desired::absent || waiting.empty()) {
      events.push_back(make_event(env, now, actor, "unfreeze", why + "; no newer commit to deploy"));
      return {};
    }
    // The newest push: fetched and its config read by a worker, as a redeploy's.
    const std::string& newest = waiting.back();
    env.commit.clear();
    env.redeploy_ref = newest;
    env.generation += 1;
    env.attempts = 0;
    env.next_attempt_at = 0;
    env.message = "waiting for a worker to fetch commit " + util::short_commit(newest);
    events.push_back(make_event(env, now, actor, "unfreeze",
                                why + "; deploying the newest of " + std::to_string(waiting.size()) + " held commit" +
                                    (waiting.size() == 1 ? "" : "s") + ", " + util::short_commit(newest) +
                                    " (generation " + std::to_string(env.generation) + ")"));
    deploy = true;
    return {};
  });
  if (updated && deploy) {
    m_signals.cancel(updated->name, updated->generation);
    m_signals.wake(updated->name);
  }
  return updated;
}

Expected<Environment> Controller::sleep(const std::string& name, const std::string& by, const std::string& reason,
                                        const std::string& actor) {
  util::Millis now = m_clock.now_ms();
  bool asked = false;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    asked = false;
    if (env.sleeping()) {
      return {};
    }
    if (env.desired != Desired::present || env.phase != Phase::ready || env.needs_deploy()) {
      return make_error(ErrorCode::conflict, "environment " + util::quote(name) + " is " +
                                                 std::string(core::phase_name(env.phase)) +
                                                 (env.needs_deploy() ? " with a deploy waiting" : "") +
                                                 "; only a ready environment can sleep");
    }
    if (env.sleep) {
      env.sleep->state = core::Sleep::State::asleep; // to_wake: still stopped, stays so
    } else {
      env.sleep = core::Sleep{core::Sleep::State::to_sleep, by, reason, now};
      asked = true;
    }
    events.push_back(make_event(env, now, actor, "sleep-requested", reason));
    return {};
  });
  if (updated && asked) {
    m_signals.wake(updated->name);
  }
  return updated;
}

Expected<Environment> Controller::wake(const std::string& name, const std::string& actor, const std::string& reason) {
  util::Millis now = m_clock.now_ms();
  bool asked = false;
  auto updated = m_store.update_environment(name, [&](Environment& env, std::vector<Event>& events) -> Expected<void> {
    asked = false;
    if (!env.sleep || env.sleep->state == core::Sleep::State::to_wake) {
      return {};
    }
    if (env.sleep->state == core::Sleep::State::to_sleep) {
      env.sleep.reset(); // not stopped yet: it stays awake
      events.push_back(make_event(env, now, actor, "wake", reason + " before it went to sleep"));
      return {};
    }
    env.sleep->state = core::Sleep::State::to_wake;
    events.push_back(make_event(env, now, actor, "wake-requested", reason));
    asked = true;
    return {};
  });
  if (updated && asked) {
    m_signals.wake(updated->name);
  }
  return updated;
}

Expected<std::optional<Environment>> Controller::remove_fork(const std::string& repo, int pr, const std::string& actor,
                                                             const std::string& reason) {
  IDP_TRY(validate_repo(repo));
  IDP_TRY_ASSIGN(auto existing, m_store.find_by_source_key(fork_source_key(RepoResolver::canonical_repo(repo), pr)));
  if (!existing) {
    return std::optional<Environment>();
  }
  IDP_TRY_ASSIGN(Environment env, destroy(existing->name, actor, reason));
  return std::optional<Environment>(env);
}

} // namespace idp::engine
