#pragma once
// FailingStore: a StateStore decorator over another store (usually InMemoryStore) that
// fails chosen calls, to test what the layers above do when a store write fails. With
// nothing scripted it only forwards. Thread-safe; scripting may happen while it is in use.

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/state_store.hpp"

namespace idp::testing {

class FailingStore final : public store::StateStore {
public:
  explicit FailingStore(store::StateStore& inner) : m_inner(inner) {}

  // --- Scripting ---
  // The next `n` calls of `method` (its name, e.g. "insert_revision") fail with `code`
  // before reaching the inner store.
  void fail_next(const std::string& method, int n, ErrorCode code = ErrorCode::io_error);
  // The next `n` update_environment calls whose mutated environment satisfies `pred` fail
  // with `code` after the mutator ran (so the write is rolled back, like a failed commit).
  void fail_updates_where(std::function<bool(const core::Environment&)> pred, int n,
                          ErrorCode code = ErrorCode::io_error);
  // Runs `hook` once, right after the next list_environments has read its answer and
  // before it is returned (a change that lands while the caller holds a stale list).
  void after_next_list(std::function<void()> hook);
  // Runs `hook` once, at the start of the next call of any of `methods` (before it reaches
  // the inner store), on the caller's thread: lets a test hold that caller at that point.
  void before_next(std::vector<std::string> methods, std::function<void()> hook);
  // How many failures were injected into `method` so far.
  int injected(const std::string& method) const;
  // How many times `method` was called so far (failed or forwarded).
  int calls(const std::string& method) const;

  // --- StateStore: forwarded unless scripted to fail ---
  Expected<core::Environment> insert_environment(const core::Environment& env,
                                                 const std::vector<core::Event>& events) override;
  Expected<core::Environment> get_environment(std::string_view name) override;
  Expected<std::optional<core::Environment>> find_by_source_key(std::string_view source_key) override;
  Expected<std::vector<core::Environment>> list_environments(bool include_destroyed) override;
  Expected<core::Environment> update_environment(std::string_view name, const store::Mutator& mutate) override;
  Expected<size_t> purge_destroyed_environments(util::Millis destroyed_before) override;

  Expected<int64_t> insert_revision(const core::Revision& rev) override;
  Expected<void> update_revision(const core::Revision& rev) override;
  Expected<core::Revision> get_revision(int64_t id) override;
  Expected<std::vector<core::Revision>> list_revisions(std::string_view env, size_t limit) override;

  Expected<int64_t> append_event(const core::Event& ev) override;
  Expected<std::vector<core::Event>> list_events(const store::EventQuery& q) override;
  Expected<size_t> prune_events(util::Millis before) override;
  Expected<bool> any_delivery_recorded(const std::vector<std::string>& keys) override;
  Expected<void> insert_delivery_keys(const std::vector<store::DeliveryKey>& keys) override;

  Expected<void> insert_api_token(const store::ApiToken& token) override;
  Expected<std::optional<store::ApiToken>> find_api_token(std::string_view hash) override;
  Expected<std::vector<store::ApiToken>> list_api_tokens() override;
  Expected<store::ApiToken> revoke_api_token(std::string_view id, util::Millis at) override;
  Expected<void> touch_api_token(std::string_view id, util::Millis at) override;
  Expected<void> insert_preview_grant(const store::PreviewGrant& grant) override;
  Expected<std::optional<store::PreviewGrant>> find_preview_grant(std::string_view id) override;
  Expected<std::vector<store::PreviewGrant>> list_preview_grants(std::string_view env) override;
  Expected<store::PreviewGrant> revoke_preview_grant(std::string_view id, util::Millis at) override;
  Expected<store::ForkRequest> update_fork_request(std::string_view repo, int pr,
                                                   const store::ForkMutator& mutate) override;
  Expected<std::optional<store::ForkRequest>> get_fork_request(std::string_view repo, int pr) override;
  Expected<std::vector<store::ForkRequest>> list_fork_requests() override;
  Expected<void> add_usage(const std::vector<store::UsageHour>& usage) override;
  Expected<std::vector<store::UsageHour>> list_usage(util::Millis from, util::Millis to, std::string_view env) override;
  Expected<size_t> prune_usage(util::Millis before) override;
  Expected<void> put_secret(const store::StoredSecret& secret) override;
  Expected<std::vector<store::StoredSecret>> list_secrets() override;
  Expected<void> delete_secret(std::string_view scope, std::string_view name) override;

  Expected<bool> try_acquire_lease(std::string_view env, std::string_view owner, util::Millis now,
                                   util::Millis ttl) override;
  Expected<bool> renew_lease(std::string_view env, std::string_view owner, util::Millis now, util::Millis ttl) override;
  Expected<void> release_lease(std::string_view env, std::string_view owner) override;
  Expected<void> break_lease(std::string_view env) override;
  Expected<std::optional<core::Lease>> get_lease(std::string_view env) override;
  Expected<std::vector<core::Lease>> list_leases() override;

  Expected<bool> record_delivery(std::string_view delivery_id, util::Millis at) override;
  Expected<void> prune_deliveries(util::Millis before) override;

  Expected<int64_t> insert_job_run(const core::JobRun& run) override;
  Expected<void> update_job_run(const core::JobRun& run) override;
  Expected<std::vector<core::JobRun>> list_job_runs(std::string_view env, size_t limit) override;

  Expected<std::optional<std::string>> get_setting(std::string_view key) override;
  Expected<void> set_setting(std::string_view key, std::string_view value) override;

private:
  struct Plan {
    int remaining = 0;
    ErrorCode code = ErrorCode::io_error;
  };
  // The error to fail `method` with now, if one is scripted (and counts it).
  std::optional<Error> take(const std::string& method);

  store::StateStore& m_inner;
  mutable std::mutex m_mu;
  std::map<std::string, Plan> m_plans;                         // guarded by m_mu
  std::map<std::string, int> m_injected;                       // guarded by m_mu
  std::map<std::string, int> m_calls;                          // guarded by m_mu
  std::function<bool(const core::Environment&)> m_update_pred; // guarded by m_mu
  Plan m_update_plan;                                          // guarded by m_mu
  std::function<void()> m_after_list;                          // guarded by m_mu
  std::vector<std::string> m_before_methods;                   // guarded by m_mu
  std::function<void()> m_before;                              // guarded by m_mu
};

} // namespace idp::testing
