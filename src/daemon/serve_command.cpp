#include "daemon/serve_command.hpp"

#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "core/ttl.hpp"
#include "daemon/daemon.hpp"
#include "drivers/local/netns_sandbox.hpp"
#include "drivers/local/shim.hpp"
#include "engine/templates.hpp"
#include "util/failpoint.hpp"
#include "util/fatal.hpp"
#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

#ifndef IDP_BUILTIN_TEMPLATES_DIR
#define IDP_BUILTIN_TEMPLATES_DIR "/usr/share/idp/templates"
#endif

namespace idp::daemon {

namespace {

struct ServeOptions {
  std::string home;
  std::string listen;
  int router_port = -1;
  std::string router_host;
  std::string domain;
  std::string config;
  std::string templates_dir;
  std::string reaper_interval;
  std::string health_interval;
  std::string ttl_min;
  std::string ttl_max;
  int workers = 0;
  bool keep_running = false;
  bool insecure_http = false;
  bool check_config = false;
  bool show_config = false;
};

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    return "idp";
  }
  buf[n] = '\0';
  return buf;
}

// defaults < file < environment < flags
ServerConfig build_config(const ServeOptions& o) {
  ServerConfig cfg;
  cfg.home = util::default_idp_home();
  const char* builtin = std::getenv("IDP_BUILTIN_TEMPLATES");
  cfg.templates_dir = builtin && *builtin ? builtin : IDP_BUILTIN_TEMPLATES_DIR;
  for (const char* k : {"home", "listen", "router.port", "router.domain", "https.mode", "ttl.min", "ttl.max",
                        "reaper_interval", "health_interval", "workers", "templates_path", "max_streams"}) {
    cfg.origins[k] = "default";
  }
  if (!o.config.empty()) {
    auto text = util::read_file(o.config);
    if (!text) {
      throw Fatal("cannot read server config " + util::quote(o.config) + ": " + text.error().message);
    }
    auto errors = apply_server_config_file(cfg, *text, o.config);
    if (!errors.empty()) {
      std::string msg;
      for (const auto& e : errors) {
        msg += "\n  " + e.to_string();
      }
      throw Fatal("invalid server config " + util::quote(o.config) + ":" + msg);
    }
  }
  if (auto e = apply_server_env(cfg); !e) {
    throw Fatal(e.error().message);
  }
  auto dur = [](const std::string& flag, const std::string& v, util::Millis& dest) {
    auto d = core::parse_duration(v);
    if (!d || *d <= 0) {
      throw Fatal(flag + ": expected a duration like 30s or 10m, got " + util::quote(v));
    }
    dest = *d;
  };
  if (!o.home.empty()) {
    cfg.home = o.home;
    cfg.origins["home"] = "flag --home";
  }
  if (!o.listen.empty()) {
    cfg.listen = o.listen;
    cfg.origins["listen"] = "flag --listen";
  }
  if (o.router_port >= 0) {
    cfg.router_port = o.router_port;
    cfg.origins["router.port"] = "flag --router-port";
  }
  if (!o.router_host.empty()) {
    cfg.router_listen_host = o.router_host;
    cfg.origins["router.listen_host"] = "flag --router-host";
  }
  if (!o.domain.empty()) {
    cfg.domain = o.domain;
    cfg.origins["router.domain"] = "flag --domain";
  }
  if (!o.templates_dir.empty()) {
    cfg.templates_dir = o.templates_dir;
    cfg.origins["templates_dir"] = "flag --templates-dir";
  }
  if (!o.reaper_interval.empty()) {
    dur("--reaper-interval", o.reaper_interval, cfg.engine.reaper_interval);
    cfg.origins["reaper_interval"] = "flag --reaper-interval";
  }
  if (!o.health_interval.empty()) {
    dur("--health-interval", o.health_interval, cfg.engine.health_interval);
    cfg.origins["health_interval"] = "flag --health-interval";
  }
  if (!o.ttl_min.empty()) {
    dur("--ttl-min", o.ttl_min, cfg.engine.ttl_policy.min);
    cfg.origins["ttl.min"] = "flag --ttl-min";
  }
  if (!o.ttl_max.empty()) {
    dur("--ttl-max", o.ttl_max, cfg.engine.ttl_policy.max);
    cfg.origins["ttl.max"] = "flag --ttl-max";
  }
  if (o.workers > 0) {
    cfg.engine.workers = static_cast<size_t>(o.workers);
    cfg.origins["workers"] = "flag --workers";
  }
  if (o.keep_running) {
    cfg.keep_running = true;
    cfg.origins["keep_running"] = "flag --keep-running";
  }
  cfg.insecure_http = o.insecure_http;
  if (cfg.engine.ttl_policy.min > cfg.engine.ttl_policy.max) {
    throw Fatal("ttl min " + core::format_ttl(cfg.engine.ttl_policy.min) + " is above ttl max " +
                core::format_ttl(cfg.engine.ttl_policy.max));
  }
  if (cfg.listen.find(':') == std::string::npos || !cfg.api_port()) {
    throw Fatal("--listen: expected an address like 127.0.0.1:8787 with a port from 0 to 65535, got " +
                util::quote(cfg.listen));
  }
  // The API has no TLS of its own: on the network, tokens would travel in clear text.
  std::string host = util::to_lower(cfg.api_host());
  bool loopback = host == "localhost" || host == "::1" || host == "[::1]" ||
                  (util::starts_with(host, "127.") && host.find_first_not_of("0123456789.") == std::string::npos);
  if (!loopback && !cfg.insecure_http) {
    throw Fatal("listen " + util::quote(cfg.listen) +
                " is not a loopback address and the API has no TLS: API tokens would cross the network in clear "
                "text; listen on 127.0.0.1 and let the router serve it over TLS (https: in the server config, see "
                "docs/security.md), or pass --insecure-http to accept plain HTTP");
  }
  // Default templates must exist: found now, not at the first push of a repository.
  engine::TemplateCatalog catalog(cfg.templates_dir, cfg.templates_path);
  auto check_template = [&](const std::string& key, const std::string& name) {
    if (!name.empty()) {
      if (auto t = catalog.get(name); !t) {
        throw Fatal(key + ": " + t.error().message);
      }
    }
  };
  check_template("default_template", cfg.engine.default_template);
  for (size_t i = 0; i < cfg.repositories.size(); ++i) {
    check_template("repositories[" + std::to_string(i) + "].default_template", cfg.repositories[i].default_template);
  }
  cfg.home = util::absolute_path(cfg.home);
  return cfg;
}

// Every setting `idp serve` would run with, one per line, secrets shown only as set or not.
void print_config(const ServerConfig& cfg) {
  auto origin = [&](const std::string& key) {
    auto it = cfg.origins.find(key);
    if (it != cfg.origins.end()) {
      return it->second;
    }
    // Keys inside a section set in the file (drivers.*, repositories[*]) come from the file.
    auto dot = key.find_first_of(".[");
    auto section = cfg.origins.find(key.substr(0, dot));
    return section != cfg.origins.end() && dot != std::string::npos ? section->second : std::string("default");
  };
  auto row = [&](const std::string& key, const std::string& value) {
    std::printf("(%s) %s = %s\n", origin(key).c_str(), key.c_str(), value.c_str());
  };
  auto list = [](const std::vector<std::string>& v) { return v.empty() ? std::string("(none)") : util::join(v, ", "); };
  row("home", cfg.home);
  row("listen", cfg.listen);
  row("router.port", cfg.router_port == 0 ? "auto" : std::to_string(cfg.router_port));
  row("router.listen_host", cfg.router_listen_host);
  row("router.domain", cfg.domain);
  row("https.mode", cfg.https.mode);
  if (cfg.https.on()) {
    row("https.port", cfg.https.port == 0 ? "auto" : std::to_string(cfg.https.port));
    row("https.email", cfg.https.email.empty() ? "(not set)" : cfg.https.email);
    if (cfg.https.mode == "acme") {
      row("https.acme_ca", cfg.https.acme_ca.empty() ? "(Let's Encrypt)" : cfg.https.acme_ca);
      row("https.acme_ca_root", cfg.https.acme_ca_root.empty() ? "(the system's roots)" : cfg.https.acme_ca_root);
    }
    row("https.ask", cfg.https.ask.empty() ? "(the daemon's /internal/tls-ask)" : cfg.https.ask);
  }
  row("runtime", cfg.engine.default_runtime);
  row("workers", std::to_string(cfg.engine.workers));
  row("max_streams", std::to_string(cfg.max_streams));
  row("reaper_interval", core::format_ttl(cfg.engine.reaper_interval));
  row("health_interval", core::format_ttl(cfg.engine.health_interval));
  row("ttl.min", core::format_ttl(cfg.engine.ttl_policy.min));
  row("ttl.max", core::format_ttl(cfg.engine.ttl_policy.max));
  auto kept = [](util::Millis ms, const char* zero) {
    return ms == 0 ? std::string("0 (") + zero + ")" : core::format_ttl(ms);
  };
  row("retention.events", kept(cfg.engine.event_retention, "kept forever"));
  row("retention.destroyed", kept(cfg.engine.destroyed_retention, "kept forever"));
  row("retention.mirrors", kept(cfg.engine.mirror_retention, "kept forever"));
  row("retention.interval", kept(cfg.engine.retention_interval, "never pruned"));
  row("keep_running", cfg.keep_running ? "true" : "false");
  row("templates_dir", cfg.templates_dir);
  row("templates_path", util::join(cfg.templates_path, ":"));
  row("default_template",
      cfg.engine.default_template.empty() ? "api-service (the built-in default)" : cfg.engine.default_template);
  row("github.api_url", cfg.github_api_url);
  for (const auto& [driver, opts] : cfg.driver_options.items()) {
    for (const auto& [k, v] : opts.items()) {
      // Durations under the name the file uses for them (drain: 500ms, not drain_ms: 500).
      if (util::ends_with(k, "_ms") && v.is_number_integer()) {
        row("drivers." + driver + "." + k.substr(0, k.size() - 3), std::to_string(v.get<long long>()) + "ms");
        continue;
      }
      row("drivers." + driver + "." + k, v.is_string() ? v.get<std::string>() : util::json_dump(v));
    }
  }
  row("repositories", std::to_string(cfg.repositories.size()));
  for (size_t i = 0; i < cfg.repositories.size(); ++i) {
    const auto& r = cfg.repositories[i];
    std::string p = "repositories[" + std::to_string(i) + "].";
    row(p + "url", r.url);
    row(p + "github_repo", r.github_repo.empty() ? "(from the url)" : r.github_repo);
    row(p + "branches.include", list(r.include));
    row(p + "branches.exclude", list(r.exclude));
    row(p + "default_branch", r.default_branch);
    row(p + "default_template", r.default_template.empty() ? "(the repository's config)" : r.default_template);
    row(p + "poll", r.poll ? "true" : "false");
    row(p + "poll_interval", util::format_duration(r.poll_interval));
    row(p + "webhook_secret", r.webhook_secret.empty() ? "(not set)" : "(set)");
    row(p + "github_token", r.github_token.empty() ? "(not set)" : "(set)");
  }
}

} // namespace

cli::CommandSpec serve_command_spec() {
  return {"serve", "run the idp server (API, engine, router) in the foreground", false,
          [](CLI::App& sub, const cli::GlobalOptions&) -> cli::Runner {
            auto o = std::make_shared<ServeOptions>();
            sub.add_option("--home", o->home,
                           "state directory (default: IDP_HOME, else ~/.local/share/idp, /var/lib/idp for root)");
            sub.add_option("--listen", o->listen, "API address (default 127.0.0.1:8787; port 0 = any)");
            sub.add_option("--router-port", o->router_port,
                           "port environments' URLs use (default: chosen once, then kept)");
            sub.add_option("--router-host", o->router_host, "address the router listens on (default 127.0.0.1)");
            sub.add_option("--domain", o->domain, "environments are <name>.<domain> (default preview.localhost)");
            sub.add_option("--config", o->config, "server config file (YAML)");
            sub.add_option("--templates-dir", o->templates_dir, "built-in templates directory");
            sub.add_option("--reaper-interval", o->reaper_interval, "TTL reaper period (default 30s)");
            sub.add_option("--health-interval", o->health_interval, "health check period (default 10s)");
            sub.add_option("--ttl-min", o->ttl_min, "shortest TTL allowed (default 10m)");
            sub.add_option("--ttl-max", o->ttl_max, "longest lifetime allowed (default 30d)");
            sub.add_option("--workers", o->workers, "concurrent operations (default 4)");
            sub.add_flag("--keep-running", o->keep_running, "leave environments running when the server stops");
            sub.add_flag("--insecure-http", o->insecure_http,
                         "allow a non-loopback --listen without TLS (tokens cross the network in clear text)");
            sub.add_flag("--check-config", o->check_config, "validate the configuration and exit");
            sub.add_flag("--show-config", o->show_config, "print every setting with its origin and exit");
            return [o]() -> Expected<int> {
              ServerConfig cfg = build_config(*o);
              if (o->check_config) {
                std::printf("configuration is valid\n");
                return 0;
              }
              if (o->show_config) {
                print_config(cfg);
                return 0;
              }
              block_shutdown_signals();
              util::init_logging();
              // Tests only: arms the failpoints named in IDP_FAILPOINTS (docs/hacking.md).
              if (auto fp = util::init_failpoints_from_env(); !fp) {
                throw Fatal(fp.error().message);
              }
              Daemon daemon(cfg, self_exe());
              auto started = daemon.start();
              if (!started) {
                daemon.shutdown();
                throw Fatal(started.error().full_message());
              }
              daemon.wait_for_signal();
              daemon.shutdown();
              return 0;
            };
          }};
}

cli::CommandSpec internal_command_spec() {
  cli::CommandSpec spec;
  spec.name = "__shim";
  spec.summary = "internal: supervise one application process";
  spec.hidden = true;
  spec.raw = [](int argc, char** argv) { return drivers::local::run_shim(argc, argv); };
  return spec;
}

cli::CommandSpec netns_command_spec() {
  cli::CommandSpec spec;
  spec.name = "__netns";
  spec.summary = "internal: run a command in a network namespace of its own (untrusted profile)";
  spec.hidden = true;
  spec.raw = [](int argc, char** argv) { return drivers::local::run_netns(argc, argv); };
  return spec;
}

} // namespace idp::daemon
