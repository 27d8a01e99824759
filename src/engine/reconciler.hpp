#pragma once
// Reconciler: level-triggered. A loop compares desired with observed state for every
// environment every resync_interval, and at once for the environment a trigger names (one
// read, not the whole list: at 1,000 environments a full pass on every write kept a core
// busy), and hands what is due to a bounded worker pool. A worker holds the environment's
// lease while it calls the driver, so one worker acts on an environment at a time, also
// across daemons sharing a store.
// The lease is renewed while the worker runs; when a renewal finds it lost (released,
// broken by `idp unlock`, taken over after expiring) the worker's operation is cancelled
// and it writes nothing more. A failed store write is logged and retried (StoreRetry)
// until it succeeds, the lease is lost or the reconciler stops; never dropped.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/create_resolution.hpp"
#include "engine/deploy_metrics.hpp"
#include "engine/driver_set.hpp"
#include "engine/options.hpp"
#include "engine/store_retry.hpp"
#include "engine/templates.hpp"
#include "store/state_store.hpp"
#include "util/time.hpp"

namespace idp::engine {

// An event of the engine (actor "engine") about `e` that changes no phase.
core::Event engine_event(const core::Environment& e, util::Millis now, std::string action, std::string reason);

class Reconciler {
public:
  Reconciler(store::StateStore& store, const DriverSet& drivers, const TemplateCatalog& templates, util::Clock& clock,
             const EngineOptions& options);
  ~Reconciler();

  // Resolves the source of environments created through the API (pending with no commit,
  // engine/create_resolution.hpp) in the worker that deploys them. Set before start().
  void set_create_resolver(CreateResolver resolver);
  // Reads a file of a repository at a commit (RepoResolver::read_file): nullopt when absent.
  using RepoFileReader = std::function<Expected<std::optional<std::string>>(
      const std::string& repo, const std::string& commit, const std::string& path)>;
  // With a reader, a deploy of a template with a database hands the seed's SQL
  // (`database.seed` at the deployed commit) to the driver as template_values'
  // "database_seed", for drivers without a checkout (kubernetes). Set before start().
  void set_repo_reader(RepoFileReader reader);

  void start();
  // Cancels in-flight operations and joins every thread.
  void stop();

  // Something changed for `env` ("" = look at everything now).
  void wake(const std::string& env = "");
  // Asks an in-flight operation on `env` to stop: it was superseded by `generation` (a push,
  // a redeploy), or, with 0, the environment is being destroyed. An operation that already
  // acts on `generation` or a newer one goes on: the write that asked for it can signal
  // after a worker has picked it up.
  void cancel(const std::string& env, int64_t generation = 0);

  // What is due for an environment at `now` (exposed for tests).
  // sleep / wake: the environment's Sleep asks the driver to stop it (to_sleep) or to start
  // it again (to_wake).
  enum class Action { none, deploy, destroy, observe, sleep, wake };
  Action due(const core::Environment& env, util::Millis now) const;

  // Number of operations running or queued (for tests and /metrics).
  size_t busy() const;
  // Deploy telemetry in the Prometheus text format (/metrics): phase histograms, deploys
  // by outcome, the queue depth.
  std::string metrics_text() const { return m_metrics.prometheus(busy()); }

private:
  // What the engine hands the driver besides the config: the seed's SQL (set_repo_reader).
  // An error when the repository cannot be read.
  Expected<nlohmann::json> template_values_for(const core::Environment& env, const core::AppConfig& cfg,
                                               const std::vector<std::string>& components) const;
  // One worker's turn on an environment, while it holds the lease.
  struct Operation {
    std::string name;
    std::shared_ptr<std::atomic<bool>> cancel; // cancel(), stop() or a lost lease
    std::atomic<bool> lease_lost{false};
    std::atomic<util::Millis> lease_expires_at{0}; // as of the last acquire or renewal
    // Under m_mu: the generation the operation acts on (-1 until it has read the
    // environment), and the newest generation a cancel() asked for before that was known.
    int64_t generation = -1;
    int64_t cancel_below = 0;
  };
  // Records the generation `op` acts on, and cancels it if a cancel() for a newer one came first.
  void acts_on(Operation& op, int64_t generation);

  void loop();
  // Queues env when something is due for it; otherwise brings `next_pass` forward to its
  // next attempt. Loop thread.
  void consider(const core::Environment& env, util::Millis now, util::Millis& next_pass);
  void worker();
  void renew_leases();
  void renew(Operation& op);
  void process(const std::string& name);
  // Whether a new environment (never deployed) may start now under EngineOptions::limits.
  // When it may not, its message says so ("queued (2 of 5): …", written when it changes)
  // and the next pass asks again; when it may, it is held in m_admitted until its deploy
  // has recorded a phase that counts it.
  bool admit(const core::Environment& env, Operation& op);
  // limits.on_full evict_lru: puts the `needed` least recently requested of `candidates` to
  // sleep (recorded, then the reconciler acts) to make room for `env`; whether it could.
  bool evict_for(const core::Environment& env, std::vector<const core::Environment*> candidates, size_t needed,
                 const std::string& limit);
  bool acquire_lease(const std::string& name);
  std::shared_ptr<Operation> begin_operation(const std::string& name);
  void end_operation(const std::shared_ptr<Operation>& op);
  // The worker's half of an API create (engine/reconciler_source.cpp): fetches the branch,
  // reads its config and records them. The environment to deploy, or nullopt when that
  // failed (recorded as its failed phase) or the environment changed meanwhile.
  std::optional<core::Environment> resolve_source(const core::Environment& env, Operation& op);
  // How long the change a deploy acts on waited for a worker (from the environment's
  // updated_at to the operation's start; -1: not a change, e.g. a crashed app's restart), and
  // how long fetching the branch took (-1: not fetched).
  struct DeployTiming {
    int64_t queued_ms = -1;
    int64_t fetch_ms = -1;
  };
  void do_deploy(core::Environment env, drivers::Driver& driver, Operation& op, DeployTiming timing);
  void do_destroy(core::Environment env, drivers::Driver& driver, Operation& op);
  void do_observe(core::Environment env, drivers::Driver& driver, Operation& op);
  // The driver stopped env's app with the server (Health::stopped): applies the serving
  // revision again, with no new revision and no phase change; falls back to a restart
  // (degraded, new revision) when there is no serving revision to start.
  // A wake (Sleep::State::to_wake) is the same start of the serving revision: `woken` says
  // so in its events and ends the Sleep.
  void do_resume(core::Environment env, drivers::Driver& driver, Operation& op, const std::string& detail,
                 bool woken = false);
  // Idle sleep: the driver stops the environment (Driver::sleep), then it is recorded asleep.
  void do_sleep(core::Environment env, drivers::Driver& driver, Operation& op);
  // update_environment of op's environment, retried while the store fails (StoreRetry);
  // gives up only when the lease is lost or the reconciler stops.
  Expected<core::Environment> write_env(Operation& op, const std::string& what, const store::Mutator& mutate);
  // update_revision, retried the same way.
  Expected<void> write_revision(Operation& op, const std::string& what, const core::Revision& rev);

  store::StateStore& m_store;
  const DriverSet& m_drivers;
  const TemplateCatalog& m_templates;
  util::Clock& m_clock;
  EngineOptions m_options;

  std::mutex m_admit_mu;            // one admission decision at a time
  std::set<std::string> m_admitted; // admitted, its deploy not yet recorded; guarded by m_admit_mu
  mutable std::mutex m_mu;
  std::condition_variable m_loop_cv;
  std::condition_variable m_work_cv;
  bool m_running = false;
  bool m_wake_all = false;
  std::set<std::string> m_wake_names; // looked at on the loop's next turn, without a full pass
  std::deque<std::string> m_queue;
  std::set<std::string> m_queued;
  std::set<std::string> m_inflight;
  std::map<std::string, std::shared_ptr<Operation>> m_held; // in-flight operations by environment
  std::map<std::string, util::Millis> m_last_probe;
  std::map<std::string, int> m_unhealthy;
  std::atomic<bool> m_shutdown{false};
  StoreRetry m_retry;
  DeployMetrics m_metrics;
  CreateResolver m_create_resolver; // set before start(), read-only after
  RepoFileReader m_repo_reader;     // set before start(), read-only after
  std::thread m_loop_thread;
  std::thread m_renew_thread;
  std::vector<std::thread> m_workers;
};

} // namespace idp::engine
