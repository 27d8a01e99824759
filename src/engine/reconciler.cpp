#include "engine/reconciler.hpp"

#include <algorithm>
#include <functional>
#include <optional>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "engine/controller.hpp"
#include "util/failpoint.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/periodic_thread.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::engine {

using core::Desired;
using core::Environment;
using core::Event;
using core::Phase;
using core::Revision;
using core::RevisionStatus;

namespace {

const std::string k_actor = "engine";

// `msg` with `suffix` at the end of its first line: a driver's reason may carry the
// lines of a command's output that say why after its first line (tables show only the
// first line), so what the engine adds belongs there.
std::string with_suffix(const std::string& msg, const std::string& suffix) {
  size_t nl = msg.find('\n');
  return nl == std::string::npos ? msg + suffix : msg.substr(0, nl) + suffix + msg.substr(nl);
}

// Progress reported by a driver, written to the store as it happens. Writes are retried
// (StoreRetry) until they succeed or `give_up` says the worker lost its lease; a step
// message also stops being retried once the operation is cancelled (the next step or the
// final phase replaces it anyway).
class EngineProgress final : public drivers::Progress {
public:
  EngineProgress(store::StateStore& store, StoreRetry& retry, std::string env, int64_t revision_id,
                 std::shared_ptr<std::atomic<bool>> cancel, std::function<bool()> give_up, util::Clock& clock)
      : m_store(store), m_retry(retry), m_env(std::move(env)), m_revision_id(revision_id), m_cancel(std::move(cancel)),
        m_give_up(std::move(give_up)), m_clock(clock) {}

  void step(std::string_view what) override {
    std::string msg(what);
    (void)m_retry.run<Environment>( // the outcome is logged by run(); a step is not worth failing the apply for
        m_env + ": record step",
        [&] {
          return m_store.update_environment(m_env, [&](Environment& e, std::vector<Event>&) -> Expected<void> {
            e.message = msg;
            return {};
          });
        },
        [&] { return cancelled() || m_give_up(); });
  }

  void revision_status(RevisionStatus status, std::string_view message) override {
    if (m_revision_id == 0) {
      return; // a destroy: it has no revision
    }
    if (status == RevisionStatus::failed) {
      // The engine records it as apply() returns, in one write with the error and the
      // app's last log lines (do_deploy): a reader never sees a failed revision without them.
      return;
    }
    util::Millis now = m_clock.now_ms();
    // Re-read inside each attempt: the write replaces the whole row.
    auto written = m_retry.run<void>(
        m_env + ": record revision " + std::to_string(m_revision_id) + " " +
            std::string(core::revision_status_name(status)),
        [&]() -> Expected<void> {
          IDP_TRY_ASSIGN(Revision rev, m_store.get_revision(m_revision_id));
          rev.status = status;
          rev.message = std::string(message);
          if (status == RevisionStatus::serving || status == RevisionStatus::failed) {
            rev.finished_at = now;
          }
          return m_store.update_revision(rev);
        },
        m_give_up);
    (void)written; // logged by run(); the environment's own phase is written separately and decides
  }

  bool cancelled() const override { return m_cancel && m_cancel->load(); }
  const std::atomic<bool>* cancel_flag() const override { return m_cancel.get(); }

  // Telemetry: the driver's phases, each from the end of the previous one (the first from
  // the start of the apply, start_phases()).
  void phase(std::string_view name) override {
    int64_t now = util::steady_ms();
    std::lock_guard<std::mutex> g(m_phase_mu);
    m_phases.emplace_back(std::string(name), std::max<int64_t>(0, now - m_mark));
    m_mark = now;
  }
  void start_phases() {
    std::lock_guard<std::mutex> g(m_phase_mu);
    m_mark = util::steady_ms();
  }
  DeployPhases phases() const {
    std::lock_guard<std::mutex> g(m_phase_mu);
    return m_phases;
  }

private:
  mutable std::mutex m_phase_mu;
  int64_t m_mark = util::steady_ms();
  DeployPhases m_phases;
  store::StateStore& m_store;
  StoreRetry& m_retry;
  std::string m_env;
  int64_t m_revision_id;
  std::shared_ptr<std::atomic<bool>> m_cancel;
  std::function<bool()> m_give_up;
  util::Clock& m_clock;
};

// "host:pid:starttime" of a lease owner → is that process gone (on this host)?
bool owner_is_dead_local(const std::string& owner) {
  auto parts = util::split(owner, ':');
  if (parts.size() != 3) {
    return false;
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  if (parts[0] != host) {
    return false;
  }
  auto pid = util::parse_int<pid_t>(parts[1], 1);
  if (!pid) {
    return false;
  }
  auto st = util::process_start_time(*pid);
  return !st || std::to_string(*st) != parts[2];
}

} // namespace

Reconciler::Reconciler(store::StateStore& store, const DriverSet& drivers, const TemplateCatalog& templates,
                       util::Clock& clock, const EngineOptions& options)
    : m_store(store), m_drivers(drivers), m_templates(templates), m_clock(clock), m_options(options),
      m_retry(options.store_retry_base, options.store_retry_max) {}

Reconciler::~Reconciler() { stop(); }

void Reconciler::start() {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_running) {
    return;
  }
  m_running = true;
  m_shutdown = false;
  m_retry.restart();
  m_wake_all = true;
  m_loop_thread = std::thread([this] { util::thread_main("reconciler", [this] { loop(); }); });
  m_renew_thread = std::thread([this] { util::thread_main("lease_renew", [this] { renew_leases(); }); });
  for (size_t i = 0; i < std::max<size_t>(1, m_options.workers); ++i) {
    m_workers.emplace_back([this] { worker(); });
  }
}

void Reconciler::stop() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (!m_running) {
      return;
    }
    m_running = false;
    m_shutdown = true;
    for (auto& [_, op] : m_held) {
      op->cancel->store(true);
    }
  }
  m_retry.stop();
  m_loop_cv.notify_all();
  m_work_cv.notify_all();
  if (m_loop_thread.joinable()) {
    m_loop_thread.join();
  }
  if (m_renew_thread.joinable()) {
    m_renew_thread.join();
  }
  for (auto& t : m_workers) {
    if (t.joinable()) {
      t.join();
    }
  }
  m_workers.clear();
}

void Reconciler::wake(const std::string& env) {
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_wake_names.insert(env);
  }
  m_loop_cv.notify_all();
}

void Reconciler::cancel(const std::string& env, int64_t generation) {
  {
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_held.find(env);
    if (it != m_held.end()) {
      Operation& op = *it->second;
      if (generation > 0 && op.generation < 0) {
        op.cancel_below = std::max(op.cancel_below, generation); // decided once it has read the environment
      } else if (generation <= 0 || op.generation < generation) {
        op.cancel->store(true);
      }
    }
  }
  m_retry.notify();
}

void Reconciler::acts_on(Operation& op, int64_t generation) {
  std::lock_guard<std::mutex> g(m_mu);
  op.generation = generation;
  if (op.cancel_below > generation) {
    op.cancel->store(true);
  }
}

size_t Reconciler::busy() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_queue.size() + m_inflight.size();
}

std::shared_ptr<Reconciler::Operation> Reconciler::begin_operation(const std::string& name) {
  auto op = std::make_shared<Operation>();
  op->name = name;
  op->lease_expires_at = m_clock.now_ms() + m_options.lease_ttl;
  std::lock_guard<std::mutex> g(m_mu);
  op->cancel = std::make_shared<std::atomic<bool>>(m_shutdown.load());
  m_held[name] = op;
  return op;
}

void Reconciler::end_operation(const std::shared_ptr<Operation>& op) {
  {
    // Out of the renewer's sight before the lease goes, so it does not renew a lease
    // that is being released (renew_lease would refuse anyway: it never re-creates one).
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_held.find(op->name);
    if (it != m_held.end() && it->second == op) {
      m_held.erase(it);
    }
  }
  if (op->lease_lost) {
    return; // not ours any more: releasing could only fail or free someone else's
  }
  (void)m_retry.run<void>(op->name + ": release lease", // outcome logged by run(); an unreleased lease expires
                          [&] { return m_store.release_lease(op->name, m_options.owner_id); });
}

Expected<Environment> Reconciler::write_env(Operation& op, const std::string& what, const store::Mutator& mutate) {
  return m_retry.run<Environment>(
      op.name + ": " + what, [&] { return m_store.update_environment(op.name, mutate); },
      [&] { return op.lease_lost.load(); });
}

Expected<void> Reconciler::write_revision(Operation& op, const std::string& what, const Revision& rev) {
  return m_retry.run<void>(
      op.name + ": " + what, [&] { return m_store.update_revision(rev); }, [&] { return op.lease_lost.load(); });
}

Reconciler::Action Reconciler::due(const Environment& env, util::Millis now) const {
  if (env.phase == Phase::destroyed) {
    return Action::none;
  }
  bool retry_ok = env.next_attempt_at <= now;
  if (env.desired == Desired::absent || env.phase == Phase::destroying) {
    return retry_ok ? Action::destroy : Action::none;
  }
  if (env.needs_deploy() || env.phase == Phase::pending || env.phase == Phase::provisioning ||
      env.phase == Phase::updating) {
    return retry_ok ? Action::deploy : Action::none;
  }
  if ((env.phase == Phase::ready || env.phase == Phase::degraded) && env.sleep &&
      env.sleep->state != core::Sleep::State::asleep) {
    if (env.sleep->state == core::Sleep::State::to_wake) {
      return Action::wake;
    }
    return retry_ok ? Action::sleep : Action::none;
  }
  if (env.phase == Phase::ready || env.phase == Phase::degraded) {
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_last_probe.find(env.name);
    util::Millis last = it == m_last_probe.end() ? 0 : it->second;
    return now - last >= m_options.health_interval ? Action::observe : Action::none;
  }
  return Action::none;
}

void Reconciler::consider(const Environment& env, util::Millis now, util::Millis& next_pass) {
  Action a = due(env, now);
  if (a != Action::none) {
    std::lock_guard<std::mutex> g(m_mu);
    if (!m_queued.count(env.name) && !m_inflight.count(env.name)) {
      m_queue.push_back(env.name);
      m_queued.insert(env.name);
      m_work_cv.notify_one();
    }
  } else if (env.next_attempt_at > now) {
    next_pass = std::min(next_pass, env.next_attempt_at);
  }
}

void Reconciler::loop() {
  util::Millis next_pass = 0; // when the next full pass is due
  while (true) {
    bool all = false;
    std::set<std::string> names;
    {
      std::lock_guard<std::mutex> g(m_mu);
      if (!m_running) {
        return;
      }
      all = m_wake_all;
      m_wake_all = false;
      names.swap(m_wake_names);
    }
    util::Millis now = m_clock.now_ms();
    if (all || now >= next_pass) {
      next_pass = now + m_options.resync_interval;
      auto envs = m_store.list_environments(false);
      if (!envs) {
        spdlog::warn("reconciler: cannot list environments: {}", envs.error().full_message());
      } else {
        for (const auto& env : *envs) {
          consider(env, now, next_pass);
        }
      }
    } else {
      for (const auto& name : names) {
        auto env = m_store.get_environment(name);
        if (env) {
          consider(*env, now, next_pass);
        } else if (env.error().code != ErrorCode::not_found) {
          // The next full pass (at most resync_interval away) looks at it again.
          spdlog::warn("reconciler: {}: cannot read the environment: {}", name, env.error().full_message());
        }
      }
    }
    std::unique_lock<std::mutex> lk(m_mu);
    util::Millis wait_ms = std::max<util::Millis>(1, next_pass - m_clock.now_ms());
    m_loop_cv.wait_for(lk, std::chrono::milliseconds(wait_ms),
                       [this] { return !m_running || m_wake_all || !m_wake_names.empty(); });
  }
}

void Reconciler::worker() {
  while (true) {
    std::string name;
    {
      std::unique_lock<std::mutex> lk(m_mu);
      m_work_cv.wait(lk, [this] { return !m_running || !m_queue.empty(); });
      if (!m_running) {
        return;
      }
      name = m_queue.front();
      m_queue.pop_front();
      m_queued.erase(name);
      m_inflight.insert(name);
    }
    try {
      process(name);
    } catch (const std::exception& e) {
      spdlog::error("reconciler: {}: unexpected exception: {}", name, e.what());
    }
    {
      std::lock_guard<std::mutex> g(m_mu);
      m_inflight.erase(name);
      m_wake_names.insert(name); // more may be due: a retry, a change that came meanwhile
    }
    m_loop_cv.notify_all();
  }
}

void Reconciler::renew_leases() {
  util::Millis period = std::max<util::Millis>(50, m_options.lease_ttl / 3);
  std::unique_lock<std::mutex> lk(m_mu);
  while (m_running) {
    m_loop_cv.wait_for(lk, std::chrono::milliseconds(period), [this] { return !m_running; });
    if (!m_running) {
      return;
    }
    std::vector<std::shared_ptr<Operation>> ops;
    for (const auto& [_, op] : m_held) {
      ops.push_back(op);
    }
    lk.unlock();
    for (const auto& op : ops) {
      renew(*op);
    }
    lk.lock();
  }
}

void Reconciler::renew(Operation& op) {
  if (op.lease_lost) {
    return;
  }
  util::Millis now = m_clock.now_ms();
  auto renewed = m_store.renew_lease(op.name, m_options.owner_id, now, m_options.lease_ttl);
  if (renewed && *renewed) {
    op.lease_expires_at = now + m_options.lease_ttl;
    return;
  }
  std::string why;
  if (renewed) {
    auto lease = m_store.get_lease(op.name);
    why = lease && *lease ? "it is held by " + (*lease)->owner : "it was released or broken";
  } else if (now < op.lease_expires_at) {
    // Still ours until it expires: the next renewal (a third of the TTL later) tries again.
    spdlog::warn("{}: cannot renew the lease (retrying): {}", op.name, renewed.error().full_message());
    return;
  } else {
    why = "it expired while the store could not renew it: " + renewed.error().full_message();
  }
  {
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_held.find(op.name);
    if (it == m_held.end() || it->second.get() != &op) {
      return; // the operation finished meanwhile and released the lease itself
    }
    op.lease_lost = true;
    op.cancel->store(true);
  }
  m_retry.notify();
  spdlog::error("{}: lease lost ({}); cancelling the operation in progress", op.name, why);
}

bool Reconciler::acquire_lease(const std::string& name) {
  auto got = m_store.try_acquire_lease(name, m_options.owner_id, m_clock.now_ms(), m_options.lease_ttl);
  if (got && *got) {
    return true;
  }
  if (!got) {
    spdlog::warn("reconciler: {}: cannot take the lease (the next pass tries again): {}", name,
                 got.error().full_message());
    return false;
  }
  auto lease = m_store.get_lease(name);
  if (lease && *lease && owner_is_dead_local((*lease)->owner)) {
    spdlog::info("reconciler: {}: breaking lease of dead owner {}", name, (*lease)->owner);
    if (auto broken = m_store.break_lease(name); !broken) {
      // The acquire below fails too; the next pass tries again.
      spdlog::warn("reconciler: {}: cannot break the lease: {}", name, broken.error().full_message());
    }
    got = m_store.try_acquire_lease(name, m_options.owner_id, m_clock.now_ms(), m_options.lease_ttl);
    return got && *got;
  }
  return false;
}

void Reconciler::process(const std::string& name) {
  if (!acquire_lease(name)) {
    return;
  }
  auto op = begin_operation(name);
  auto env = m_store.get_environment(name);
  if (!env) {
    // Nothing was done: the loop's next pass looks at the environment again.
    spdlog::warn("reconciler: {}: cannot read the environment: {}", name, env.error().full_message());
  } else {
    acts_on(*op, env->generation);
    Action a = due(*env, m_clock.now_ms());
    auto driver = m_drivers.get(env->runtime);
    if (!driver) {
      util::Millis now = m_clock.now_ms();
      (void)write_env(*op, "record missing driver", // retried; outcome logged by write_env
                      [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                        e.attempts += 1;
                        e.next_attempt_at = now + backoff_delay(m_options, e.attempts);
                        e.message = driver.error().message;
                        if (e.desired == Desired::present) {
                          set_phase(e, Phase::failed, k_actor, driver.error().message, events, now);
                        }
                        return {};
                      });
    } else if (a == Action::deploy && !admit(*env, *op)) {
      // Queued: over a capacity limit; a later pass admits it once room frees up.
    } else if (a == Action::deploy && awaits_source(*env)) {
      int64_t queued = std::max<int64_t>(0, m_clock.now_ms() - env->updated_at);
      int64_t fetch_started = util::steady_ms();
      if (auto resolved = resolve_source(*env, *op)) {
        do_deploy(*resolved, **driver, *op, DeployTiming{queued, util::steady_ms() - fetch_started});
      }
    } else if (a == Action::deploy) {
      do_deploy(*env, **driver, *op, DeployTiming{std::max<int64_t>(0, m_clock.now_ms() - env->updated_at), -1});
    } else if (a == Action::destroy) {
      do_destroy(*env, **driver, *op);
    } else if (a == Action::observe) {
      do_observe(*env, **driver, *op);
    } else if (a == Action::sleep) {
      do_sleep(*env, **driver, *op);
    } else if (a == Action::wake) {
      do_resume(*env, **driver, *op, "asleep", true);
    }
  }
  {
    std::lock_guard<std::mutex> g(m_admit_mu);
    m_admitted.erase(name); // its deploy has recorded a phase that counts it (or gave up)
  }
  end_operation(op);
}

core::Event engine_event(const core::Environment& e, util::Millis now, std::string action, std::string reason) {
  Event ev;
  ev.env = e.name;
  ev.at = now;
  ev.actor = k_actor;
  ev.action = std::move(action);
  ev.reason = std::move(reason);
  ev.from_phase = ev.to_phase = std::string(core::phase_name(e.phase));
  return ev;
}

namespace {

// An environment that waits for its first start: created, never deployed, not failed.
bool waits_to_start(const Environment& e) {
  return e.desired == Desired::present && e.phase == Phase::pending && e.observed_generation == 0 &&
         e.deployed_commit.empty();
}

} // namespace

bool Reconciler::admit(const Environment& env, Operation& op) {
  const CapacityLimits& lim = m_options.limits;
  if (!lim.any() || !waits_to_start(env)) {
    return true;
  }
  std::lock_guard<std::mutex> g(m_admit_mu);
  auto all = m_store.list_environments(false);
  if (!all) {
    spdlog::warn("reconciler: {}: cannot count environments for the capacity limits: {}", env.name,
                 all.error().full_message());
    return false; // the next pass asks again
  }
  struct Scope {
    const char* what;
    int limit;
    std::function<bool(const Environment&)> in;
  };
  const std::vector<Scope> scopes = {
      {"the server's", lim.global, [](const Environment&) { return true; }},
      {"the repository's", lim.per_repo, [&](const Environment& e) { return e.repo == env.repo; }},
      {"the owner's", lim.per_owner, [&](const Environment& e) { return e.owner == env.owner; }},
  };
  for (const auto& s : scopes) {
    if (s.limit <= 0 || !s.in(env)) {
      continue;
    }
    int running = 0;
    std::vector<const Environment*> waiting;
    std::vector<const Environment*> evictable; // awake and ready: what evict_lru may put to sleep
    for (const auto& e : *all) {
      if (!s.in(e) || e.desired != Desired::present || e.name == env.name) {
        continue;
      }
      if (lim.evict_lru && e.sleep && !waits_to_start(e)) {
        continue; // asleep (or on the way): it holds no room
      }
      if (!waits_to_start(e) || m_admitted.count(e.name)) {
        running += 1;
        if (lim.evict_lru && e.phase == Phase::ready && !e.needs_deploy()) {
          evictable.push_back(&e);
        }
      } else {
        waiting.push_back(&e);
      }
    }
    // Its place among those waiting in this scope, oldest first: the free room goes to the
    // oldest, whichever of them a worker looks at first.
    waiting.push_back(&env);
    std::sort(waiting.begin(), waiting.end(), [](const Environment* a, const Environment* b) {
      return a->created_at != b->created_at ? a->created_at < b->created_at : a->name < b->name;
    });
    size_t place = static_cast<size_t>(std::find(waiting.begin(), waiting.end(), &env) - waiting.begin()) + 1;
    const size_t free = static_cast<size_t>(std::max(0, s.limit - running));
    if (place <= free) {
      continue;
    }
    if (lim.evict_lru && evict_for(env, evictable, place - free,
                                   std::string(s.what) + " limit of " + std::to_string(s.limit) + " environments")) {
      continue;
    }
    // Shown behind those the free room goes to.
    std::string msg = "queued (" + std::to_string(place - free) + " of " + std::to_string(waiting.size() - free) +
                      "): " + s.what + " limit of " + std::to_string(s.limit) + " environment" +
                      (s.limit == 1 ? "" : "s") + " is reached; it starts when one is destroyed";
    if (env.message != msg) {
      util::Millis now = m_clock.now_ms();
      (void)write_env(op, "record queued", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
        if (!waits_to_start(e)) {
          return make_error(ErrorCode::conflict, "no longer waiting");
        }
        bool first = !util::starts_with(e.message, "queued (");
        e.message = msg;
        if (first) {
          events.push_back(engine_event(e, now, "queue", msg));
        }
        return {};
      });
    }
    return false;
  }
  m_admitted.insert(env.name);
  return true;
}

bool Reconciler::evict_for(const Environment& env, std::vector<const Environment*> candidates, size_t needed,
                           const std::string& limit) {
  if (candidates.size() < needed) {
    return false; // not enough awake to make room: it queues
  }
  // Least recently requested first (never requested: since it was created).
  std::vector<std::pair<util::Millis, const Environment*>> by_use;
  for (const Environment* e : candidates) {
    util::Millis used = e->created_at;
    if (auto d = m_drivers.get(e->runtime)) {
      if (auto last = (*d)->last_request(*e); last && *last) {
        used = std::max(used, **last);
      }
    }
    by_use.emplace_back(used, e);
  }
  std::sort(by_use.begin(), by_use.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->name < b.second->name;
  });
  util::Millis now = m_clock.now_ms();
  size_t evicted = 0;
  for (const auto& [used, e] : by_use) {
    if (evicted == needed) {
      break;
    }
    std::string reason = "least recently requested of " + limit + ": put to sleep to make room for " +
                         util::quote(env.name) + " (limits.on_full: evict_lru)";
    auto r = m_store.update_environment(e->name, [&](Environment& x, std::vector<Event>& events) -> Expected<void> {
      if (x.sleep || x.phase != Phase::ready || x.desired != Desired::present) {
        return make_error(ErrorCode::conflict, "no longer awake and ready");
      }
      x.sleep = core::Sleep{core::Sleep::State::to_sleep, "limits", reason, now};
      Event ev = engine_event(x, now, "sleep-requested", reason);
      ev.actor = "limits";
      events.push_back(ev);
      return {};
    });
    if (!r) {
      spdlog::info("reconciler: {}: not evicted for {}: {}", e->name, env.name, r.error().message);
      continue;
    }
    spdlog::info("reconciler: {}: {}", e->name, reason);
    wake(e->name);
    evicted += 1;
  }
  return evicted == needed;
}

void Reconciler::do_deploy(Environment env, drivers::Driver& driver, Operation& op, DeployTiming timing) {
  const int64_t started = util::steady_ms();
  const std::string name = env.name;
  const int64_t gen = env.generation;
  const std::string commit = env.commit;
  const bool first = env.deployed_commit.empty();
  util::Millis now = m_clock.now_ms();
  auto flag = op.cancel;
  auto lost = [&op] { return op.lease_lost.load(); };
  acts_on(op, gen); // a restart after a probe deploys what it read then

  drivers::DeploySpec spec;
  auto fail_config = [&](const Error& err) {
    (void)write_env(op, "record config error", // retried; outcome logged by write_env
                    [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                      e.attempts += 1;
                      e.next_attempt_at = now + backoff_delay(m_options, e.attempts);
                      e.message = err.message;
                      set_phase(e, first ? Phase::failed : Phase::ready, k_actor, err.message, events, now);
                      return {};
                    });
  };
  auto cfg = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
  if (!cfg) {
    fail_config(cfg.error());
    return;
  }
  auto tmpl = m_templates.get(env.template_name);
  if (!tmpl) {
    fail_config(tmpl.error());
    return;
  }
  auto values = template_values_for(env, *cfg, tmpl->components);
  if (!values) {
    fail_config(values.error());
    return;
  }
  Phase target = first ? Phase::provisioning : Phase::updating;
  auto marked = write_env(op, "mark deploying", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    if (e.generation != gen || e.desired != Desired::present) {
      return make_error(ErrorCode::conflict, "superseded");
    }
    set_phase(e, target, k_actor,
              "deploying " + util::short_commit(commit) + " (generation " + std::to_string(gen) + ")", events, now);
    e.message = "deploying " + util::short_commit(commit);
    return {};
  });
  if (!marked) {
    return; // superseded before we started (the loop picks the newer state), or the lease is gone
  }
  Revision rev;
  rev.env = name;
  rev.commit = commit;
  rev.generation = gen;
  rev.status = RevisionStatus::pending;
  rev.created_at = now;
  // No apply without a recorded revision (the driver names its processes and routes after
  // the id). Given up only on a cancel or a lost lease: the phase stays provisioning or
  // updating, so a later pass deploys again.
  auto rev_id = m_retry.run<int64_t>(
      name + ": record revision of " + util::short_commit(commit), [&] { return m_store.insert_revision(rev); },
      [&] { return flag->load() || lost(); });
  if (!rev_id) {
    return;
  }
  rev.id = *rev_id;
  // Its number within the environment (1, 2, 3…) names it to users and to the driver.
  auto stored = m_retry.run<Revision>(
      name + ": read revision " + std::to_string(rev.id), [&] { return m_store.get_revision(rev.id); },
      [&] { return flag->load() || lost(); });
  if (!stored) {
    rev.status = RevisionStatus::superseded;
    rev.message = "superseded before it started";
    rev.finished_at = now;
    (void)write_revision(op, "mark revision " + std::to_string(rev.id) + " superseded", rev); // logged there
    return;
  }
  rev.number = stored->number;

  spec.env = *marked;
  spec.config = std::move(*cfg);
  spec.revision_id = rev.number;
  spec.components = tmpl->components;
  spec.template_dir = tmpl->dir;
  spec.template_values = std::move(*values);
  EngineProgress progress(m_store, m_retry, name, rev.id, flag, lost, m_clock);
  // Telemetry: the engine's phases (the change waiting for a worker, the branch fetched, the
  // config and revision recorded), then the driver's.
  DeployPhases phases;
  if (timing.queued_ms >= 0) {
    phases.emplace_back("queued", timing.queued_ms);
  }
  if (timing.fetch_ms >= 0) {
    phases.emplace_back("fetch", timing.fetch_ms);
  }
  phases.emplace_back("resolve", util::steady_ms() - started);
  progress.start_phases();
  spdlog::info("{}: deploying {} (generation {}, revision {})", name, util::short_commit(commit), gen, rev.number);
  auto result = driver.apply(spec, progress);
  {
    DeployPhases driver_phases = progress.phases();
    phases.insert(phases.end(), driver_phases.begin(), driver_phases.end());
  }
  m_metrics.record(env.runtime, env.template_name,
                   result ? "ready"
                          : (flag->load() || result.error().code == ErrorCode::cancelled ? "cancelled" : "failed"),
                   phases);
  nlohmann::json deploy = deploy_record(rev.number, commit, result ? "ready" : "failed", phases);
  if (result && IDP_FAILPOINT("engine.deploy.applied")) { // applied, not yet recorded (docs/hacking.md)
    result = Unexpected(util::failpoint_error("engine.deploy.applied"));
  }
  now = m_clock.now_ms();

  if (lost()) {
    // Another worker holds the environment now and decides its state; what this apply
    // left behind is its to reconcile (every driver operation is idempotent).
    spdlog::warn("{}: lease lost during the deploy of {}; leaving the environment to its new holder", name,
                 util::short_commit(commit));
    return;
  }

  if (result) {
    progress.revision_status(RevisionStatus::serving, "healthy");
    auto revs = m_retry.run<std::vector<Revision>>(
        name + ": list revisions", [&] { return m_store.list_revisions(name, 20); }, lost);
    if (revs) {
      for (auto r : *revs) {
        if (r.id != rev.id && r.status == RevisionStatus::serving) {
          r.status = RevisionStatus::superseded;
          r.finished_at = now;
          (void)write_revision(op, "mark revision " + std::to_string(r.number) + " superseded", r); // logged there
        }
      }
    }
    // The write that matters most: without it the environment looks undeployed and is
    // deployed again. Retried until it lands (or the daemon stops: then the phase is still
    // provisioning/updating and the next start redeploys, idempotently).
    nlohmann::json outputs = result->outputs;
    outputs["deploy"] = deploy; // core::deploy_summary shows it (idp status, the event below)
    auto ready = write_env(op, "record ready", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
      e.url = result->url;
      e.outputs_json = util::json_dump(outputs);
      e.warnings = result->warnings;
      e.deployed_commit = commit;
      e.observed_generation = std::max(e.observed_generation, gen);
      e.attempts = 0;
      e.next_attempt_at = 0;
      e.message = "";
      e.updated_at = now;
      e.sleep.reset(); // the new revision runs: a deploy wakes a sleeping environment
      set_phase(e, Phase::ready, k_actor,
                "revision " + std::to_string(rev.number) + " (" + util::short_commit(commit) + ") is healthy; " +
                    core::deploy_summary(deploy),
                events, now);
      return {};
    });
    if (!ready) {
      return;
    }
    std::lock_guard<std::mutex> g(m_mu);
    m_unhealthy[name] = 0;
    m_last_probe[name] = now;
    spdlog::info("{}: ready at {} ({})", name, result->url, util::short_commit(commit));
    return;
  }

  const Error& err = result.error();
  if (flag->load() || err.code == ErrorCode::cancelled) {
    progress.revision_status(RevisionStatus::superseded, "superseded before it finished");
    (void)write_env(op, "record superseded deploy", // retried; outcome logged by write_env
                    [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                      set_phase(e, first ? Phase::pending : Phase::ready, k_actor,
                                "deploy of " + util::short_commit(commit) + " superseded before it finished", events,
                                now);
                      e.message = "";
                      return {};
                    });
    spdlog::info("{}: deploy of {} superseded", name, util::short_commit(commit));
    return;
  }

  std::string tail;
  drivers::LogQuery q;
  q.tail = 20;
  if (auto logs = driver.read_logs(spec.env, q)) {
    std::vector<std::string> lines;
    for (const auto& l : logs->lines) {
      lines.push_back(l.text);
    }
    tail = util::join(lines, "\n");
  }
  (void)m_retry.run<void>( // outcome logged by run(); the environment's phase below carries the error too
      name + ": record failed revision " + std::to_string(rev.number),
      [&]() -> Expected<void> {
        Revision failed_rev = rev;
        if (auto r = m_store.get_revision(rev.id)) {
          failed_rev = *r;
        }
        failed_rev.status = RevisionStatus::failed;
        failed_rev.message = err.full_message();
        failed_rev.log_tail = tail;
        failed_rev.finished_at = now;
        return m_store.update_revision(failed_rev);
      },
      lost);

  bool permanent = err.code == ErrorCode::permanent || err.code == ErrorCode::invalid_config ||
                   err.code == ErrorCode::invalid_argument;
  (void)write_env(op, "record failed deploy", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    e.attempts += 1;
    e.updated_at = now;
    if (!first) {
      std::string msg = with_suffix("deploy of " + util::short_commit(commit) + " failed: " + err.full_message(),
                                    "; still serving " + util::short_commit(e.deployed_commit));
      if (permanent) {
        // Rolled back: the old revision keeps serving; wait for a new commit.
        e.observed_generation = std::max(e.observed_generation, gen);
        e.next_attempt_at = 0;
      } else {
        e.next_attempt_at = now + backoff_delay(m_options, e.attempts);
      }
      e.message = msg;
      set_phase(e, Phase::ready, k_actor,
                "revision " + std::to_string(rev.number) + " failed, rolled back: " + err.message, events, now);
      return {};
    }
    if (permanent && e.attempts >= m_options.give_up_after) {
      // The same commit fails the same way (a broken build): stop here rather than rebuild
      // it forever; a new commit or `idp redeploy` bumps the generation and tries again.
      e.observed_generation = std::max(e.observed_generation, gen);
      e.next_attempt_at = 0;
      e.message = with_suffix(err.full_message(),
                              " (failed " + std::to_string(e.attempts) + " times at " + util::short_commit(commit) +
                                  "; not retried until a new commit or `idp redeploy " + name + "`)");
      set_phase(e, Phase::failed, k_actor, err.full_message(), events, now);
      return {};
    }
    util::Millis delay = backoff_delay(m_options, e.attempts);
    e.next_attempt_at = now + delay;
    e.message = with_suffix(err.full_message(), " (attempt " + std::to_string(e.attempts) + ", retrying in " +
                                                    util::format_duration(delay) + ")");
    set_phase(e, Phase::failed, k_actor, err.full_message(), events, now);
    return {};
  }); // retried; outcome logged by write_env
  spdlog::warn("{}: deploy of {} failed: {}", name, util::short_commit(commit), err.full_message());
}

void Reconciler::do_destroy(Environment env, drivers::Driver& driver, Operation& op) {
  const std::string name = env.name;
  util::Millis now = m_clock.now_ms();
  auto lost = [&op] { return op.lease_lost.load(); };
  auto marked = write_env(op, "mark destroying", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    set_phase(e, Phase::destroying, k_actor, "removing everything of the environment", events, now);
    e.message = "destroying";
    return {};
  });
  if (!marked) {
    return; // the lease is gone or the reconciler stops (logged by write_env)
  }
  // A destroy is never cancelled by a push: it finishes, then a newer request is acted on.
  auto never = std::make_shared<std::atomic<bool>>(false);
  EngineProgress progress(m_store, m_retry, name, 0, never, lost, m_clock);
  auto result = driver.destroy(env, progress);
  if (result && IDP_FAILPOINT("engine.destroy.done")) { // destroyed, not yet recorded (docs/hacking.md)
    result = Unexpected(util::failpoint_error("engine.destroy.done"));
  }
  now = m_clock.now_ms();
  if (lost()) {
    spdlog::warn("{}: lease lost during the destroy; leaving the environment to its new holder", name);
    return;
  }
  if (!result) {
    const Error& err = result.error();
    (void)write_env(op, "record failed destroy", // retried; outcome logged by write_env
                    [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                      e.attempts += 1;
                      util::Millis delay = backoff_delay(m_options, e.attempts);
                      e.next_attempt_at = now + delay;
                      e.message = "destroy failed (attempt " + std::to_string(e.attempts) + "): " + err.full_message() +
                                  "; retrying at " + util::format_iso8601(e.next_attempt_at);
                      Event ev;
                      ev.env = name;
                      ev.at = now;
                      ev.actor = k_actor;
                      ev.action = "destroy-failed";
                      ev.reason = e.message;
                      ev.from_phase = ev.to_phase = std::string(core::phase_name(e.phase));
                      events.push_back(ev);
                      return {};
                    });
    spdlog::warn("{}: destroy failed: {}", name, err.full_message());
    return;
  }
  auto revs = m_retry.run<std::vector<Revision>>(
      name + ": list revisions", [&] { return m_store.list_revisions(name, 50); }, lost);
  if (revs) {
    for (auto r : *revs) {
      if (r.status == RevisionStatus::serving || r.status == RevisionStatus::pending ||
          r.status == RevisionStatus::building || r.status == RevisionStatus::starting) {
        r.status = RevisionStatus::stopped;
        r.finished_at = now;
        (void)write_revision(op, "mark revision " + std::to_string(r.number) + " stopped", r); // logged there
      }
    }
  }
  // Without this write the environment stays destroying and the destroy is repeated
  // (idempotent) at the next pass or start.
  auto done = write_env(op, "record destroyed", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    e.url = "";
    e.outputs_json = "{}";
    e.deployed_commit = "";
    e.attempts = 0;
    e.next_attempt_at = 0;
    e.message = "";
    e.updated_at = now;
    if (e.recreate) {
      // A push arrived after the destroy was asked for: start afresh.
      e.recreate = false;
      e.desired = Desired::present;
      e.generation += 1;
      e.observed_generation = 0;
      e.created_at = now;
      set_phase(e, Phase::pending, k_actor, "destroyed; recreating for " + util::short_commit(e.commit), events, now);
      return {};
    }
    e.destroyed_at = now;
    set_phase(e, Phase::destroyed, k_actor, "everything removed", events, now);
    return {};
  });
  if (!done) {
    return;
  }
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_last_probe.erase(name);
    m_unhealthy.erase(name);
  }
  spdlog::info("{}: destroyed", name);
}

void Reconciler::do_observe(Environment env, drivers::Driver& driver, Operation& op) {
  const std::string name = env.name;
  util::Millis now = m_clock.now_ms();
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_last_probe[name] = now;
  }
  auto obs = driver.observe(env);
  if (!obs) {
    spdlog::warn("{}: observe failed: {}", name, obs.error().full_message());
    return;
  }
  int unhealthy = 0;
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (obs->health == drivers::Health::unhealthy) {
      unhealthy = ++m_unhealthy[name];
    } else {
      m_unhealthy[name] = 0;
    }
  }
  bool restart = false;
  bool resume = false;
  auto written = write_env(op, "record health", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    restart = false; // the mutator may run again when a write is retried
    resume = false;
    if (e.desired != Desired::present || (e.phase != Phase::ready && e.phase != Phase::degraded)) {
      return {};
    }
    if (obs->warnings != e.warnings) {
      e.warnings = obs->warnings;
    }
    // A scheduled job's next run moves after every run: `idp status` shows it from outputs.
    if (obs->status.contains("schedule") && obs->status["schedule"].is_object()) {
      auto outputs = nlohmann::json::parse(e.outputs_json, nullptr, false);
      if (outputs.is_object()) {
        const auto& sch = obs->status["schedule"];
        nlohmann::json next = sch.contains("next_run_at") ? sch["next_run_at"] : nlohmann::json(nullptr);
        if (outputs.value("next_run_at", nlohmann::json(nullptr)) != next) {
          outputs["next_run_at"] = next;
          e.outputs_json = util::json_dump(outputs);
        }
      }
    }
    switch (obs->health) {
    case drivers::Health::healthy:
      if (e.phase == Phase::degraded) {
        set_phase(e, Phase::ready, k_actor, "health check passing again", events, now);
        e.message = "";
      }
      break;
    case drivers::Health::unhealthy:
      if (unhealthy >= m_options.unhealthy_threshold && e.phase == Phase::ready) {
        set_phase(e, Phase::degraded, k_actor, "health check failing: " + obs->detail, events, now);
        e.message = "health check failing: " + obs->detail;
      }
      break;
    case drivers::Health::not_running:
      set_phase(e, Phase::degraded, k_actor, "not running (" + obs->detail + "); restarting", events, now);
      e.message = "restarting: " + obs->detail;
      restart = true;
      break;
    case drivers::Health::stopped:
      // Stopped with the server, not crashed: no phase change, the same revision starts again.
      resume = true;
      break;
    case drivers::Health::asleep:
      // Stopped by an idle sleep that the store does not record (or records as ending):
      // it runs again, as after a wake.
      resume = !e.sleep || e.sleep->state == core::Sleep::State::to_wake;
      break;
    case drivers::Health::unknown: break;
    }
    return {};
  });
  if (!written || (!restart && !resume)) {
    return;
  }
  auto fresh = m_store.get_environment(name);
  if (!fresh) {
    // The next probe finds it still not running and restarts it then.
    spdlog::warn("{}: cannot read the environment to restart it: {}", name, fresh.error().full_message());
    return;
  }
  if (resume) {
    do_resume(*fresh, driver, op, obs->detail);
  } else {
    do_deploy(*fresh, driver, op, DeployTiming{});
  }
}

void Reconciler::do_sleep(Environment env, drivers::Driver& driver, Operation& op) {
  const std::string name = env.name;
  auto lost = [&op] { return op.lease_lost.load(); };
  EngineProgress progress(m_store, m_retry, name, 0, op.cancel, lost, m_clock);
  spdlog::info("{}: going to sleep ({})", name, env.sleep ? env.sleep->reason : "");
  auto slept = driver.sleep(env, progress);
  util::Millis now = m_clock.now_ms();
  if (lost() || (!slept && (op.cancel->load() || slept.error().code == ErrorCode::cancelled))) {
    return; // its new holder (or the next start) decides
  }
  (void)write_env(op, "record sleep", // retried; outcome logged by write_env
                  [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                    if (!e.sleep || e.sleep->state != core::Sleep::State::to_sleep) {
                      return {}; // woken (or deployed) meanwhile: the next pass acts on that
                    }
                    if (!slept) {
                      // Not asleep: it stays awake and says why; an idle sleep asks again later.
                      events.push_back(engine_event(e, now, "sleep-failed", slept.error().full_message()));
                      e.sleep.reset();
                      return {};
                    }
                    e.sleep->state = core::Sleep::State::asleep;
                    events.push_back(engine_event(e, now, "sleep", e.sleep->reason + " (by " + e.sleep->by + ")"));
                    return {};
                  });
  std::lock_guard<std::mutex> g(m_mu);
  m_last_probe[name] = now;
}

void Reconciler::do_resume(Environment env, drivers::Driver& driver, Operation& op, const std::string& detail,
                           bool woken) {
  const int64_t started = util::steady_ms();
  const std::string name = env.name;
  auto lost = [&op] { return op.lease_lost.load(); };
  // The revision that served when the server stopped. Without it (or its config) there is
  // nothing to start again: a deploy decides, as after a crash.
  std::optional<Revision> serving;
  if (auto revs = m_retry.run<std::vector<Revision>>(
          name + ": list revisions", [&] { return m_store.list_revisions(name, 20); }, lost)) {
    for (const auto& r : *revs) {
      if (r.status == RevisionStatus::serving && r.commit == env.deployed_commit) {
        serving = r;
        break;
      }
    }
  }
  auto cfg = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
  auto tmpl = m_templates.get(env.template_name);
  util::Millis now = m_clock.now_ms();
  if (!serving || !cfg || !tmpl || env.needs_deploy()) {
    auto marked = write_env(op, "record restart", [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
      set_phase(e, Phase::degraded, k_actor, "not running (" + detail + "); restarting", events, now);
      e.message = "restarting: " + detail;
      if (woken) {
        e.sleep.reset(); // the restart brings it up
      }
      return {};
    });
    if (marked) {
      do_deploy(*marked, driver, op, DeployTiming{});
    }
    return;
  }
  const std::string what =
      "revision " + std::to_string(serving->number) + " (" + util::short_commit(serving->commit) + ")";
  drivers::DeploySpec spec;
  spec.env = env;
  spec.config = std::move(*cfg);
  spec.revision_id = serving->number;
  spec.components = tmpl->components;
  auto values = template_values_for(env, spec.config, spec.components);
  if (values) {
    spec.template_values = std::move(*values);
  } else {
    // Not fatal here: a driver that needs the seed fails the restart and says why.
    spdlog::warn("{}: {}", name, values.error().full_message());
  }
  // Revision id 0: the revision keeps its record (serving since it was deployed); the
  // driver's building/starting steps of this restart are not a new deployment of it.
  EngineProgress progress(m_store, m_retry, name, 0, op.cancel, lost, m_clock);
  spdlog::info("{}: starting {} again (it was {})", name, what, detail);
  const std::string after = woken ? "after its sleep" : "after the server restart";
  // Where the start's time went, in its event (a wake's latency, phase by phase).
  DeployPhases phases = {{"resolve", util::steady_ms() - started}};
  progress.start_phases();
  auto result = driver.apply(spec, progress);
  {
    DeployPhases driver_phases = progress.phases();
    phases.insert(phases.end(), driver_phases.begin(), driver_phases.end());
  }
  const std::string timing = core::deploy_summary(deploy_record(serving->number, serving->commit, "ready", phases));
  now = m_clock.now_ms();
  if (lost()) {
    return; // its new holder decides
  }
  if (!result && (op.cancel->load() || result.error().code == ErrorCode::cancelled)) {
    return; // the server stops again: the driver records it as stopped with the server
  }
  (void)write_env(op, "record restart", // retried; outcome logged by write_env
                  [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
                    if (woken) {
                      e.sleep.reset(); // awake, or a crash from here on
                    }
                    if (!result) {
                      // From here on it is a crash: the next probe restarts it as one.
                      std::string why = what + " did not start again " + after + ": " + result.error().full_message();
                      set_phase(e, Phase::degraded, k_actor, why, events, now);
                      e.message = why;
                      return {};
                    }
                    e.url = result->url;
                    e.outputs_json = util::json_dump(result->outputs);
                    e.warnings = result->warnings;
                    e.message = "";
                    e.updated_at = now;
                    std::string why = what + " started again " + after + (timing.empty() ? "" : "; " + timing);
                    if (e.phase != Phase::ready) {
                      set_phase(e, Phase::ready, k_actor, why, events, now);
                      return {};
                    }
                    events.push_back(engine_event(e, now, woken ? "wake" : "resumed", why));
                    return {};
                  });
  if (result) {
    std::lock_guard<std::mutex> g(m_mu);
    m_unhealthy[name] = 0;
    m_last_probe[name] = now;
  }
}

} // namespace idp::engine
