#pragma once
// Engine under test: InMemoryStore + FakeDriver + FakeClock, real git repositories and the
// real built-in templates. The controller and reconciler see the store through
// m_faulty (a FailingStore: it only forwards unless a test scripts failures); tests read
// m_store directly.

#include <gtest/gtest.h>

#include <memory>

#include "engine/controller.hpp"
#include "engine/reaper.hpp"
#include "engine/reconciler.hpp"
#include "fakes/failing_store.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_driver.hpp"
#include "fakes/in_memory_store.hpp"
#include "support/test_support.hpp"

namespace idp::testing {

class EngineTest : public ::testing::Test {
protected:
  EngineTest() : m_tmp("idp-engine"), m_repos(m_tmp.sub("git")), m_templates(source_dir() + "/templates", {}) {
    m_options.resync_interval = 20;
    m_options.health_interval = 1'000'000'000; // probes only when a test asks
    m_options.backoff_base = 1000;
    m_options.backoff_max = 8000;
    m_options.owner_id = "test-owner";
    m_options.store_retry_base = 1; // retried store writes: no real waiting in tests
    m_options.store_retry_max = 20;
    m_options.ttl_policy.min = 1000;
    m_drivers.add(&m_driver);
  }

  ~EngineTest() override {
    if (m_reconciler) {
      m_reconciler->stop();
    }
  }

  // The controller, wired to the reconciler when `with_reconciler`.
  engine::Controller& controller(bool with_reconciler = false) {
    if (!m_controller) {
      engine::EngineSignals signals;
      if (with_reconciler) {
        m_reconciler = std::make_unique<engine::Reconciler>(m_faulty, m_drivers, m_templates, m_clock, m_options);
        auto* r = m_reconciler.get();
        signals.wake = [r](const std::string& n) { r->wake(n); };
        signals.cancel = [r](const std::string& n, int64_t generation) { r->cancel(n, generation); };
      }
      m_controller = std::make_unique<engine::Controller>(m_faulty, m_clock, *m_resolver, m_templates, m_drivers,
                                                          m_options, signals);
      if (m_reconciler) {
        // As the daemon wires them: workers resolve what API creates and redeploys left to them.
        auto* c = m_controller.get();
        m_reconciler->set_create_resolver([c](const core::Environment& env) { return c->resolve_create(env); });
        auto* repos = m_resolver;
        m_reconciler->set_repo_reader(
            [repos](const std::string& repo, const std::string& commit, const std::string& path) {
              return repos->read_file(repo, commit, path);
            });
        m_reconciler->start();
      }
    }
    return *m_controller;
  }

  // A repo with the example app on `branch`; returns its path.
  std::string make_repo(const std::string& dir_name = "app", const std::string& branch = "feature/one") {
    m_repo = std::make_unique<GitRepo>(make_example_repo(m_tmp.sub(dir_name), "api-service", branch));
    return m_repo->path();
  }

  engine::CreateRequest request(const std::string& repo, const std::string& branch) {
    engine::CreateRequest r;
    r.repo = repo;
    r.branch = branch;
    r.owner = "alice";
    return r;
  }

  bool wait_phase(const std::string& name, core::Phase phase, int timeout_ms = 10000) {
    return wait_until(
        [&] {
          auto e = m_store.get_environment(name);
          return e && e->phase == phase;
        },
        timeout_ms, 5);
  }

  size_t count_events(const std::string& env, const std::string& action) {
    store::EventQuery q;
    q.env = env;
    auto evs = m_store.list_events(q);
    size_t n = 0;
    for (const auto& e : *evs) {
      n += e.action == action ? 1 : 0;
    }
    return n;
  }

  TempDir m_tmp;
  InMemoryStore m_store;
  FailingStore m_faulty{m_store};
  FakeDriver m_driver;
  FakeClock m_clock;
  engine::DriverSet m_drivers;
  engine::RepoResolver m_repos;
  engine::RepoResolver* m_resolver = &m_repos; // what the controller fetches with (set before controller())
  engine::TemplateCatalog m_templates;
  engine::EngineOptions m_options;
  std::unique_ptr<engine::Reconciler> m_reconciler;
  std::unique_ptr<engine::Controller> m_controller;
  std::unique_ptr<GitRepo> m_repo;
};

} // namespace idp::testing
