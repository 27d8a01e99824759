#include "daemon/daemon.hpp"

#include <csignal>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "api/server.hpp"
#include "core/version.hpp"
#include "drivers/driver.hpp"
#include "engine/controller.hpp"
#include "engine/reaper.hpp"
#include "engine/reconciler.hpp"
#include "engine/retention.hpp"
#include "sources/sources.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::daemon {

void block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

struct Daemon::Impl {
  ServerConfig cfg;
  std::string self_exe;
  util::SystemClock clock;
  util::FileLock lock;
  std::unique_ptr<store::StateStore> store;
  std::vector<std::unique_ptr<drivers::Driver>> drivers;
  engine::DriverSet driver_set;
  std::unique_ptr<engine::TemplateCatalog> templates;
  std::unique_ptr<engine::RepoResolver> repos;
  std::unique_ptr<engine::Reconciler> reconciler;
  std::unique_ptr<engine::Controller> controller;
  std::unique_ptr<engine::Reaper> reaper;
  std::unique_ptr<engine::Retention> retention;
  std::unique_ptr<sources::Sources> sources;
  std::unique_ptr<api::ApiServer> api;
  int api_port = 0;
  int router_port = 0;
  bool started = false;
  bool stopped = false;
};

Daemon::Daemon(ServerConfig cfg, std::string self_exe) : m_impl(std::make_unique<Impl>()) {
  m_impl->cfg = std::move(cfg);
  m_impl->self_exe = std::move(self_exe);
}

Daemon::~Daemon() { shutdown(); }

int Daemon::api_port() const { return m_impl->api_port; }
int Daemon::router_port() const { return m_impl->router_port; }

static std::string owner_id() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  pid_t pid = ::getpid();
  auto st = util::process_start_time(pid);
  return std::string(host) + ":" + std::to_string(pid) + ":" + std::to_string(st.value_or(0));
}

Expected<void> Daemon::start() {
  Impl& d = *m_impl;
  const ServerConfig& cfg = d.cfg;
  IDP_TRY(util::ensure_dir(cfg.home, 0700));
  auto lock = util::FileLock::try_acquire(util::path_join(cfg.home, "daemon.lock"));
  if (!lock) {
    return make_error(ErrorCode::conflict, "another idp serve is already running with home " + util::quote(cfg.home));
  }
  d.lock = std::move(*lock);

  auto store = store::sqlite::SqliteStore::open(util::path_join(cfg.home, "state.db"));
  if (!store) {
    return Unexpected(store.error().with_context("cannot open the state store"));
  }
  d.store = std::move(*store);

  // The router port is part of every environment's URL: choose it once, then keep it.
  d.router_port = cfg.router_port;
  auto saved = d.store->get_setting("router_port");
  if (d.router_port == 0 && saved && *saved) {
    d.router_port = std::stoi(**saved);
  }
  if (d.router_port == 0) {
    IDP_TRY_ASSIGN(d.router_port, util::find_free_port());
  }
  IDP_TRY(d.store->set_setting("router_port", std::to_string(d.router_port)));

  drivers::DriverContext dctx;
  dctx.home = cfg.home;
  dctx.domain = cfg.domain;
  dctx.router_port = d.router_port;
  dctx.router_listen_host = cfg.router_listen_host;
  dctx.clock = &d.clock;
  dctx.self_exe = d.self_exe;
  // Drivers that run scheduled jobs themselves (local) record each run in the store.
  store::StateStore* job_store = d.store.get();
  dctx.job_runs.insert = [job_store](const core::JobRun& r) { return job_store->insert_job_run(r); };
  dctx.job_runs.update = [job_store](const core::JobRun& r) { return job_store->update_job_run(r); };
  dctx.job_runs.list = [job_store](const std::string& env, size_t limit) {
    return job_store->list_job_runs(env, limit);
  };
  IDP_TRY_ASSIGN(auto live, d.store->list_environments(false));
  for (const auto* factory : drivers::builtin_driver_factories()) {
    dctx.options = cfg.driver_options.value(std::string(factory->name()), nlohmann::json::object());
    auto driver = factory->create(dctx);
    if (!driver) {
      return Unexpected(driver.error().with_context("driver " + std::string(factory->name())));
    }
    std::vector<core::Environment> mine;
    for (const auto& e : live) {
      if (e.runtime == factory->name()) {
        mine.push_back(e);
      }
    }
    auto started = (*driver)->start(mine);
    if (!started) {
      return Unexpected(started.error().with_context("starting driver " + std::string(factory->name())));
    }
    d.driver_set.add(driver->get());
    d.drivers.push_back(std::move(*driver));
  }

  d.templates = std::make_unique<engine::TemplateCatalog>(cfg.templates_dir, cfg.templates_path);
  d.repos = std::make_unique<engine::RepoResolver>(util::path_join(cfg.home, "git"));
  engine::EngineOptions eo = cfg.engine;
  eo.owner_id = owner_id();
  d.cfg.engine = eo;
  d.reconciler = std::make_unique<engine::Reconciler>(*d.store, d.driver_set, *d.templates, d.clock, d.cfg.engine);
  engine::EngineSignals signals;
  engine::Reconciler* rec = d.reconciler.get();
  signals.wake = [rec](const std::string& n) { rec->wake(n); };
  signals.cancel = [rec](const std::string& n) { rec->cancel(n); };
  d.controller = std::make_unique<engine::Controller>(*d.store, d.clock, *d.repos, *d.templates, d.driver_set,
                                                      d.cfg.engine, signals);
  d.reaper = std::make_unique<engine::Reaper>(*d.store, *d.controller, d.clock, d.cfg.engine.reaper_interval);
  d.retention = std::make_unique<engine::Retention>(*d.store, d.clock, util::path_join(cfg.home, "git"), d.cfg.engine);

  api::ApiContext actx;
  actx.store = d.store.get();
  actx.controller = d.controller.get();
  actx.drivers = &d.driver_set;
  actx.templates = d.templates.get();
  actx.clock = &d.clock;
  actx.version = idp::k_version;
  actx.reaper_interval_ms = d.cfg.engine.reaper_interval;
  actx.ttl_min_ms = d.cfg.engine.ttl_policy.min;
  actx.ttl_max_ms = d.cfg.engine.ttl_policy.max;
  d.api = std::make_unique<api::ApiServer>(actx);
  sources::Sources::Options so;
  so.github_api_url = cfg.github_api_url;
  so.max_body_bytes = actx.max_body_bytes;
  d.sources = std::make_unique<sources::Sources>(cfg.repositories, *d.store, *d.controller, d.clock, so);
  d.api->add_post_hook("/hooks/github", [src = d.sources.get()](const api::RawRequest& r) {
    auto out = src->webhook().handle(r.body, r.header);
    std::string body = out.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return api::RawResponse{out.status, "application/json", body + "\n"};
  });
  IDP_TRY_ASSIGN(d.api_port, d.api->bind(cfg.api_host(), cfg.api_port()));

  d.reconciler->start();
  d.reaper->start();
  d.retention->start();
  d.sources->start(); // after the engine: the startup sync queues work for it
  d.api->start();
  d.started = true;

  std::string api_url = "http://" + cfg.api_host() + ":" + std::to_string(d.api_port);
  nlohmann::json info = {{"pid", ::getpid()},
                         {"api_url", api_url},
                         {"router_port", d.router_port},
                         {"domain", cfg.domain},
                         {"home", cfg.home},
                         {"version", idp::k_version},
                         {"started_at", util::format_iso8601(d.clock.now_ms())}};
  IDP_TRY(util::write_file_atomic(util::path_join(cfg.home, "daemon.json"), info.dump(2) + "\n"));
  spdlog::info("idp serve: api {} | environments at http://<name>.{}:{}/ | home {} | drivers {}", api_url, cfg.domain,
               d.router_port, cfg.home, util::join(d.driver_set.names(), ","));
  return {};
}

void Daemon::wait_for_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  int sig = 0;
  while (sigwait(&set, &sig) == 0) {
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("idp serve: received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      return;
    }
  }
}

void Daemon::shutdown() {
  Impl& d = *m_impl;
  if (d.stopped) {
    return;
  }
  d.stopped = true;
  if (d.api) {
    d.api->stop();
  }
  if (d.sources) {
    d.sources->stop(); // before the engine it feeds
  }
  if (d.reaper) {
    d.reaper->stop();
  }
  if (d.retention) {
    d.retention->stop();
  }
  if (d.reconciler) {
    d.reconciler->stop();
  }
  for (auto& drv : d.drivers) {
    drv->stop(d.cfg.keep_running);
  }
  if (d.started) {
    (void)util::remove_all(util::path_join(d.cfg.home, "daemon.json"));
    spdlog::info("idp serve: stopped");
  }
}

} // namespace idp::daemon
