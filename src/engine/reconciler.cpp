#include "engine/reconciler.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "engine/controller.hpp"
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


// Progress reported by a driver, written to the store as it happens.
class EngineProgress final : public drivers::Progress {
public:
  EngineProgress(store::StateStore& store, std::string env, int64_t revision_id,
                 std::shared_ptr<std::atomic<bool>> cancel, util::Clock& clock)
      : m_store(store), m_env(std::move(env)), m_revision_id(revision_id), m_cancel(std::move(cancel)),
        m_clock(clock) {}

  void step(std::string_view what) override {
    std::string msg(what);
    (void)m_store.update_environment(m_env, [&](Environment& e, std::vector<Event>&) -> Expected<void> {
      e.message = msg;
      return {};
    });
  }

  void revision_status(RevisionStatus status, std::string_view message) override {
    if (m_revision_id == 0) {
      return;
    }
    auto rev = m_store.get_revision(m_revision_id);
    if (!rev) {
      return;
    }
    rev->status = status;
    rev->message = std::string(message);
    if (status == RevisionStatus::serving || status == RevisionStatus::failed) {
      rev->finished_at = m_clock.now_ms();
    }
    (void)m_store.update_revision(*rev);
  }

  bool cancelled() const override { return m_cancel && m_cancel->load(); }
  const std::atomic<bool>* cancel_flag() const override { return m_cancel.get(); }

private:
  store::StateStore& m_store;
  std::string m_env;
  int64_t m_revision_id;
  std::shared_ptr<std::atomic<bool>> m_cancel;
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
  pid_t pid = 0;
  try {
    pid = static_cast<pid_t>(std::stol(parts[1]));
  } catch (...) {
    return false;
  }
  auto st = util::process_start_time(pid);
  return !st || std::to_string(*st) != parts[2];
}

} // namespace

Reconciler::Reconciler(store::StateStore& store, const DriverSet& drivers, const TemplateCatalog& templates,
                       util::Clock& clock, const EngineOptions& options)
    : m_store(store), m_drivers(drivers), m_templates(templates), m_clock(clock), m_options(options) {}

Reconciler::~Reconciler() { stop(); }

void Reconciler::start() {
  std::lock_guard<std::mutex> g(m_mu);
  if (m_running) {
    return;
  }
  m_running = true;
  m_shutdown = false;
  m_wake_all = true;
  m_loop_thread = std::thread([this] { loop(); });
  m_renew_thread = std::thread([this] { renew_leases(); });
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
    for (auto& [_, flag] : m_cancel) {
      flag->store(true);
    }
  }
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
    m_wake_all = true;
    (void)env;
  }
  m_loop_cv.notify_all();
}

void Reconciler::cancel(const std::string& env) {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_cancel.find(env);
  if (it != m_cancel.end()) {
    it->second->store(true);
  }
}

size_t Reconciler::busy() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_queue.size() + m_inflight.size();
}

std::shared_ptr<std::atomic<bool>> Reconciler::cancel_flag(const std::string& name, bool reset) {
  std::lock_guard<std::mutex> g(m_mu);
  auto& f = m_cancel[name];
  if (!f || reset) {
    f = std::make_shared<std::atomic<bool>>(m_shutdown.load());
  }
  return f;
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
  if (env.phase == Phase::ready || env.phase == Phase::degraded) {
    std::lock_guard<std::mutex> g(m_mu);
    auto it = m_last_probe.find(env.name);
    util::Millis last = it == m_last_probe.end() ? 0 : it->second;
    return now - last >= m_options.health_interval ? Action::observe : Action::none;
  }
  return Action::none;
}

void Reconciler::loop() {
  while (true) {
    {
      std::lock_guard<std::mutex> g(m_mu);
      if (!m_running) {
        return;
      }
      m_wake_all = false;
    }
    util::Millis now = m_clock.now_ms();
    util::Millis next = now + m_options.resync_interval;
    auto envs = m_store.list_environments(false);
    if (!envs) {
      spdlog::warn("reconciler: cannot list environments: {}", envs.error().full_message());
    } else {
      for (const auto& env : *envs) {
        Action a = due(env, now);
        if (a != Action::none) {
          std::lock_guard<std::mutex> g(m_mu);
          if (!m_queued.count(env.name) && !m_inflight.count(env.name)) {
            m_queue.push_back(env.name);
            m_queued.insert(env.name);
            m_work_cv.notify_one();
          }
        } else if (env.next_attempt_at > now) {
          next = std::min(next, env.next_attempt_at);
        }
      }
    }
    std::unique_lock<std::mutex> lk(m_mu);
    util::Millis wait_ms = std::max<util::Millis>(1, next - m_clock.now_ms());
    m_loop_cv.wait_for(lk, std::chrono::milliseconds(wait_ms), [this] { return !m_running || m_wake_all; });
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
      m_wake_all = true;
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
    std::vector<std::string> names(m_inflight.begin(), m_inflight.end());
    lk.unlock();
    for (const auto& n : names) {
      (void)m_store.try_acquire_lease(n, m_options.owner_id, m_clock.now_ms(), m_options.lease_ttl);
    }
    lk.lock();
  }
}

bool Reconciler::acquire_lease(const std::string& name) {
  auto got = m_store.try_acquire_lease(name, m_options.owner_id, m_clock.now_ms(), m_options.lease_ttl);
  if (got && *got) {
    return true;
  }
  auto lease = m_store.get_lease(name);
  if (lease && *lease && owner_is_dead_local((*lease)->owner)) {
    spdlog::info("reconciler: {}: breaking lease of dead owner {}", name, (*lease)->owner);
    (void)m_store.break_lease(name);
    got = m_store.try_acquire_lease(name, m_options.owner_id, m_clock.now_ms(), m_options.lease_ttl);
    return got && *got;
  }
  return false;
}

void Reconciler::process(const std::string& name) {
  if (!acquire_lease(name)) {
    return;
  }
  auto env = m_store.get_environment(name);
  if (env) {
    Action a = due(*env, m_clock.now_ms());
    auto driver = m_drivers.get(env->runtime);
    if (!driver) {
      util::Millis now = m_clock.now_ms();
      (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
        e.attempts += 1;
        e.next_attempt_at = now + backoff_delay(m_options, e.attempts);
        e.message = driver.error().message;
        if (e.desired == Desired::present) {
          set_phase(e, Phase::failed, k_actor, driver.error().message, events, now);
        }
        return {};
      });
    } else if (a == Action::deploy) {
      do_deploy(*env, **driver);
    } else if (a == Action::destroy) {
      do_destroy(*env, **driver);
    } else if (a == Action::observe) {
      do_observe(*env, **driver);
    }
  }
  (void)m_store.release_lease(name, m_options.owner_id);
}

void Reconciler::do_deploy(Environment env, drivers::Driver& driver) {
  const std::string name = env.name;
  const int64_t gen = env.generation;
  const std::string commit = env.commit;
  const bool first = env.deployed_commit.empty();
  util::Millis now = m_clock.now_ms();
  auto flag = cancel_flag(name, true);

  drivers::DeploySpec spec;
  auto fail_config = [&](const Error& err) {
    (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
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
  Phase target = first ? Phase::provisioning : Phase::updating;
  auto marked = m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    if (e.generation != gen || e.desired != Desired::present) {
      return make_error(ErrorCode::conflict, "superseded");
    }
    set_phase(e, target, k_actor, "deploying " + util::short_commit(commit) + " (generation " + std::to_string(gen) + ")", events,
              now);
    e.message = "deploying " + util::short_commit(commit);
    return {};
  });
  if (!marked) {
    return; // superseded before we started: the loop picks the newer state
  }
  Revision rev;
  rev.env = name;
  rev.commit = commit;
  rev.generation = gen;
  rev.status = RevisionStatus::pending;
  rev.created_at = now;
  auto rev_id = m_store.insert_revision(rev);
  rev.id = rev_id ? *rev_id : 0;

  spec.env = *marked;
  spec.config = std::move(*cfg);
  spec.revision_id = rev.id;
  spec.components = tmpl->components;
  EngineProgress progress(m_store, name, rev.id, flag, m_clock);
  spdlog::info("{}: deploying {} (generation {}, revision {})", name, util::short_commit(commit), gen, rev.id);
  auto result = driver.apply(spec, progress);
  now = m_clock.now_ms();

  if (result) {
    progress.revision_status(RevisionStatus::serving, "healthy");
    if (auto revs = m_store.list_revisions(name, 20)) {
      for (auto r : *revs) {
        if (r.id != rev.id && r.status == RevisionStatus::serving) {
          r.status = RevisionStatus::superseded;
          r.finished_at = now;
          (void)m_store.update_revision(r);
        }
      }
    }
    (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
      e.url = result->url;
      e.outputs_json = result->outputs.dump();
      e.warnings = result->warnings;
      e.deployed_commit = commit;
      e.observed_generation = std::max(e.observed_generation, gen);
      e.attempts = 0;
      e.next_attempt_at = 0;
      e.message = "";
      e.updated_at = now;
      set_phase(e, Phase::ready, k_actor,
                "revision " + std::to_string(rev.id) + " (" + util::short_commit(commit) + ") is healthy", events, now);
      return {};
    });
    std::lock_guard<std::mutex> g(m_mu);
    m_unhealthy[name] = 0;
    m_last_probe[name] = now;
    spdlog::info("{}: ready at {} ({})", name, result->url, util::short_commit(commit));
    return;
  }

  const Error& err = result.error();
  if (flag->load() || err.code == ErrorCode::cancelled) {
    progress.revision_status(RevisionStatus::superseded, "superseded before it finished");
    (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
      set_phase(e, first ? Phase::pending : Phase::ready, k_actor,
                "deploy of " + util::short_commit(commit) + " superseded before it finished", events, now);
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
  Revision failed_rev = rev;
  if (auto r = m_store.get_revision(rev.id)) {
    failed_rev = *r;
  }
  failed_rev.status = RevisionStatus::failed;
  failed_rev.message = err.full_message();
  failed_rev.log_tail = tail;
  failed_rev.finished_at = now;
  (void)m_store.update_revision(failed_rev);

  bool permanent = err.code == ErrorCode::permanent || err.code == ErrorCode::invalid_config ||
                   err.code == ErrorCode::invalid_argument;
  (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    e.attempts += 1;
    e.updated_at = now;
    if (!first) {
      std::string msg = "deploy of " + util::short_commit(commit) + " failed: " + err.full_message() + "; still serving " +
                        util::short_commit(e.deployed_commit);
      if (permanent) {
        // Rolled back: the old revision keeps serving; wait for a new commit.
        e.observed_generation = std::max(e.observed_generation, gen);
        e.next_attempt_at = 0;
      } else {
        e.next_attempt_at = now + backoff_delay(m_options, e.attempts);
      }
      e.message = msg;
      set_phase(e, Phase::ready, k_actor, "revision " + std::to_string(rev.id) + " failed, rolled back: " + err.message,
                events, now);
      return {};
    }
    if (permanent && e.attempts >= m_options.give_up_after) {
      // The same commit fails the same way (a broken build): stop here rather than rebuild
      // it forever; a new commit or `idp redeploy` bumps the generation and tries again.
      e.observed_generation = std::max(e.observed_generation, gen);
      e.next_attempt_at = 0;
      e.message = err.full_message() + " (failed " + std::to_string(e.attempts) + " times at " + util::short_commit(commit) +
                  "; not retried until a new commit or `idp redeploy " + name + "`)";
      set_phase(e, Phase::failed, k_actor, err.full_message(), events, now);
      return {};
    }
    util::Millis delay = backoff_delay(m_options, e.attempts);
    e.next_attempt_at = now + delay;
    e.message = err.full_message() + " (attempt " + std::to_string(e.attempts) + ", retrying in " +
                util::format_duration(delay) + ")";
    set_phase(e, Phase::failed, k_actor, err.full_message(), events, now);
    return {};
  });
  spdlog::warn("{}: deploy of {} failed: {}", name, util::short_commit(commit), err.full_message());
}

void Reconciler::do_destroy(Environment env, drivers::Driver& driver) {
  const std::string name = env.name;
  util::Millis now = m_clock.now_ms();
  (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    set_phase(e, Phase::destroying, k_actor, "removing everything of the environment", events, now);
    e.message = "destroying";
    return {};
  });
  // A destroy is never cancelled: it finishes, then a newer request is acted on.
  auto never = std::make_shared<std::atomic<bool>>(false);
  EngineProgress progress(m_store, name, 0, never, m_clock);
  auto result = driver.destroy(env, progress);
  now = m_clock.now_ms();
  if (!result) {
    const Error& err = result.error();
    (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
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
  if (auto revs = m_store.list_revisions(name, 50)) {
    for (auto r : *revs) {
      if (r.status == RevisionStatus::serving || r.status == RevisionStatus::pending ||
          r.status == RevisionStatus::building || r.status == RevisionStatus::starting) {
        r.status = RevisionStatus::stopped;
        r.finished_at = now;
        (void)m_store.update_revision(r);
      }
    }
  }
  (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
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
  {
    std::lock_guard<std::mutex> g(m_mu);
    m_last_probe.erase(name);
    m_unhealthy.erase(name);
    m_cancel.erase(name);
  }
  spdlog::info("{}: destroyed", name);
}

void Reconciler::do_observe(Environment env, drivers::Driver& driver) {
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
  (void)m_store.update_environment(name, [&](Environment& e, std::vector<Event>& events) -> Expected<void> {
    if (e.desired != Desired::present || (e.phase != Phase::ready && e.phase != Phase::degraded)) {
      return {};
    }
    if (obs->warnings != e.warnings) {
      e.warnings = obs->warnings;
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
    case drivers::Health::unknown:
      break;
    }
    return {};
  });
  if (restart) {
    auto fresh = m_store.get_environment(name);
    if (fresh) {
      do_deploy(*fresh, driver);
    }
  }
}

} // namespace idp::engine
