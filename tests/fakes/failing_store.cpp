#include "fakes/failing_store.hpp"

#include <algorithm>
#include <utility>

namespace idp::testing {

void FailingStore::fail_next(const std::string& method, int n, ErrorCode code) {
  std::lock_guard<std::mutex> g(m_mu);
  m_plans[method] = Plan{n, code};
}

void FailingStore::fail_updates_where(std::function<bool(const core::Environment&)> pred, int n, ErrorCode code) {
  std::lock_guard<std::mutex> g(m_mu);
  m_update_pred = std::move(pred);
  m_update_plan = Plan{n, code};
}

void FailingStore::after_next_list(std::function<void()> hook) {
  std::lock_guard<std::mutex> g(m_mu);
  m_after_list = std::move(hook);
}

int FailingStore::injected(const std::string& method) const {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_injected.find(method);
  return it == m_injected.end() ? 0 : it->second;
}

int FailingStore::calls(const std::string& method) const {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_calls.find(method);
  return it == m_calls.end() ? 0 : it->second;
}

void FailingStore::before_next(std::vector<std::string> methods, std::function<void()> hook) {
  std::lock_guard<std::mutex> g(m_mu);
  m_before_methods = std::move(methods);
  m_before = std::move(hook);
}

std::optional<Error> FailingStore::take(const std::string& method) {
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (m_before && std::find(m_before_methods.begin(), m_before_methods.end(), method) != m_before_methods.end()) {
      hook = std::exchange(m_before, nullptr);
    }
  }
  if (hook) {
    hook(); // unlocked: it may call back into this store
  }
  std::lock_guard<std::mutex> g(m_mu);
  ++m_calls[method];
  auto it = m_plans.find(method);
  if (it == m_plans.end() || it->second.remaining <= 0) {
    return std::nullopt;
  }
  --it->second.remaining;
  ++m_injected[method];
  return Error(it->second.code, "injected failure of " + method);
}

Expected<std::vector<core::Environment>> FailingStore::list_environments(bool include_destroyed) {
  if (auto err = take("list_environments")) {
    return Unexpected(*err);
  }
  auto out = m_inner.list_environments(include_destroyed);
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> g(m_mu);
    hook = std::exchange(m_after_list, nullptr);
  }
  if (hook) {
    hook();
  }
  return out;
}

Expected<core::Environment> FailingStore::update_environment(std::string_view name, const store::Mutator& mutate) {
  if (auto err = take("update_environment")) {
    return Unexpected(*err);
  }
  // The predicate is checked on the mutated copy inside the inner transaction; failing
  // there rolls the write back, as a failed commit would.
  return m_inner.update_environment(name,
                                    [&](core::Environment& env, std::vector<core::Event>& events) -> Expected<void> {
                                      IDP_TRY(mutate(env, events));
                                      std::lock_guard<std::mutex> g(m_mu);
                                      if (m_update_pred && m_update_plan.remaining > 0 && m_update_pred(env)) {
                                        --m_update_plan.remaining;
                                        ++m_injected["update_environment"];
                                        return make_error(m_update_plan.code, "injected failure of update_environment");
                                      }
                                      return {};
                                    });
}

Expected<core::Environment> FailingStore::insert_environment(const core::Environment& env,
                                                             const std::vector<core::Event>& events) {
  if (auto err = take("insert_environment")) {
    return Unexpected(*err);
  }
  return m_inner.insert_environment(env, events);
}

Expected<core::Environment> FailingStore::get_environment(std::string_view name) {
  if (auto err = take("get_environment")) {
    return Unexpected(*err);
  }
  return m_inner.get_environment(name);
}

Expected<std::optional<core::Environment>> FailingStore::find_by_source_key(std::string_view source_key) {
  if (auto err = take("find_by_source_key")) {
    return Unexpected(*err);
  }
  return m_inner.find_by_source_key(source_key);
}

Expected<int64_t> FailingStore::insert_revision(const core::Revision& rev) {
  if (auto err = take("insert_revision")) {
    return Unexpected(*err);
  }
  return m_inner.insert_revision(rev);
}

Expected<void> FailingStore::update_revision(const core::Revision& rev) {
  if (auto err = take("update_revision")) {
    return Unexpected(*err);
  }
  return m_inner.update_revision(rev);
}

Expected<core::Revision> FailingStore::get_revision(int64_t id) {
  if (auto err = take("get_revision")) {
    return Unexpected(*err);
  }
  return m_inner.get_revision(id);
}

Expected<std::vector<core::Revision>> FailingStore::list_revisions(std::string_view env, size_t limit) {
  if (auto err = take("list_revisions")) {
    return Unexpected(*err);
  }
  return m_inner.list_revisions(env, limit);
}

Expected<int64_t> FailingStore::append_event(const core::Event& ev) {
  if (auto err = take("append_event")) {
    return Unexpected(*err);
  }
  return m_inner.append_event(ev);
}

Expected<std::vector<core::Event>> FailingStore::list_events(const store::EventQuery& q) {
  if (auto err = take("list_events")) {
    return Unexpected(*err);
  }
  return m_inner.list_events(q);
}

Expected<bool> FailingStore::try_acquire_lease(std::string_view env, std::string_view owner, util::Millis now,
                                               util::Millis ttl) {
  if (auto err = take("try_acquire_lease")) {
    return Unexpected(*err);
  }
  return m_inner.try_acquire_lease(env, owner, now, ttl);
}

Expected<bool> FailingStore::renew_lease(std::string_view env, std::string_view owner, util::Millis now,
                                         util::Millis ttl) {
  if (auto err = take("renew_lease")) {
    return Unexpected(*err);
  }
  return m_inner.renew_lease(env, owner, now, ttl);
}

Expected<void> FailingStore::release_lease(std::string_view env, std::string_view owner) {
  if (auto err = take("release_lease")) {
    return Unexpected(*err);
  }
  return m_inner.release_lease(env, owner);
}

Expected<void> FailingStore::break_lease(std::string_view env) {
  if (auto err = take("break_lease")) {
    return Unexpected(*err);
  }
  return m_inner.break_lease(env);
}

Expected<std::optional<core::Lease>> FailingStore::get_lease(std::string_view env) {
  if (auto err = take("get_lease")) {
    return Unexpected(*err);
  }
  return m_inner.get_lease(env);
}

Expected<std::vector<core::Lease>> FailingStore::list_leases() {
  if (auto err = take("list_leases")) {
    return Unexpected(*err);
  }
  return m_inner.list_leases();
}

Expected<bool> FailingStore::record_delivery(std::string_view delivery_id, util::Millis at) {
  if (auto err = take("record_delivery")) {
    return Unexpected(*err);
  }
  return m_inner.record_delivery(delivery_id, at);
}

Expected<void> FailingStore::prune_deliveries(util::Millis before) {
  if (auto err = take("prune_deliveries")) {
    return Unexpected(*err);
  }
  return m_inner.prune_deliveries(before);
}

Expected<int64_t> FailingStore::insert_job_run(const core::JobRun& run) {
  if (auto err = take("insert_job_run")) {
    return Unexpected(*err);
  }
  return m_inner.insert_job_run(run);
}

Expected<void> FailingStore::update_job_run(const core::JobRun& run) {
  if (auto err = take("update_job_run")) {
    return Unexpected(*err);
  }
  return m_inner.update_job_run(run);
}

Expected<std::vector<core::JobRun>> FailingStore::list_job_runs(std::string_view env, size_t limit) {
  if (auto err = take("list_job_runs")) {
    return Unexpected(*err);
  }
  return m_inner.list_job_runs(env, limit);
}

Expected<std::optional<std::string>> FailingStore::get_setting(std::string_view key) {
  if (auto err = take("get_setting")) {
    return Unexpected(*err);
  }
  return m_inner.get_setting(key);
}

Expected<void> FailingStore::set_setting(std::string_view key, std::string_view value) {
  if (auto err = take("set_setting")) {
    return Unexpected(*err);
  }
  return m_inner.set_setting(key, value);
}

Expected<size_t> FailingStore::purge_destroyed_environments(util::Millis destroyed_before) {
  if (auto err = take("purge_destroyed_environments")) {
    return Unexpected(*err);
  }
  return m_inner.purge_destroyed_environments(destroyed_before);
}

Expected<size_t> FailingStore::prune_events(util::Millis before) {
  if (auto err = take("prune_events")) {
    return Unexpected(*err);
  }
  return m_inner.prune_events(before);
}

Expected<bool> FailingStore::any_delivery_recorded(const std::vector<std::string>& keys) {
  if (auto err = take("any_delivery_recorded")) {
    return Unexpected(*err);
  }
  return m_inner.any_delivery_recorded(keys);
}

Expected<void> FailingStore::insert_delivery_keys(const std::vector<store::DeliveryKey>& keys) {
  if (auto err = take("insert_delivery_keys")) {
    return Unexpected(*err);
  }
  return m_inner.insert_delivery_keys(keys);
}

Expected<void> FailingStore::insert_api_token(const store::ApiToken& token) {
  if (auto err = take("insert_api_token")) {
    return Unexpected(*err);
  }
  return m_inner.insert_api_token(token);
}

Expected<std::optional<store::ApiToken>> FailingStore::find_api_token(std::string_view hash) {
  if (auto err = take("find_api_token")) {
    return Unexpected(*err);
  }
  return m_inner.find_api_token(hash);
}

Expected<std::vector<store::ApiToken>> FailingStore::list_api_tokens() { return m_inner.list_api_tokens(); }

Expected<store::ApiToken> FailingStore::revoke_api_token(std::string_view id, util::Millis at) {
  if (auto err = take("revoke_api_token")) {
    return Unexpected(*err);
  }
  return m_inner.revoke_api_token(id, at);
}

Expected<void> FailingStore::touch_api_token(std::string_view id, util::Millis at) {
  if (auto err = take("touch_api_token")) {
    return Unexpected(*err);
  }
  return m_inner.touch_api_token(id, at);
}

Expected<void> FailingStore::put_secret(const store::StoredSecret& secret) {
  if (auto err = take("put_secret")) {
    return Unexpected(*err);
  }
  return m_inner.put_secret(secret);
}

Expected<std::vector<store::StoredSecret>> FailingStore::list_secrets() {
  if (auto err = take("list_secrets")) {
    return Unexpected(*err);
  }
  return m_inner.list_secrets();
}

Expected<void> FailingStore::delete_secret(std::string_view scope, std::string_view name) {
  if (auto err = take("delete_secret")) {
    return Unexpected(*err);
  }
  return m_inner.delete_secret(scope, name);
}

} // namespace idp::testing

namespace idp::testing {

Expected<void> FailingStore::insert_preview_grant(const store::PreviewGrant& grant) {
  return m_inner.insert_preview_grant(grant);
}
Expected<std::optional<store::PreviewGrant>> FailingStore::find_preview_grant(std::string_view id) {
  return m_inner.find_preview_grant(id);
}
Expected<std::vector<store::PreviewGrant>> FailingStore::list_preview_grants(std::string_view env) {
  return m_inner.list_preview_grants(env);
}
Expected<store::PreviewGrant> FailingStore::revoke_preview_grant(std::string_view id, util::Millis at) {
  return m_inner.revoke_preview_grant(id, at);
}
Expected<store::ForkRequest> FailingStore::update_fork_request(std::string_view repo, int pr,
                                                               const store::ForkMutator& mutate) {
  return m_inner.update_fork_request(repo, pr, mutate);
}
Expected<std::optional<store::ForkRequest>> FailingStore::get_fork_request(std::string_view repo, int pr) {
  return m_inner.get_fork_request(repo, pr);
}
Expected<std::vector<store::ForkRequest>> FailingStore::list_fork_requests() { return m_inner.list_fork_requests(); }

Expected<void> FailingStore::add_usage(const std::vector<store::UsageHour>& usage) {
  if (auto err = take("add_usage")) {
    return Unexpected(*err);
  }
  return m_inner.add_usage(usage);
}
Expected<std::vector<store::UsageHour>> FailingStore::list_usage(util::Millis from, util::Millis to,
                                                                 std::string_view env) {
  return m_inner.list_usage(from, to, env);
}
Expected<size_t> FailingStore::prune_usage(util::Millis before) { return m_inner.prune_usage(before); }

} // namespace idp::testing
