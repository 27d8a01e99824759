#include "daemon/daemon.hpp"

#include <csignal>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/server.hpp"
#include "core/environment.hpp"
#include "core/preview_routes.hpp"
#include "core/version.hpp"
#include "drivers/driver.hpp"
#include "engine/budgets.hpp"
#include "engine/controller.hpp"
#include "engine/cost_export.hpp"
#include "engine/idle_sleeper.hpp"
#include "engine/reaper.hpp"
#include "engine/reconciler.hpp"
#include "engine/repo_resolver.hpp"
#include "engine/retention.hpp"
#include "engine/secret_store.hpp"
#include "engine/usage_sampler.hpp"
#include "sources/sources.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/memory.hpp"
#include "util/numbers.hpp"
#include "util/periodic_thread.hpp"
#include "util/s3_client.hpp"
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
  std::unique_ptr<engine::SecretStore> secrets; // the server's secret store (issue 9)
  std::vector<std::unique_ptr<drivers::Driver>> drivers;
  engine::DriverSet driver_set;
  std::unique_ptr<engine::TemplateCatalog> templates;
  std::unique_ptr<engine::RepoResolver> repos;
  std::unique_ptr<engine::Reconciler> reconciler;
  std::unique_ptr<engine::Controller> controller;
  std::unique_ptr<engine::Reaper> reaper;
  std::unique_ptr<engine::UsageSampler> usage;  // what each environment uses, for idp cost
  std::unique_ptr<engine::IdleSleeper> sleeper; // puts idle environments to sleep
  std::string wake_key;                         // the router's key to the wake handler
  std::shared_ptr<core::WakeBoard> wake_board = std::make_shared<core::WakeBoard>(); // woken apps' upstreams
  std::unique_ptr<engine::Budgets> budgets;        // budgets: alerts and the create guardrail
  std::unique_ptr<engine::CostExport> cost_export; // cost.export: the monthly report to S3
  std::unique_ptr<engine::Retention> retention;
  std::unique_ptr<sources::Sources> sources;
  std::unique_ptr<api::ApiServer> api;
  std::unique_ptr<api::ApiServer> hooks; // webhook_listen: /hooks/github alone
  util::PeriodicThread memory_release;   // gives freed memory back (util/memory.hpp)
  int api_port = 0;
  int hooks_port = 0;
  int router_port = 0;
  int https_port = 0; // 0 when https is off
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

// The first admin token lives in <home>/admin.token (0600), for the CLI on this machine.
// A new one is made when the file is missing or its token is no longer valid (revoked,
// expired, or the state store was reset): whoever can read the home controls the daemon
// anyway, so this grants nothing new.
static Expected<void> ensure_admin_token(store::StateStore& store, const std::string& home, util::Clock& clock) {
  std::string path = util::path_join(home, "admin.token");
  if (auto text = util::read_file(path)) {
    std::string secret = util::trim(*text);
    IDP_TRY_ASSIGN(auto found, store.find_api_token(api::token_hash(secret)));
    util::Millis now = clock.now_ms();
    if (!secret.empty() && found && found->revoked_at == 0 && (found->expires_at == 0 || found->expires_at > now) &&
        found->role == "admin") {
      return {};
    }
  }
  api::NewToken t = api::mint_token("admin", api::Role::admin, "admin", "idp serve", clock.now_ms(), 0);
  IDP_TRY(store.insert_api_token(t.record));
  IDP_TRY(util::write_file_atomic(path, t.secret + "\n", 0600));
  spdlog::info("idp serve: wrote a new admin token ({}) to {}", t.record.id, path);
  return {};
}

// The key that signs share links of protected previews (api/preview_auth.hpp): 32 random
// bytes in <home>/preview-share.key (0600), made once; losing it invalidates every link.
static Expected<std::string> preview_share_key(const std::string& home) {
  std::string path = util::path_join(home, "preview-share.key");
  if (auto text = util::read_file(path)) {
    if (auto key = util::from_hex(util::trim(*text)); key && key->size() >= 32) {
      return *key;
    }
  }
  std::string hex = util::random_hex(32);
  IDP_TRY(util::write_file_atomic(path, hex + "\n", 0600));
  return *util::from_hex(hex);
}

// previews: of the server config as drivers ask it (drivers::PreviewAccess::protect).
static Expected<bool> preview_protect_for(const ServerConfig& cfg, const std::string& repo, bool wants_public) {
  std::string protect = cfg.preview_protect();
  bool allow_public = cfg.previews.allow_public;
  std::string where = "the server's previews";
  for (const auto& rp : cfg.repository_previews) {
    bool same = engine::RepoResolver::canonical_repo(rp.repo_url) == repo ||
                (!rp.github_repo.empty() &&
                 (util::ends_with(repo, "/" + rp.github_repo) || util::ends_with(repo, "/" + rp.github_repo + ".git")));
    if (same) {
      protect = rp.protect.value_or(protect);
      allow_public = rp.allow_public.value_or(allow_public);
      where = "repositories entry " + util::quote(rp.repo_url) + " of the server config";
      break;
    }
  }
  if (wants_public && protect == "signin" && !allow_public) {
    return make_error(ErrorCode::invalid_config,
                      "public: true is not allowed by this server (" + where +
                          ": protect signin, allow_public false); remove it, or ask an operator to set "
                          "previews.allow_public: true");
  }
  return protect == "signin" && !wants_public;
}

// Caddy's on-demand TLS asks before every certificate: yes for the API's own name and for
// a live environment of the local runtime (the ones the router serves), no for any other
// name, so a client cannot make Caddy issue certificates for names it makes up.
static bool tls_ask_allows(store::StateStore& store, const std::string& domain, const std::string& host) {
  if (host == "idp." + domain) {
    return true;
  }
  std::string suffix = "." + domain;
  if (host.size() <= suffix.size() || !util::ends_with(host, suffix)) {
    return false;
  }
  std::string name = host.substr(0, host.size() - suffix.size());
  if (name.find('.') != std::string::npos) {
    return false;
  }
  auto env = store.get_environment(name);
  return env && env->runtime == "local" && env->desired == core::Desired::present && core::phase_is_live(env->phase) &&
         env->phase != core::Phase::destroying;
}

// Where a client on this machine reaches a listener bound to `host`.
static std::string dial_address(std::string host, int port) {
  if (host.empty() || host == "0.0.0.0") {
    host = "127.0.0.1";
  } else if (host == "::" || host == "[::]") {
    host = "[::1]";
  } else if (host.find(':') != std::string::npos && host.front() != '[') {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(port);
}

static std::string owner_id() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  pid_t pid = ::getpid();
  auto st = util::process_start_time(pid);
  return std::string(host) + ":" + std::to_string(pid) + ":" + std::to_string(st.value_or(0));
}

// Files under the home hold secrets (tokens, the database master key, state): owner only.
// Directories keep their modes: the managed PostgreSQL reaches its data directory through
// ACLs on the home (see drivers/local/postgres_cluster.cpp), and a chmod would clear the
// ACL mask those grants rely on.
static void tighten_home_files(const std::string& home) {
  for (const char* rel : {"state.db", "state.db-wal", "state.db-shm", "admin.token", "daemon.json", "db/master.key",
                          "db/cluster.json", "git-credentials.json", "preview-share.key"}) {
    std::string path = util::path_join(home, rel);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
      if (::chmod(path.c_str(), st.st_mode & 0700) != 0) {
        spdlog::warn("idp serve: cannot make {} private (mode {:o})", path, st.st_mode & 0777);
      } else {
        spdlog::info("idp serve: made {} private (it was mode {:o})", path, st.st_mode & 0777);
      }
    }
  }
}

Expected<void> Daemon::start() {
  Impl& d = *m_impl;
  const ServerConfig& cfg = d.cfg;
  // Everything the daemon (and what it starts) creates is private to its user by default.
  ::umask(077);
  // Before any thread: a few dozen threads would otherwise hold an arena each of freed
  // memory (util/memory.hpp).
  util::limit_malloc_arenas(2);
  // Nothing in an existing home may change before its lock is ours: a refused second
  // start that reset the home to 0700 would clear the ACL mask through which the running
  // server's PostgreSQL reaches its cluster (it PANICs at its next checkpoint).
  if (!util::is_directory(cfg.home)) {
    IDP_TRY(util::ensure_dir(cfg.home, 0700));
  }
  auto lock = util::FileLock::try_acquire(util::path_join(cfg.home, "daemon.lock"));
  if (!lock) {
    if (lock.error().code == ErrorCode::conflict) {
      return make_error(ErrorCode::conflict, "another idp serve is already running with home " + util::quote(cfg.home) +
                                                 " (nothing was changed; stop it first, or use another --home)");
    }
    return Unexpected(lock.error().with_context("cannot lock the home " + util::quote(cfg.home)));
  }
  d.lock = std::move(*lock);
  IDP_TRY(util::ensure_dir(cfg.home, 0700));
  tighten_home_files(cfg.home);

  // Credentials of repository URLs: those remembered from API creates, then the server
  // config's (which win). Git gets them through askpass; nothing else ever sees them.
  IDP_TRY(util::use_git_credential_file(util::path_join(cfg.home, "git-credentials.json")));
  for (const auto& repo : cfg.repositories) {
    if (!repo.url_with_credentials.empty()) {
      IDP_TRY(util::remember_url_credentials(repo.url_with_credentials));
    }
  }

  auto store = store::sqlite::SqliteStore::open(util::path_join(cfg.home, "state.db"));
  if (!store) {
    return Unexpected(store.error().with_context("cannot open the state store"));
  }
  d.store = std::move(*store);
  if (auto t = ensure_admin_token(*d.store, cfg.home, d.clock); !t) {
    return Unexpected(t.error().with_context("cannot set up the admin token"));
  }

  // The server's secret store (issue 9): sealed under a key derived from the master key.
  auto secret_key = engine::load_secret_key(util::path_join(cfg.home, "db/master.key"));
  if (!secret_key) {
    return Unexpected(secret_key.error().with_context("cannot set up the secret store"));
  }
  d.secrets = std::make_unique<engine::SecretStore>(*d.store, std::move(*secret_key), cfg.secrets, d.clock);

  // The router port is part of every environment's URL: choose it once, then keep it.
  d.router_port = cfg.router_port;
  auto saved = d.store->get_setting("router_port");
  if (d.router_port == 0 && saved && *saved) {
    auto port = util::parse_int<int>(**saved, 1, 65535);
    if (!port) {
      return Unexpected(port.error().with_context("the router port stored in " +
                                                  util::quote(util::path_join(cfg.home, "state.db")) +
                                                  " (setting \"router_port\"; --router-port replaces it)"));
    }
    d.router_port = *port;
  }
  if (d.router_port == 0) {
    IDP_TRY_ASSIGN(d.router_port, util::find_free_app_port());
  }
  IDP_TRY(d.store->set_setting("router_port", std::to_string(d.router_port)));
  if (cfg.https.on()) {
    // Part of every https URL too: `https.port: 0` chooses one on the first start, then keeps it.
    d.https_port = cfg.https.port;
    auto saved_https = d.store->get_setting("https_port");
    if (d.https_port == 0 && saved_https && *saved_https) {
      d.https_port = util::parse_int<int>(**saved_https, 1, 65535).value_or(0);
    }
    if (d.https_port == 0) {
      IDP_TRY_ASSIGN(d.https_port, util::find_free_app_port());
    }
    IDP_TRY(d.store->set_setting("https_port", std::to_string(d.https_port)));
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
  signals.cancel = [rec](const std::string& n, int64_t generation) { rec->cancel(n, generation); };
  d.budgets = std::make_unique<engine::Budgets>(
      cfg.budgets, *d.store, cfg.cost_rates, cfg.team_of, d.clock,
      [](const std::string& url, const std::string& body) -> Expected<void> {
        util::HttpRequest req;
        req.method = "POST";
        req.url = url;
        req.body = body;
        req.headers = {{"Content-Type", "application/json"}};
        req.timeout_ms = 10'000;
        req.connect_timeout_ms = 5'000;
        auto r = util::http_request(req);
        // The address may hold a secret (a Slack hook's): it never goes into a message.
        if (!r) {
          return make_error(ErrorCode::transient, "the webhook could not be reached");
        }
        if (r->status < 200 || r->status >= 300) {
          return make_error(ErrorCode::transient, "the webhook answered HTTP " + std::to_string(r->status));
        }
        return {};
      });
  if (!d.budgets->empty()) {
    engine::Budgets* budgets = d.budgets.get();
    signals.admit_budget = [budgets](const std::string& repo, const std::string& owner) {
      return budgets->admit(repo, owner);
    };
  }
  d.controller = std::make_unique<engine::Controller>(*d.store, d.clock, *d.repos, *d.templates, d.driver_set,
                                                      d.cfg.engine, signals);
  {
    // The budgets' guardrails sleep and destroy_oldest act through the engine like a user.
    engine::Controller* ctl_for_budgets = d.controller.get();
    const engine::DriverSet* drivers_for_budgets = &d.driver_set;
    engine::Budgets::Guardrails g;
    g.last_request = [drivers_for_budgets](const core::Environment& env) -> std::optional<util::Millis> {
      auto driver = drivers_for_budgets->get(env.runtime);
      if (!driver) {
        return std::nullopt;
      }
      auto last = (*driver)->last_request(env);
      return last ? *last : std::nullopt;
    };
    g.sleep = [ctl_for_budgets](const std::string& env, const std::string& by,
                                const std::string& reason) -> Expected<void> {
      IDP_TRY(ctl_for_budgets->sleep(env, by, reason, by));
      return {};
    };
    g.destroy = [ctl_for_budgets](const std::string& env, const std::string& reason) -> Expected<void> {
      IDP_TRY(ctl_for_budgets->destroy(env, "budgets", reason));
      return {};
    };
    d.budgets->set_guardrails(std::move(g));
  }
  // API creates are answered before the clone; the reconciler's workers do it.
  engine::Controller* ctl = d.controller.get();
  d.reconciler->set_create_resolver([ctl](const core::Environment& env) { return ctl->resolve_create(env); });
  engine::RepoResolver* repos = d.repos.get();
  d.reconciler->set_repo_reader([repos](const std::string& repo, const std::string& commit, const std::string& path) {
    return repos->read_file(repo, commit, path);
  });
  d.reaper = std::make_unique<engine::Reaper>(*d.store, *d.controller, d.clock, d.cfg.engine.reaper_interval);
  d.usage = std::make_unique<engine::UsageSampler>(*d.store, d.driver_set, d.clock, d.cfg.cost_sample_interval,
                                                   d.cfg.cost_retention);
  // The daemon's own environment holds the AWS credentials, read at each upload (never logged).
  d.cost_export = std::make_unique<engine::CostExport>(
      cfg.cost_export, *d.store, cfg.cost_rates, cfg.team_of, d.clock,
      [](const util::S3Location& to, const std::string& body, const std::string& content_type) -> Expected<void> {
        IDP_TRY_ASSIGN(auto s3, util::s3_config_from_env());
        return util::s3_put_object(s3, to, body, content_type);
      },
      d.cfg.cost_sample_interval);
  if (d.cost_export->enabled() && !util::aws_credentials_from_env()) {
    spdlog::warn("cost.export: no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): "
                 "the monthly report cannot be uploaded");
  }
  if (!d.budgets->empty() || d.cost_export->enabled()) {
    engine::Budgets* budgets = d.budgets.get();
    engine::CostExport* cost_export = d.cost_export.get();
    d.usage->on_pass([budgets, cost_export] {
      if (!budgets->empty()) {
        if (auto r = budgets->check_alerts(); !r) {
          spdlog::warn("budgets: cannot check the alerts: {}", r.error().message);
        }
      }
      // A failure is logged, recorded as an event and retried by run_once itself.
      (void)cost_export->run_once();
    });
  }
  d.sleeper = std::make_unique<engine::IdleSleeper>(*d.store, d.driver_set, *d.controller, d.clock, d.cfg.sleep);
  d.wake_key = util::random_hex(32);
  d.retention = std::make_unique<engine::Retention>(*d.store, d.clock, util::path_join(cfg.home, "git"), d.cfg.engine);

  api::ApiContext actx;
  actx.store = d.store.get();
  actx.controller = d.controller.get();
  actx.drivers = &d.driver_set;
  actx.templates = d.templates.get();
  actx.clock = &d.clock;
  actx.version = idp::k_version;
  actx.reaper_interval_ms = d.cfg.engine.reaper_interval;
  actx.cost_rates = d.cfg.cost_rates;
  actx.team_of = d.cfg.team_of;
  actx.wake_key = d.wake_key;
  actx.wake_board = d.wake_board;
  actx.wake_timeout_ms = d.cfg.sleep.wake_timeout;
  actx.ttl_min_ms = d.cfg.engine.ttl_policy.min;
  actx.ttl_max_ms = d.cfg.engine.ttl_policy.max;
  actx.metrics_public = cfg.metrics_public;
  actx.engine_metrics = [rec, sources = &d.sources] {
    return rec->metrics_text() + (*sources ? (*sources)->queue().metrics_text() : "");
  };
  actx.request_latency = api::make_request_latency(); // the webhook listener's requests too
  actx.max_streams = static_cast<size_t>(cfg.max_streams);
  actx.server_names = cfg.server_names;
  std::string api_host = "idp." + cfg.domain; // the API's name behind the router with https on
  if (cfg.https.on()) {
    actx.server_names.push_back(api_host);
    actx.tls_ask = [store = d.store.get(), domain = util::to_lower(cfg.domain)](const std::string& host) {
      return tls_ask_allows(*store, domain, host);
    };
  }
  actx.secrets = d.secrets.get();
  actx.github_oauth = cfg.github_oauth;
  actx.previews.domain = cfg.domain;
  actx.previews.router_port = d.router_port;
  actx.previews.https_port = cfg.https.on() ? d.https_port : 0;
  if (cfg.https.on()) {
    actx.previews.dashboard_url =
        "https://" + api_host + (d.https_port == 443 ? "" : ":" + std::to_string(d.https_port));
  }
  IDP_TRY_ASSIGN(actx.previews.grant_key, preview_share_key(cfg.home));
  // Filled by the local driver in router_mode "lookup"; read by the API for each request.
  auto preview_routes = std::make_shared<core::PreviewRouteTable>();
  actx.previews.routes = preview_routes;
  // Written by the API at each sign-in and revocation; followed by the local driver's router.
  auto preview_sessions = std::make_shared<core::PreviewSessionTable>();
  actx.previews.sessions = preview_sessions;
  sources::Sources::Options so;
  so.github_api_url = cfg.github_api_url;
  so.max_body_bytes = actx.max_body_bytes;
  so.cost_rates = cfg.cost_rates;
  d.sources = std::make_unique<sources::Sources>(cfg.repositories, *d.store, *d.controller, d.clock, so);
  actx.forks = &d.sources->forks();
  if (!d.budgets->empty()) {
    // notify: [{github_comment: true}]: through the notifier's client, before the usage passes run.
    d.budgets->set_commenter(
        [gh = &d.sources->notifier()](const core::Environment& env, const std::string& body) -> Expected<bool> {
          return gh->post_comment(env.repo, env.pr_number.value_or(0), body);
        });
  }
  d.api = std::make_unique<api::ApiServer>(actx);
  auto github_hook = [src = d.sources.get()](const api::RawRequest& r) {
    auto out = src->webhook().handle(r.body, r.header);
    std::string body = util::json_dump(out.body);
    return api::RawResponse{out.status, "application/json", body + "\n"};
  };
  d.api->add_post_hook("/hooks/github", github_hook);
  IDP_TRY_ASSIGN(int listen_port, cfg.api_port());
  IDP_TRY_ASSIGN(d.api_port, d.api->bind(cfg.api_host(), listen_port));
  if (!cfg.webhook_listen.empty()) {
    // GitHub must reach the hooks; the API can stay on loopback. This listener serves
    // nothing else (every other path is 404 there).
    api::ApiContext hctx = actx;
    hctx.hooks_only = true;
    hctx.threads = 8;
    d.hooks = std::make_unique<api::ApiServer>(hctx);
    d.hooks->add_post_hook("/hooks/github", github_hook);
    auto colon = cfg.webhook_listen.rfind(':');
    IDP_TRY_ASSIGN(int hooks_port, util::parse_int<int>(cfg.webhook_listen.substr(colon + 1), 0, 65535));
    IDP_TRY_ASSIGN(d.hooks_port, d.hooks->bind(cfg.webhook_listen.substr(0, colon), hooks_port));
  }

  // Drivers start once the API's address is known: with https on, the router serves it
  // at idp.<domain>. Nothing is served before d.api->start() below.
  drivers::DriverContext dctx;
  dctx.home = cfg.home;
  dctx.domain = cfg.domain;
  dctx.router_port = d.router_port;
  dctx.router_listen_host = cfg.router_listen_host;
  dctx.untrusted = cfg.untrusted;
  if (cfg.https.on()) {
    dctx.https.mode = cfg.https.mode;
    dctx.https.port = d.https_port;
    dctx.https.acme_email = cfg.https.email;
    dctx.https.acme_ca = cfg.https.acme_ca;
    dctx.https.acme_ca_root = cfg.https.acme_ca_root;
    dctx.https.api_host = api_host;
    dctx.https.api_upstream = dial_address(cfg.api_host(), d.api_port);
    dctx.https.ask_url =
        cfg.https.ask.empty() ? "http://" + dctx.https.api_upstream + "/internal/tls-ask" : cfg.https.ask;
  }
  dctx.clock = &d.clock;
  dctx.self_exe = d.self_exe;
  dctx.team_of = cfg.team_of;
  dctx.max_concurrent_builds = cfg.max_concurrent_builds;
  dctx.previews.auth_upstream = dial_address(cfg.api_host(), d.api_port);
  dctx.previews.routes = preview_routes;
  dctx.previews.sessions = preview_sessions;
  dctx.previews.wake_key = d.wake_key;
  dctx.previews.wake_board = d.wake_board;
  dctx.previews.protect = [cfg_copy = std::make_shared<ServerConfig>(cfg)](const std::string& repo, bool wants_public) {
    return preview_protect_for(*cfg_copy, repo, wants_public);
  };
  // Drivers that run scheduled jobs themselves (local) record each run in the store.
  store::StateStore* job_store = d.store.get();
  dctx.job_runs.insert = [job_store](const core::JobRun& r) { return job_store->insert_job_run(r); };
  dctx.job_runs.update = [job_store](const core::JobRun& r) { return job_store->update_job_run(r); };
  dctx.job_runs.list = [job_store](const std::string& env, size_t limit) {
    return job_store->list_job_runs(env, limit);
  };
  engine::SecretStore* secret_store = d.secrets.get();
  dctx.secrets.resolve = [secret_store](const std::string& repo, const std::string& name) {
    return secret_store->resolve(repo, name);
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

  d.reconciler->start();
  d.reaper->start();
  d.usage->start();
  d.sleeper->start();
  d.retention->start();
  d.sources->start(); // after the engine: the startup sync queues work for it
  d.api->start();
  if (d.hooks) {
    d.hooks->start();
  }
  d.memory_release.start(
      [] {
        (void)util::release_free_memory();
        return util::Millis{15'000};
      },
      "memory_release");
  d.started = true;

  std::string api_url = "http://" + cfg.api_host() + ":" + std::to_string(d.api_port);
  nlohmann::json info = {{"pid", ::getpid()},
                         {"api_url", api_url},
                         {"router_port", d.router_port},
                         {"webhook_url", d.hooks
                                             ? "http://" + cfg.webhook_listen.substr(0, cfg.webhook_listen.rfind(':')) +
                                                   ":" + std::to_string(d.hooks_port) + "/hooks/github"
                                             : api_url + "/hooks/github"},
                         {"domain", cfg.domain},
                         {"home", cfg.home},
                         {"version", idp::k_version},
                         {"started_at", util::format_iso8601(d.clock.now_ms())}};
  std::string https_port = d.https_port == 443 ? "" : ":" + std::to_string(d.https_port);
  if (cfg.https.on()) {
    info["https_port"] = d.https_port;
    info["https_url"] = "https://" + api_host + https_port;
    if (cfg.https.mode == "internal") {
      // Where the local driver's Caddy keeps its local CA (drivers/local: <home>/router/data).
      info["ca_root"] = util::path_join(cfg.home, "router/data/pki/authorities/local/root.crt");
    }
  }
  // Announced before daemon.json names the API: whoever sees the file (idp's CLI, tests)
  // finds these lines in the log already.
  if (cfg.https.on()) {
    spdlog::info("idp serve: api {} and https://{}{} | environments at https://<name>.{}{}/ | home {} | drivers {}",
                 api_url, api_host, https_port, cfg.domain, https_port, cfg.home,
                 util::join(d.driver_set.names(), ","));
    if (cfg.https.mode == "internal") {
      std::string root = info["ca_root"].get<std::string>();
      spdlog::info("idp serve: certificates from Caddy's local CA; clients trust its root certificate {}{}", root,
                   util::path_exists(root) ? "" : " (not there yet)");
    }
  } else {
    spdlog::info("idp serve: api {} | environments at http://<name>.{}:{}/ | home {} | drivers {}", api_url, cfg.domain,
                 d.router_port, cfg.home, util::join(d.driver_set.names(), ","));
  }
  return util::write_file_atomic(util::path_join(cfg.home, "daemon.json"), util::json_dump(info, 2) + "\n");
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
  d.memory_release.stop();
  if (d.hooks) {
    d.hooks->stop();
  }
  if (d.api) {
    d.api->stop();
  }
  if (d.sources) {
    d.sources->stop(); // before the engine it feeds
  }
  if (d.reaper) {
    d.reaper->stop();
  }
  if (d.usage) {
    d.usage->stop();
  }
  if (d.sleeper) {
    d.sleeper->stop();
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
