#pragma once
// InMemoryStore: a StateStore in maps behind one mutex, for tests of the layers above the
// store (engine, sources, api). Passes the same contract suite as SqliteStore
// (tests/contract/store_contract.hpp), including the extra guarantees listed in
// store/sqlite/sqlite_store.hpp. Nothing persists; every method is thread-safe; the
// Mutator of update_environment runs with the store locked and must not call back into it.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "store/state_store.hpp"

namespace idp::testing {

class InMemoryStore final : public store::StateStore {
public:
  InMemoryStore() = default;

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

  Expected<bool> try_acquire_lease(std::string_view env, std::string_view owner, util::Millis now,
                                   util::Millis ttl) override;
  Expected<bool> renew_lease(std::string_view env, std::string_view owner, util::Millis now, util::Millis ttl) override;
  Expected<void> release_lease(std::string_view env, std::string_view owner) override;
  Expected<void> break_lease(std::string_view env) override;
  Expected<std::optional<core::Lease>> get_lease(std::string_view env) override;
  Expected<std::vector<core::Lease>> list_leases() override;

  Expected<bool> record_delivery(std::string_view delivery_id, util::Millis at) override;
  Expected<bool> any_delivery_recorded(const std::vector<std::string>& keys) override;
  Expected<void> insert_delivery_keys(const std::vector<store::DeliveryKey>& keys) override;
  Expected<void> prune_deliveries(util::Millis before) override;

  Expected<int64_t> insert_job_run(const core::JobRun& run) override;
  Expected<void> update_job_run(const core::JobRun& run) override;
  Expected<std::vector<core::JobRun>> list_job_runs(std::string_view env, size_t limit) override;

  Expected<void> insert_api_token(const store::ApiToken& token) override;
  Expected<std::optional<store::ApiToken>> find_api_token(std::string_view hash) override;
  Expected<std::vector<store::ApiToken>> list_api_tokens() override;
  Expected<store::ApiToken> revoke_api_token(std::string_view id, util::Millis at) override;
  Expected<void> touch_api_token(std::string_view id, util::Millis at) override;
  Expected<void> insert_preview_grant(const store::PreviewGrant& grant) override;
  Expected<std::optional<store::PreviewGrant>> find_preview_grant(std::string_view id) override;
  Expected<std::vector<store::PreviewGrant>> list_preview_grants(std::string_view env) override;
  Expected<store::ForkRequest> update_fork_request(std::string_view repo, int pr,
                                                   const store::ForkMutator& mutate) override;
  Expected<std::optional<store::ForkRequest>> get_fork_request(std::string_view repo, int pr) override;
  Expected<std::vector<store::ForkRequest>> list_fork_requests() override;
  Expected<void> add_usage(const std::vector<store::UsageHour>& usage) override;
  Expected<std::vector<store::UsageHour>> list_usage(util::Millis from, util::Millis to, std::string_view env) override;
  Expected<size_t> prune_usage(util::Millis before) override;
  Expected<store::PreviewGrant> revoke_preview_grant(std::string_view id, util::Millis at) override;
  Expected<void> put_secret(const store::StoredSecret& secret) override;
  Expected<std::vector<store::StoredSecret>> list_secrets() override;
  Expected<void> delete_secret(std::string_view scope, std::string_view name) override;

  Expected<std::optional<std::string>> get_setting(std::string_view key) override;
  Expected<void> set_setting(std::string_view key, std::string_view value) override;

private:
  // Both assume m_mutex is held.
  Expected<void> check_source_key_free(const core::Environment& env) const;
  void append_events_for(const std::string& env_name, const std::vector<core::Event>& events);

  std::mutex m_mutex;
  // Every map below is guarded by m_mutex. std::less<> allows lookups by string_view.
  std::map<std::string, core::Environment, std::less<>> m_environments;
  std::map<int64_t, core::Revision> m_revisions;
  std::vector<core::Event> m_events; // ascending id
  std::map<std::string, core::Lease, std::less<>> m_leases;
  std::map<std::string, util::Millis, std::less<>> m_deliveries;
  std::map<int64_t, core::JobRun> m_job_runs;
  std::map<std::string, std::string, std::less<>> m_settings;
  std::vector<store::PreviewGrant> m_preview_grants;                            // in insertion order
  std::map<std::pair<std::string, int>, store::ForkRequest> m_fork_requests;    // by (repo, pr)
  std::map<std::pair<util::Millis, std::string>, store::UsageHour> m_usage;     // by (hour, env)
  std::vector<store::ApiToken> m_api_tokens;                                    // in insertion order (= oldest first)
  std::map<std::pair<std::string, std::string>, store::StoredSecret> m_secrets; // (name, scope) →
  int64_t m_next_revision_id = 1;
  int64_t m_next_event_id = 1;
  int64_t m_next_job_run_id = 1;
};

} // namespace idp::testing
