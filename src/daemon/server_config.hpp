#pragma once
// The server's own settings: defaults < config file (YAML) < IDP_* environment < flags.
// Every value remembers where it came from (`idp serve --show-config`). The whole
// document is validated before any of it is used.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/oauth.hpp"
#include "core/app_config.hpp"
#include "drivers/driver.hpp"
#include "engine/budgets.hpp"
#include "engine/cost.hpp"
#include "engine/cost_export.hpp"
#include "engine/idle_sleeper.hpp"
#include "engine/options.hpp"
#include "engine/secret_store.hpp"
#include "sources/watched_repo.hpp"
#include "util/expected.hpp"

namespace idp::daemon {

// `https:` in the server config: the router's Caddy serves the API and dashboard at
// https://idp.<domain> and every environment over TLS (docs/configuration.md).
struct HttpsSettings {
  std::string mode = "off"; // off | internal (Caddy's local CA) | acme (on-demand, from an ACME CA)
  std::string email;        // acme: the account's contact address (required with acme)
  std::string acme_ca;      // acme: the CA's directory URL; "" = Let's Encrypt (Caddy's default)
  std::string acme_ca_root; // acme: PEM file of roots trusted for acme_ca's TLS; "" = the system's
  std::string ask;          // "" = the daemon's own /internal/tls-ask; else the URL Caddy asks
  int port = 443;           // 0 = chosen on first start, then kept
  bool on() const { return mode != "off"; }
};

// `previews:` in the server config (issue 15): whether preview URLs need a sign-in, and
// whether a repository's `.idp/config.yml` may open its own with `public: true`.
// repositories[i].previews overrides either key for one repository.
struct PreviewSettings {
  std::string protect;       // "signin" | "none"; "" = signin when github.oauth is set, else none
  bool allow_public = false; // `public: true` in .idp/config.yml is honoured (else a config error)
};
struct RepositoryPreviews {
  std::string repo_url;               // as configured (repositories[i].url)
  std::string github_repo;            // "owner/name" when configured
  std::optional<std::string> protect; // unset = the server's previews.protect
  std::optional<bool> allow_public;   // unset = the server's previews.allow_public
};

struct ServerConfig {
  std::string home;                      // IDP_HOME
  std::string listen = "127.0.0.1:8787"; // API address; port 0 = any free port
  std::string webhook_listen;            // "" = /hooks/github is served on `listen` too
  bool insecure_http = false;            // allow a non-loopback `listen` without TLS
  bool metrics_public = false;           // `metrics: public`: /metrics without a token
  int max_streams = 64;                  // SSE + logs?follow streams at once (own threads; 503 beyond)
  std::vector<std::string> server_names; // Host names the API answers to besides loopback
  int router_port = 0;                   // 0 = chosen on first start, then kept
  std::string router_listen_host = "127.0.0.1";
  std::string domain = "preview.localhost";
  HttpsSettings https;
  std::string templates_dir;               // the built-in templates
  std::vector<std::string> templates_path; // IDP_TEMPLATES_PATH
  bool keep_running = false;               // leave environments running when the daemon stops
  engine::EngineOptions engine;
  nlohmann::json driver_options = nlohmann::json::object(); // drivers.<name>.*
  std::vector<sources::WatchedRepo> repositories;
  PreviewSettings previews;                            // previews.protect, previews.allow_public
  std::vector<RepositoryPreviews> repository_previews; // repositories[i].previews, when set
  drivers::UntrustedProfile untrusted;                 // forks.egress_allow, forks.pids (engine.untrusted: the rest)
  std::vector<engine::ConfiguredSecret> secrets;       // secrets: NAME: {from, repos} (engine/secret_store.hpp)
  engine::CostRates cost_rates;                        // cost.cpu_hour, memory_gb_hour, storage_gb_month, currency
  util::Millis cost_sample_interval = 60'000;          // cost.sample_interval
  util::Millis cost_retention = 400LL * 86'400'000;    // cost.retention (0 = forever)
  engine::CostExportConfig cost_export;                // cost.export.to, by, format (engine/cost_export.hpp)
  std::map<std::string, std::string> team_of;          // teams: member identity → team
  std::vector<engine::Budget> budgets;                 // budgets: (engine/budgets.hpp)
  int max_concurrent_builds = 0;                       // limits.concurrent_builds (0 = no limit) name
  engine::SleepPolicy sleep;                           // sleep.* (idle sleep)
  std::string github_api_url = "https://api.github.com";
  api::GitHubOAuthSettings github_oauth;      // github.oauth: Sign in with GitHub on the dashboard
  std::string config_file;                    // "" = none
  std::map<std::string, std::string> origins; // key → "default" | file path | "env IDP_X" | "flag --x"

  std::string api_host() const;
  // previews.protect as it applies: "signin" or "none" (the default depends on github.oauth).
  std::string preview_protect() const;
  // The port of `listen` (8787 when it has none; 0 = any free port). invalid_config when it
  // is not a whole number from 0 to 65535.
  Expected<int> api_port() const;
};

// Parses a server config file into `cfg` (on top of its current values), collecting every
// error as "file:line:col: key \"k\": expected …". Nothing is applied when any error exists.
std::vector<core::ConfigError> apply_server_config_file(ServerConfig& cfg, const std::string& text,
                                                        const std::string& file);

// The IDP_* aliases of the keys (server_config_keys()), each parsed and checked exactly like
// the file's value: invalid_config "environment variable IDP_X: expected …, got …".
Expected<void> apply_server_env(ServerConfig& cfg);

// One key of the server config, from its option table: for documentation and its tests.
struct ServerConfigKey {
  std::string key; // dotted: "retention.events"
  std::string env; // IDP_* alias, "" = none
  std::string default_text;
  std::string doc;
};
std::vector<ServerConfigKey> server_config_keys();

// "env:NAME" → $NAME, "file:PATH" → contents (trimmed), anything else as is.
Expected<std::string> resolve_secret_reference(const std::string& ref);

} // namespace idp::daemon
