#include "fakes/in_memory_store.hpp"

#include <algorithm>
#include <set>

namespace idp::testing {

using core::Environment;
using core::Event;
using core::JobRun;
using core::Lease;
using core::Revision;

namespace {

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

Unexpected env_not_found(std::string_view name) {
  return make_error(ErrorCode::not_found, "environment " + in_quotes(name) + " not found");
}

} // namespace

Expected<void> InMemoryStore::check_source_key_free(const Environment& env) const {
  if (env.source_key.empty() || !core::phase_is_live(env.phase)) {
    return {};
  }
  for (const auto& [name, other] : m_environments) {
    if (name != env.name && core::phase_is_live(other.phase) && other.source_key == env.source_key) {
      return make_error(ErrorCode::already_exists,
                        "environment " + in_quotes(name) + " already tracks source " + in_quotes(env.source_key));
    }
  }
  return {};
}

void InMemoryStore::append_events_for(const std::string& env_name, const std::vector<Event>& events) {
  for (Event ev : events) {
    if (ev.env.empty()) {
      ev.env = env_name;
    }
    ev.id = m_next_event_id++;
    m_events.push_back(std::move(ev));
  }
}

// --- Environments ---

Expected<Environment> InMemoryStore::insert_environment(const Environment& env, const std::vector<Event>& events) {
  std::lock_guard lock(m_mutex);
  auto it = m_environments.find(env.name);
  if (it != m_environments.end() && core::phase_is_live(it->second.phase)) {
    return make_error(ErrorCode::already_exists, "environment " + in_quotes(env.name) + " already exists");
  }
  IDP_TRY(check_source_key_free(env));
  m_environments[env.name] = env;
  append_events_for(env.name, events);
  return env;
}

Expected<Environment> InMemoryStore::get_environment(std::string_view name) {
  std::lock_guard lock(m_mutex);
  auto it = m_environments.find(name);
  if (it == m_environments.end()) {
    return env_not_found(name);
  }
  return it->second;
}

Expected<std::optional<Environment>> InMemoryStore::find_by_source_key(std::string_view source_key) {
  std::lock_guard lock(m_mutex);
  if (source_key.empty()) {
    return std::optional<Environment>();
  }
  for (const auto& [name, env] : m_environments) {
    if (core::phase_is_live(env.phase) && env.source_key == source_key) {
      return std::optional<Environment>(env);
    }
  }
  return std::optional<Environment>();
}

Expected<std::vector<Environment>> InMemoryStore::list_environments(bool include_destroyed) {
  std::lock_guard lock(m_mutex);
  std::vector<Environment> out;
  for (const auto& [name, env] : m_environments) {
    if (include_destroyed || core::phase_is_live(env.phase)) {
      out.push_back(env);
    }
  }
  return out;
}

Expected<Environment> InMemoryStore::update_environment(std::string_view name, const store::Mutator& mutate) {
  std::lock_guard lock(m_mutex);
  auto it = m_environments.find(name);
  if (it == m_environments.end()) {
    return env_not_found(name);
  }
  // Work on copies and publish only on success: that is the rollback.
  Environment env = it->second;
  std::vector<Event> events;
  IDP_TRY(mutate(env, events));
  if (env.name != name) {
    return make_error(ErrorCode::internal, "update environment " + in_quotes(name) + ": the mutator renamed it to " +
                                               in_quotes(env.name) + "; names cannot change");
  }
  IDP_TRY(check_source_key_free(env));
  it->second = env;
  append_events_for(env.name, events);
  return env;
}

Expected<size_t> InMemoryStore::purge_destroyed_environments(util::Millis destroyed_before) {
  std::lock_guard lock(m_mutex);
  std::set<std::string, std::less<>> purged;
  for (const auto& [name, env] : m_environments) {
    if (env.phase == core::Phase::destroyed && env.destroyed_at < destroyed_before) {
      purged.insert(name);
    }
  }
  std::erase_if(m_revisions, [&](const auto& entry) { return purged.count(entry.second.env) > 0; });
  std::erase_if(m_job_runs, [&](const auto& entry) { return purged.count(entry.second.env) > 0; });
  std::erase_if(m_environments, [&](const auto& entry) { return purged.count(entry.first) > 0; });
  return purged.size();
}

// --- Revisions ---

Expected<int64_t> InMemoryStore::insert_revision(const Revision& rev) {
  std::lock_guard lock(m_mutex);
  if (m_environments.find(rev.env) == m_environments.end()) {
    return env_not_found(rev.env);
  }
  Revision copy = rev;
  copy.id = m_next_revision_id++;
  copy.number = 1;
  for (const auto& [_, r] : m_revisions) {
    if (r.env == rev.env) {
      copy.number = std::max(copy.number, r.number + 1);
    }
  }
  m_revisions[copy.id] = copy;
  return copy.id;
}

Expected<void> InMemoryStore::update_revision(const Revision& rev) {
  std::lock_guard lock(m_mutex);
  auto it = m_revisions.find(rev.id);
  if (it == m_revisions.end()) {
    return make_error(ErrorCode::not_found, "revision " + std::to_string(rev.id) + " not found");
  }
  std::string env = it->second.env;
  int64_t number = it->second.number;
  it->second = rev;
  it->second.env = env; // neither moves: they are the revision's identity
  it->second.number = number;
  return {};
}

Expected<Revision> InMemoryStore::get_revision(int64_t id) {
  std::lock_guard lock(m_mutex);
  auto it = m_revisions.find(id);
  if (it == m_revisions.end()) {
    return make_error(ErrorCode::not_found, "revision " + std::to_string(id) + " not found");
  }
  return it->second;
}

Expected<std::vector<Revision>> InMemoryStore::list_revisions(std::string_view env, size_t limit) {
  std::lock_guard lock(m_mutex);
  std::vector<Revision> out;
  for (auto it = m_revisions.rbegin(); it != m_revisions.rend() && out.size() < limit; ++it) {
    if (it->second.env == env) {
      out.push_back(it->second);
    }
  }
  return out;
}

// --- Events ---

Expected<int64_t> InMemoryStore::append_event(const Event& ev) {
  std::lock_guard lock(m_mutex);
  Event copy = ev;
  copy.id = m_next_event_id++;
  m_events.push_back(std::move(copy));
  return m_events.back().id;
}

Expected<std::vector<Event>> InMemoryStore::list_events(const store::EventQuery& q) {
  std::lock_guard lock(m_mutex);
  std::vector<Event> out;
  auto first = std::upper_bound(m_events.begin(), m_events.end(), q.after_id,
                                [](int64_t id, const Event& ev) { return id < ev.id; });
  if (q.newest_first) {
    for (auto it = m_events.rbegin(); it != m_events.rend() && it->id > q.after_id && out.size() < q.limit; ++it) {
      if (q.env.empty() || it->env == q.env) {
        out.push_back(*it);
      }
    }
    return out;
  }
  for (auto it = first; it != m_events.end() && out.size() < q.limit; ++it) {
    if (q.env.empty() || it->env == q.env) {
      out.push_back(*it);
    }
  }
  return out;
}

Expected<size_t> InMemoryStore::prune_events(util::Millis before) {
  std::lock_guard lock(m_mutex);
  return std::erase_if(m_events, [before](const Event& ev) { return ev.at < before; });
}

// --- Leases ---

Expected<bool> InMemoryStore::try_acquire_lease(std::string_view env, std::string_view owner, util::Millis now,
                                                util::Millis ttl) {
  std::lock_guard lock(m_mutex);
  auto it = m_leases.find(env);
  if (it != m_leases.end() && it->second.expires_at > now && it->second.owner != owner) {
    return false;
  }
  m_leases[std::string(env)] = Lease{std::string(env), std::string(owner), now + ttl};
  return true;
}

Expected<bool> InMemoryStore::renew_lease(std::string_view env, std::string_view owner, util::Millis now,
                                          util::Millis ttl) {
  std::lock_guard lock(m_mutex);
  auto it = m_leases.find(env);
  if (it == m_leases.end() || it->second.owner != owner) {
    return false;
  }
  it->second.expires_at = now + ttl;
  return true;
}

Expected<void> InMemoryStore::release_lease(std::string_view env, std::string_view owner) {
  std::lock_guard lock(m_mutex);
  auto it = m_leases.find(env);
  if (it != m_leases.end() && it->second.owner == owner) {
    m_leases.erase(it);
  }
  return {};
}

Expected<void> InMemoryStore::break_lease(std::string_view env) {
  std::lock_guard lock(m_mutex);
  auto it = m_leases.find(env);
  if (it != m_leases.end()) {
    m_leases.erase(it);
  }
  return {};
}

Expected<std::optional<Lease>> InMemoryStore::get_lease(std::string_view env) {
  std::lock_guard lock(m_mutex);
  auto it = m_leases.find(env);
  if (it == m_leases.end()) {
    return std::optional<Lease>();
  }
  return std::optional<Lease>(it->second);
}

Expected<std::vector<Lease>> InMemoryStore::list_leases() {
  std::lock_guard lock(m_mutex);
  std::vector<Lease> out;
  for (const auto& [env, lease] : m_leases) {
    out.push_back(lease);
  }
  return out;
}

// --- Deliveries ---

Expected<bool> InMemoryStore::record_delivery(std::string_view delivery_id, util::Millis at) {
  std::lock_guard lock(m_mutex);
  return m_deliveries.emplace(std::string(delivery_id), at).second;
}

Expected<bool> InMemoryStore::any_delivery_recorded(const std::vector<std::string>& keys) {
  std::lock_guard lock(m_mutex);
  return std::any_of(keys.begin(), keys.end(), [&](const std::string& k) { return m_deliveries.count(k) != 0; });
}

Expected<void> InMemoryStore::insert_delivery_keys(const std::vector<store::DeliveryKey>& keys) {
  std::lock_guard lock(m_mutex);
  for (const auto& k : keys) {
    m_deliveries.emplace(k.key, k.at);
  }
  return {};
}

Expected<void> InMemoryStore::prune_deliveries(util::Millis before) {
  std::lock_guard lock(m_mutex);
  std::erase_if(m_deliveries, [before](const auto& entry) { return entry.second < before; });
  return {};
}

// --- Job runs ---

Expected<int64_t> InMemoryStore::insert_job_run(const JobRun& run) {
  std::lock_guard lock(m_mutex);
  if (m_environments.find(run.env) == m_environments.end()) {
    return env_not_found(run.env);
  }
  JobRun copy = run;
  copy.id = m_next_job_run_id++;
  m_job_runs[copy.id] = copy;
  return copy.id;
}

Expected<void> InMemoryStore::update_job_run(const JobRun& run) {
  std::lock_guard lock(m_mutex);
  auto it = m_job_runs.find(run.id);
  if (it == m_job_runs.end()) {
    return make_error(ErrorCode::not_found, "job run " + std::to_string(run.id) + " not found");
  }
  std::string env = it->second.env;
  it->second = run;
  it->second.env = env;
  return {};
}

Expected<std::vector<JobRun>> InMemoryStore::list_job_runs(std::string_view env, size_t limit) {
  std::lock_guard lock(m_mutex);
  std::vector<JobRun> out;
  for (auto it = m_job_runs.rbegin(); it != m_job_runs.rend() && out.size() < limit; ++it) {
    if (it->second.env == env) {
      out.push_back(it->second);
    }
  }
  return out;
}

// --- Server secrets ---

Expected<void> InMemoryStore::put_secret(const store::StoredSecret& secret) {
  std::lock_guard lock(m_mutex);
  m_secrets[{secret.name, secret.scope}] = secret;
  return {};
}

Expected<std::vector<store::StoredSecret>> InMemoryStore::list_secrets() {
  std::lock_guard lock(m_mutex);
  std::vector<store::StoredSecret> out;
  for (const auto& [_, s] : m_secrets) {
    out.push_back(s);
  }
  return out;
}

Expected<void> InMemoryStore::delete_secret(std::string_view scope, std::string_view name) {
  std::lock_guard lock(m_mutex);
  if (m_secrets.erase({std::string(name), std::string(scope)}) == 0) {
    return make_error(ErrorCode::not_found, "secret " + in_quotes(name) + " not found");
  }
  return {};
}

// --- Settings ---

// --- API tokens ---

Expected<void> InMemoryStore::insert_api_token(const store::ApiToken& token) {
  std::lock_guard lock(m_mutex);
  for (const auto& t : m_api_tokens) {
    if (t.id == token.id || t.hash == token.hash) {
      return make_error(ErrorCode::already_exists, "api token " + in_quotes(token.id) + " already exists");
    }
  }
  m_api_tokens.push_back(token);
  return {};
}

Expected<std::optional<store::ApiToken>> InMemoryStore::find_api_token(std::string_view hash) {
  std::lock_guard lock(m_mutex);
  for (const auto& t : m_api_tokens) {
    if (t.hash == hash) {
      return std::optional<store::ApiToken>(t);
    }
  }
  return std::optional<store::ApiToken>();
}

Expected<std::vector<store::ApiToken>> InMemoryStore::list_api_tokens() {
  std::lock_guard lock(m_mutex);
  auto out = m_api_tokens;
  std::stable_sort(out.begin(), out.end(), [](const store::ApiToken& a, const store::ApiToken& b) {
    return a.created_at < b.created_at || (a.created_at == b.created_at && a.id < b.id);
  });
  return out;
}

Expected<store::ApiToken> InMemoryStore::revoke_api_token(std::string_view id, util::Millis at) {
  std::lock_guard lock(m_mutex);
  for (auto& t : m_api_tokens) {
    if (t.id == id) {
      if (t.revoked_at == 0) {
        t.revoked_at = at;
      }
      return t;
    }
  }
  return make_error(ErrorCode::not_found, "api token " + in_quotes(id) + " not found");
}

Expected<void> InMemoryStore::touch_api_token(std::string_view id, util::Millis at) {
  std::lock_guard lock(m_mutex);
  for (auto& t : m_api_tokens) {
    if (t.id == id) {
      t.last_used_at = at;
    }
  }
  return {};
}

// --- Settings ---

Expected<std::optional<std::string>> InMemoryStore::get_setting(std::string_view key) {
  std::lock_guard lock(m_mutex);
  auto it = m_settings.find(key);
  if (it == m_settings.end()) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(it->second);
}

Expected<void> InMemoryStore::set_setting(std::string_view key, std::string_view value) {
  std::lock_guard lock(m_mutex);
  m_settings[std::string(key)] = std::string(value);
  return {};
}

} // namespace idp::testing

namespace idp::testing {

Expected<void> InMemoryStore::insert_preview_grant(const store::PreviewGrant& grant) {
  std::lock_guard lock(m_mutex);
  for (const auto& g : m_preview_grants) {
    if (g.id == grant.id) {
      return make_error(ErrorCode::already_exists, "share link " + in_quotes(grant.id) + " already exists");
    }
  }
  m_preview_grants.push_back(grant);
  return {};
}

Expected<std::optional<store::PreviewGrant>> InMemoryStore::find_preview_grant(std::string_view id) {
  std::lock_guard lock(m_mutex);
  for (const auto& g : m_preview_grants) {
    if (g.id == id) {
      return std::optional<store::PreviewGrant>(g);
    }
  }
  return std::optional<store::PreviewGrant>();
}

Expected<std::vector<store::PreviewGrant>> InMemoryStore::list_preview_grants(std::string_view env) {
  std::lock_guard lock(m_mutex);
  std::vector<store::PreviewGrant> out;
  for (const auto& g : m_preview_grants) {
    if (env.empty() || g.env == env) {
      out.push_back(g);
    }
  }
  std::sort(out.begin(), out.end(), [](const store::PreviewGrant& a, const store::PreviewGrant& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  return out;
}

Expected<store::PreviewGrant> InMemoryStore::revoke_preview_grant(std::string_view id, util::Millis at) {
  std::lock_guard lock(m_mutex);
  for (auto& g : m_preview_grants) {
    if (g.id == id) {
      if (g.revoked_at == 0) {
        g.revoked_at = at;
      }
      return g;
    }
  }
  return make_error(ErrorCode::not_found, "share link " + in_quotes(id) + " not found");
}

Expected<store::ForkRequest> InMemoryStore::update_fork_request(std::string_view repo, int pr,
                                                                const store::ForkMutator& mutate) {
  std::lock_guard lock(m_mutex);
  auto key = std::make_pair(std::string(repo), pr);
  auto it = m_fork_requests.find(key);
  store::ForkRequest f;
  if (it != m_fork_requests.end()) {
    f = it->second;
  } else {
    f.repo = key.first;
    f.pr = pr;
  }
  IDP_TRY(mutate(f, it != m_fork_requests.end()));
  if (f.repo != repo || f.pr != pr) {
    return make_error(ErrorCode::invalid_argument, "update fork request: the mutator changed its repository or number");
  }
  m_fork_requests[key] = f;
  return f;
}

Expected<std::optional<store::ForkRequest>> InMemoryStore::get_fork_request(std::string_view repo, int pr) {
  std::lock_guard lock(m_mutex);
  auto it = m_fork_requests.find(std::make_pair(std::string(repo), pr));
  if (it == m_fork_requests.end()) {
    return std::optional<store::ForkRequest>();
  }
  return std::optional<store::ForkRequest>(it->second);
}

Expected<std::vector<store::ForkRequest>> InMemoryStore::list_fork_requests() {
  std::lock_guard lock(m_mutex);
  std::vector<store::ForkRequest> out;
  for (const auto& [k, f] : m_fork_requests) {
    out.push_back(f);
  }
  return out;
}

Expected<void> InMemoryStore::add_usage(const std::vector<store::UsageHour>& usage) {
  for (const auto& u : usage) {
    if (u.hour % 3'600'000 != 0) {
      return make_error(ErrorCode::invalid_argument,
                        "add usage: " + std::to_string(u.hour) + " is not an hour's start");
    }
  }
  std::lock_guard lock(m_mutex);
  for (const auto& u : usage) {
    auto [it, fresh] = m_usage.try_emplace(std::make_pair(u.hour, u.env), u);
    if (!fresh) {
      it->second.add(u);
    }
  }
  return {};
}

Expected<std::vector<store::UsageHour>> InMemoryStore::list_usage(util::Millis from, util::Millis to,
                                                                  std::string_view env) {
  std::lock_guard lock(m_mutex);
  std::vector<store::UsageHour> out;
  for (auto it = m_usage.lower_bound(std::make_pair(from, std::string())); it != m_usage.end() && it->first.first < to;
       ++it) {
    if (env.empty() || it->second.env == env) {
      out.push_back(it->second);
    }
  }
  return out;
}

Expected<size_t> InMemoryStore::prune_usage(util::Millis before) {
  std::lock_guard lock(m_mutex);
  size_t n = 0;
  for (auto it = m_usage.begin(); it != m_usage.end() && it->first.first < before;) {
    it = m_usage.erase(it);
    ++n;
  }
  return n;
}

} // namespace idp::testing
