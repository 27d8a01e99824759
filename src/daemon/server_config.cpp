#include "daemon/server_config.hpp"

#include <cstdlib>
#include <functional>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "api/auth.hpp"
#include "core/ttl.hpp"
#include "drivers/driver.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::daemon {

using util::quote;

std::string ServerConfig::api_host() const {
  auto colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

Expected<int> ServerConfig::api_port() const {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return 8787;
  }
  auto port = util::parse_int<int>(std::string_view(listen).substr(colon + 1), 0, 65535);
  if (!port) {
    return make_error(ErrorCode::invalid_config,
                      "listen: expected an address like 127.0.0.1:8787 with a port from 0 to 65535, got " + quote(listen));
  }
  return *port;
}

Expected<std::string> resolve_secret_reference(const std::string& ref) {
  if (util::starts_with(ref, "env:")) {
    const char* v = std::getenv(ref.substr(4).c_str());
    if (!v) {
      return make_error(ErrorCode::invalid_config, "environment variable " + quote(ref.substr(4)) + " is not set");
    }
    return std::string(v);
  }
  if (util::starts_with(ref, "file:")) {
    auto t = util::read_file(ref.substr(5));
    if (!t) {
      return make_error(ErrorCode::invalid_config, "cannot read " + quote(ref.substr(5)));
    }
    return util::trim(*t);
  }
  return ref;
}

namespace {

using Msg = std::optional<std::string>;

std::string describe(const YAML::Node& n) {
  if (n.IsMap()) {
    return "a map";
  }
  if (n.IsSequence()) {
    return "a list";
  }
  if (n.IsNull()) {
    return "nothing";
  }
  return quote(n.Scalar());
}

Msg as_string(const YAML::Node& n, std::string& out, const std::string& what) {
  if (!n.IsScalar()) {
    return "expected " + what + ", got " + describe(n);
  }
  out = n.Scalar();
  return std::nullopt;
}

Msg as_int(const YAML::Node& n, int& out, int lo, int hi, const std::string& what) {
  if (!n.IsScalar()) {
    return "expected " + what + ", got " + describe(n);
  }
  auto v = util::parse_int<int>(n.Scalar(), lo, hi);
  if (!v) {
    return "expected " + what + ", got " + describe(n);
  }
  out = *v;
  return std::nullopt;
}

Msg as_bool(const YAML::Node& n, bool& out) {
  if (n.IsScalar()) {
    std::string v = util::to_lower(n.Scalar());
    if (v == "true" || v == "yes" || v == "on") {
      out = true;
      return std::nullopt;
    }
    if (v == "false" || v == "no" || v == "off") {
      out = false;
      return std::nullopt;
    }
  }
  return "expected true or false, got " + describe(n);
}

Msg as_duration(const YAML::Node& n, util::Millis& out) {
  if (!n.IsScalar()) {
    return "expected a duration like 30s or 5m, got " + describe(n);
  }
  auto d = core::parse_duration(n.Scalar());
  if (!d || *d <= 0) {
    return "expected a duration like 30s or 5m, got " + quote(n.Scalar());
  }
  out = *d;
  return std::nullopt;
}

Msg as_string_list(const YAML::Node& n, std::vector<std::string>& out, const std::string& what) {
  out.clear();
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
    return std::nullopt;
  }
  if (!n.IsSequence()) {
    return "expected a list of " + what + ", got " + describe(n);
  }
  for (const auto& item : n) {
    if (!item.IsScalar()) {
      return "expected a list of " + what + ", got an item that is " + describe(item);
    }
    out.push_back(item.Scalar());
  }
  return std::nullopt;
}

struct Walker {
  std::string file;
  std::vector<core::ConfigError> errors;

  void error(const YAML::Mark& m, const std::string& key, const std::string& msg) {
    core::ConfigError e;
    e.file = file;
    e.line = m.line + 1;
    e.column = m.column + 1;
    e.key = key;
    e.message = msg;
    errors.push_back(std::move(e));
  }

  using Handler = std::function<Msg(const YAML::Node&)>;

  // Walks a map with a table of handlers; unknown keys get "did you mean".
  void walk(const YAML::Node& map, const std::string& prefix, const std::map<std::string, Handler>& table) {
    if (!map.IsMap()) {
      error(map.Mark(), prefix, "expected a map, got " + describe(map));
      return;
    }
    std::set<std::string> seen;
    std::vector<std::string> names;
    for (const auto& [k, _] : table) {
      names.push_back(k);
    }
    for (const auto& kv : map) {
      std::string name = kv.first.Scalar();
      std::string full = prefix.empty() ? name : prefix + "." + name;
      if (!seen.insert(name).second) {
        error(kv.first.Mark(), full, "duplicate key");
        continue;
      }
      auto it = table.find(name);
      if (it == table.end()) {
        std::string hint = util::closest_match(name, names);
        error(kv.first.Mark(), full,
              "unknown key" + (hint.empty() ? "" : ", did you mean " + quote(prefix.empty() ? hint : prefix + "." + hint) + "?"));
        continue;
      }
      if (kv.second.IsNull()) {
        continue;
      }
      if (auto m = it->second(kv.second)) {
        error(kv.second.Mark(), full, *m);
      }
    }
  }
};

const drivers::DriverFactory* find_driver(const std::string& name) {
  for (const auto* f : drivers::builtin_driver_factories()) {
    if (f->name() == name) {
      return f;
    }
  }
  return nullptr;
}

// Whether the driver has an option of that (internal) name, whatever the value.
bool driver_knows(const drivers::DriverFactory& f, const std::string& key) {
  auto r = f.check_options(nlohmann::json{{key, 0}});
  return r || r.error().message.find("unknown option") == std::string::npos;
}

// One drivers.<name> section: values converted as the drivers take them (a duration
// "2s"/"500ms" under `drain` becomes drain_ms: 2000), then checked by the driver itself,
// so --check-config finds what serve would. Messages use the names of the file.
void apply_driver_section(Walker& w, ServerConfig& cfg, const YAML::Node& key, const YAML::Node& section) {
  std::string dname = key.Scalar();
  std::string prefix = "drivers." + dname;
  const drivers::DriverFactory* factory = find_driver(dname);
  if (!factory) {
    std::vector<std::string> names;
    for (const auto* f : drivers::builtin_driver_factories()) {
      names.emplace_back(f->name());
    }
    std::string hint = util::closest_match(dname, names);
    w.error(key.Mark(), prefix,
            "unknown driver" + (hint.empty() ? "" : ", did you mean " + quote("drivers." + hint) + "?") +
                " (compiled in: " + util::join(names, ", ") + ")");
    return;
  }
  if (section.IsNull()) {
    return;
  }
  if (!section.IsMap()) {
    w.error(section.Mark(), prefix, "expected a map of options, got " + describe(section));
    return;
  }
  struct Written {
    std::string user_key;
    std::string text;
    YAML::Mark key_mark;
    YAML::Mark value_mark;
  };
  std::map<std::string, Written> written; // driver's key → what the file said
  nlohmann::json opts = nlohmann::json::object();
  static const std::regex k_num("^-?[0-9]{1,15}$");
  static const std::regex k_ms("^([0-9]{1,12})ms$");
  for (const auto& o : section) {
    std::string k = o.first.Scalar();
    if (!o.second.IsScalar()) {
      w.error(o.second.Mark(), prefix + "." + k, "expected a single value, got " + describe(o.second));
      continue;
    }
    const std::string& v = o.second.Scalar();
    std::string ms_key = k + (util::ends_with(k, "_ms") ? "" : "_ms");
    std::smatch m;
    std::string jkey = k;
    if (std::regex_match(v, k_num)) {
      opts[k] = util::parse_int<long long>(v).value_or(0); // k_num: at most 15 digits
    } else if (v == "true" || v == "false") {
      opts[k] = v == "true";
    } else if (std::regex_match(v, m, k_ms)) {
      jkey = ms_key;
      opts[jkey] = util::parse_int<long long>(m[1].str()).value_or(0);
    } else if (auto d = core::parse_duration(v)) {
      jkey = ms_key;
      opts[jkey] = *d;
    } else {
      opts[k] = v;
    }
    written[jkey] = {k, v, o.first.Mark(), o.second.Mark()};
  }
  auto checked = factory->check_options(opts);
  if (checked) {
    cfg.driver_options[dname] = opts;
    return;
  }
  // Say which option is wrong, in the file's terms.
  static const std::regex k_prefix("^driver \"[^\"]+\": option \"[^\"]+\": ");
  static const std::regex k_hint("did you mean \"([^\"]+)\"");
  bool placed = false;
  for (const auto& [jkey, src] : written) {
    auto one = factory->check_options(nlohmann::json{{jkey, opts[jkey]}});
    if (one) {
      continue;
    }
    placed = true;
    std::string full = prefix + "." + src.user_key;
    const std::string& msg = one.error().message;
    if (msg.find("unknown option") == std::string::npos) {
      w.error(src.value_mark, full, std::regex_replace(msg, k_prefix, ""));
    } else if (jkey == src.user_key && !util::ends_with(jkey, "_ms") && driver_knows(*factory, jkey + "_ms")) {
      w.error(src.value_mark, full, "expected a duration like 500ms, 2s or 5m, got " + quote(src.text));
    } else {
      std::smatch m;
      std::string hint;
      if (std::regex_search(msg, m, k_hint)) {
        hint = m[1].str();
        if (util::ends_with(hint, "_ms")) {
          hint = hint.substr(0, hint.size() - 3); // the name a duration is written under
        }
      }
      w.error(src.key_mark, full, "unknown option" + (hint.empty() ? "" : ", did you mean " + quote(prefix + "." + hint) + "?"));
    }
  }
  if (!placed) {
    w.error(section.Mark(), prefix, checked.error().message);
  }
}

} // namespace

std::vector<core::ConfigError> apply_server_config_file(ServerConfig& out, const std::string& text,
                                                        const std::string& file) {
  Walker w;
  w.file = file;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    w.error(e.mark, "", "invalid YAML: " + e.msg);
    return w.errors;
  }
  if (!root || root.IsNull()) {
    return {};
  }
  ServerConfig cfg = out; // applied only when everything is valid
  std::set<std::string> set_keys;
  auto mark = [&](const std::string& k) {
    set_keys.insert(k);
    return std::nullopt;
  };
  using H = Walker::Handler;
  std::map<std::string, H> router = {
      {"port", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_int(n, cfg.router_port, 0, 65535, "a port number 0-65535")) {
           return m;
         }
         return mark("router.port");
       }},
      {"listen_host", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.router_listen_host, "an address like 127.0.0.1 or 0.0.0.0")) {
           return m;
         }
         return mark("router.listen_host");
       }},
      {"domain", [&](const YAML::Node& n) -> Msg {
         static const std::regex k_domain("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
         if (auto m = as_string(n, cfg.domain, "a DNS domain like preview.example.com")) {
           return m;
         }
         if (!std::regex_match(cfg.domain, k_domain)) {
           return "expected a DNS domain like preview.example.com, got " + quote(cfg.domain);
         }
         return mark("router.domain");
       }},
  };
  std::map<std::string, H> ttl = {
      {"min", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_duration(n, cfg.engine.ttl_policy.min)) {
           return m;
         }
         return mark("ttl.min");
       }},
      {"max", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_duration(n, cfg.engine.ttl_policy.max)) {
           return m;
         }
         return mark("ttl.max");
       }},
  };
  std::map<std::string, H> github = {
      {"api_url", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.github_api_url, "a URL like https://api.github.com")) {
           return m;
         }
         if (!util::starts_with(cfg.github_api_url, "http://") && !util::starts_with(cfg.github_api_url, "https://")) {
           return "expected a URL like https://api.github.com, got " + quote(cfg.github_api_url);
         }
         while (!cfg.github_api_url.empty() && cfg.github_api_url.back() == '/') {
           cfg.github_api_url.pop_back();
         }
         return mark("github.api_url");
       }},
  };
  std::map<std::string, H> https = {
      {"mode", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.https.mode, "off, internal or acme")) {
           return m;
         }
         if (cfg.https.mode != "off" && cfg.https.mode != "internal" && cfg.https.mode != "acme") {
           std::string hint = util::closest_match(cfg.https.mode, {"off", "internal", "acme"});
           return "expected off, internal or acme, got " + quote(cfg.https.mode) +
                  (hint.empty() ? "" : " (did you mean " + quote(hint) + "?)");
         }
         return mark("https.mode");
       }},
      {"email", [&](const YAML::Node& n) -> Msg {
         static const std::regex k_email("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$");
         if (auto m = as_string(n, cfg.https.email, "an email address like ops@example.com")) {
           return m;
         }
         if (!std::regex_match(cfg.https.email, k_email)) {
           return "expected an email address like ops@example.com, got " + quote(cfg.https.email);
         }
         return mark("https.email");
       }},
      {"ask", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.https.ask, "a URL like http://127.0.0.1:9000/allowed")) {
           return m;
         }
         if (!util::starts_with(cfg.https.ask, "http://") && !util::starts_with(cfg.https.ask, "https://")) {
           return "expected a URL like http://127.0.0.1:9000/allowed, got " + quote(cfg.https.ask);
         }
         return mark("https.ask");
       }},
      {"port", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_int(n, cfg.https.port, 0, 65535, "a port number 0-65535")) {
           return m;
         }
         return mark("https.port");
       }},
  };
  std::optional<YAML::Mark> https_mark; // where the https map is, for the checks across its keys
  std::map<std::string, H> top = {
      {"listen", [&](const YAML::Node& n) -> Msg {
         static const std::regex k_listen("^[^:\\s]+:[0-9]{1,5}$");
         if (auto m = as_string(n, cfg.listen, "an address like 127.0.0.1:8787")) {
           return m;
         }
         if (!std::regex_match(cfg.listen, k_listen) || !cfg.api_port()) {
           return "expected an address like 127.0.0.1:8787, got " + quote(cfg.listen);
         }
         return mark("listen");
       }},
      {"webhook_listen", [&](const YAML::Node& n) -> Msg {
         static const std::regex k_listen("^[^:\\s]+:[0-9]{1,5}$");
         if (auto m = as_string(n, cfg.webhook_listen, "an address like 0.0.0.0:8788")) {
           return m;
         }
         if (!std::regex_match(cfg.webhook_listen, k_listen) ||
             !util::parse_int<int>(cfg.webhook_listen.substr(cfg.webhook_listen.rfind(':') + 1), 0, 65535)) {
           return "expected an address like 0.0.0.0:8788, got " + quote(cfg.webhook_listen);
         }
         return mark("webhook_listen");
       }},
      {"metrics", [&](const YAML::Node& n) -> Msg {
         std::string v;
         if (auto m = as_string(n, v, "public or private")) {
           return m;
         }
         if (v != "public" && v != "private") {
           return "expected public or private, got " + quote(v);
         }
         cfg.metrics_public = v == "public";
         return mark("metrics");
       }},
      {"server_names", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string_list(n, cfg.server_names, "host names")) {
           return m;
         }
         for (const auto& h : cfg.server_names) {
           if (h.empty() || h.find_first_of(" /:@") != std::string::npos) {
             return "expected host names like idp.example.com (no scheme, port or path), got " + quote(h);
           }
         }
         return mark("server_names");
       }},
      {"home", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.home, "a directory")) {
           return m;
         }
         return mark("home");
       }},
      {"runtime", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.engine.default_runtime, "a runtime name like local")) {
           return m;
         }
         return mark("runtime");
       }},
      {"workers", [&](const YAML::Node& n) -> Msg {
         int v = 0;
         if (auto m = as_int(n, v, 1, 256, "a number of workers 1-256")) {
           return m;
         }
         cfg.engine.workers = static_cast<size_t>(v);
         return mark("workers");
       }},
      {"max_streams", [&](const YAML::Node& n) -> Msg {
         // Each stream has a thread of its own while it lasts.
         if (auto m = as_int(n, cfg.max_streams, 0, 1024, "a number of streams 0-1024")) {
           return m;
         }
         return mark("max_streams");
       }},
      {"reaper_interval", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_duration(n, cfg.engine.reaper_interval)) {
           return m;
         }
         return mark("reaper_interval");
       }},
      {"health_interval", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_duration(n, cfg.engine.health_interval)) {
           return m;
         }
         return mark("health_interval");
       }},
      {"keep_running", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_bool(n, cfg.keep_running)) {
           return m;
         }
         return mark("keep_running");
       }},
      {"default_template", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string(n, cfg.engine.default_template, "a template name")) {
           return m;
         }
         return mark("default_template");
       }},
      {"templates_path", [&](const YAML::Node& n) -> Msg {
         if (auto m = as_string_list(n, cfg.templates_path, "directories")) {
           return m;
         }
         return mark("templates_path");
       }},
      {"router", [&](const YAML::Node& n) -> Msg {
         w.walk(n, "router", router);
         return std::nullopt;
       }},
      {"https", [&](const YAML::Node& n) -> Msg {
         https_mark = n.Mark();
         w.walk(n, "https", https);
         return std::nullopt;
       }},
      {"ttl", [&](const YAML::Node& n) -> Msg {
         w.walk(n, "ttl", ttl);
         return std::nullopt;
       }},
      {"github", [&](const YAML::Node& n) -> Msg {
         w.walk(n, "github", github);
         return std::nullopt;
       }},
      {"drivers", [&](const YAML::Node& n) -> Msg {
         if (!n.IsMap()) {
           return "expected a map of driver name: options, got " + describe(n);
         }
         for (const auto& kv : n) {
           apply_driver_section(w, cfg, kv.first, kv.second);
         }
         return mark("drivers");
       }},
      {"secrets", [&](const YAML::Node& n) -> Msg {
         // The server's secret store, part 1 (issue 9): values read from the daemon's
         // environment or files when an environment of an allowed repository deploys.
         if (!n.IsMap()) {
           return "expected a map of NAME: {from: env:VAR or file:/path, repos: [owner/name, ...]}, got " + describe(n);
         }
         cfg.secrets.clear();
         for (const auto& kv : n) {
           std::string name = kv.first.Scalar();
           std::string prefix = "secrets." + name;
           if (!core::is_secret_store_name(name)) {
             w.error(kv.first.Mark(), prefix,
                     "expected a secret name of letters, digits, '_', '.' or '-', got " + quote(name));
             continue;
           }
           engine::ConfiguredSecret sec;
           sec.name = name;
           bool has_from = false;
           bool has_repos = false;
           std::map<std::string, H> table = {
               {"from", [&](const YAML::Node& f) -> Msg {
                  if (auto m = as_string(f, sec.from, "env:VAR or file:/absolute/path")) {
                    return m;
                  }
                  bool ok = (util::starts_with(sec.from, "env:") && sec.from.size() > 4) ||
                            (util::starts_with(sec.from, "file:/") && sec.from.size() > 6);
                  if (!ok) {
                    // Not echoed: it may be the value itself, written here by mistake.
                    return std::string("expected env:VAR or file:/absolute/path (where the value is read; the value "
                                       "itself does not belong in the config)");
                  }
                  has_from = true;
                  return std::nullopt;
                }},
               {"repos", [&](const YAML::Node& r) -> Msg {
                  if (auto m = as_string_list(r, sec.repos, "repositories (owner/name, a URL or a path; * = every one)")) {
                    return m;
                  }
                  for (const auto& pattern : sec.repos) {
                    if (auto c = engine::check_repo_pattern(pattern); !c) {
                      return c.error().message;
                    }
                  }
                  has_repos = !sec.repos.empty();
                  return std::nullopt;
                }},
           };
           w.walk(kv.second, prefix, table);
           if (kv.second.IsMap() && !has_from) {
             w.error(kv.second.Mark(), prefix + ".from", "required: where the value is read, env:VAR or file:/absolute/path");
           }
           if (kv.second.IsMap() && !has_repos) {
             w.error(kv.second.Mark(), prefix + ".repos",
                     "required: the repositories that may use it, like [acme/shop] (\"*\" for every one)");
           }
           cfg.secrets.push_back(std::move(sec));
         }
         return mark("secrets");
       }},
      {"repositories", [&](const YAML::Node& n) -> Msg {
         if (!n.IsSequence()) {
           return "expected a list of repositories, got " + describe(n);
         }
         cfg.repositories.clear();
         size_t idx = 0;
         for (const auto& item : n) {
           std::string prefix = "repositories[" + std::to_string(idx++) + "]";
           sources::WatchedRepo repo;
           bool has_url = false;
           std::map<std::string, H> branches = {
               {"include", [&](const YAML::Node& b) -> Msg { return as_string_list(b, repo.include, "branch globs"); }},
               {"exclude", [&](const YAML::Node& b) -> Msg { return as_string_list(b, repo.exclude, "branch globs"); }},
           };
           auto secret = [&](const YAML::Node& s, std::string& dest, const std::string& what) -> Msg {
             std::string ref;
             if (auto m = as_string(s, ref, what)) {
               return m;
             }
             auto v = resolve_secret_reference(ref);
             if (!v) {
               return v.error().message;
             }
             dest = *v;
             return std::nullopt;
           };
           std::map<std::string, H> repo_table = {
               {"url", [&](const YAML::Node& u) -> Msg {
                  if (auto m = as_string(u, repo.url, "a git URL or a local path")) {
                    return m;
                  }
                  if (repo.url.empty() || repo.url.front() == '-') {
                    return "expected a git URL or a local path, got " + quote(repo.url);
                  }
                  if (util::url_has_credentials(repo.url)) {
                    // Kept for git alone (handed over at start); shown and stored stripped.
                    repo.url_with_credentials = repo.url;
                    repo.url = util::strip_url_credentials(repo.url);
                  }
                  has_url = true;
                  return std::nullopt;
                }},
               {"github_repo", [&](const YAML::Node& u) -> Msg {
                  static const std::regex k_re("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$");
                  if (auto m = as_string(u, repo.github_repo, "owner/name")) {
                    return m;
                  }
                  if (!std::regex_match(repo.github_repo, k_re)) {
                    return "expected owner/name, got " + quote(repo.github_repo);
                  }
                  return std::nullopt;
                }},
               {"branches", [&](const YAML::Node& b) -> Msg {
                  w.walk(b, prefix + ".branches", branches);
                  return std::nullopt;
                }},
               {"default_branch", [&](const YAML::Node& u) -> Msg { return as_string(u, repo.default_branch, "a branch name"); }},
               {"webhook_secret", [&](const YAML::Node& u) -> Msg {
                  return secret(u, repo.webhook_secret, "a secret or env:NAME / file:PATH");
                }},
               {"github_token", [&](const YAML::Node& u) -> Msg {
                  return secret(u, repo.github_token, "a token or env:NAME / file:PATH");
                }},
               {"default_template", [&](const YAML::Node& u) -> Msg {
                  return as_string(u, repo.default_template, "a template name");
                }},
               {"poll", [&](const YAML::Node& u) -> Msg { return as_bool(u, repo.poll); }},
               {"poll_interval", [&](const YAML::Node& u) -> Msg {
                  // Also "<n>ms": sub-second polling is for tests (each poll runs git ls-remote).
                  const std::string v = u.IsScalar() ? u.Scalar() : "";
                  if (util::ends_with(v, "ms")) {
                    if (auto ms = util::parse_int<int64_t>(std::string_view(v).substr(0, v.size() - 2), 1, 9999999)) {
                      repo.poll_interval = *ms;
                      return std::nullopt;
                    }
                  }
                  return as_duration(u, repo.poll_interval);
                }},
           };
           w.walk(item, prefix, repo_table);
           if (!has_url && item.IsMap()) {
             w.error(item.Mark(), prefix + ".url", "required: the repository's git URL or local path");
           }
           cfg.repositories.push_back(std::move(repo));
         }
         return mark("repositories");
       }},
  };
  w.walk(root, "", top);
  if (cfg.engine.ttl_policy.min > cfg.engine.ttl_policy.max) {
    w.error(root.Mark(), "ttl", "min " + core::format_ttl(cfg.engine.ttl_policy.min) + " is above max " +
                                    core::format_ttl(cfg.engine.ttl_policy.max));
  }
  if (https_mark && cfg.https.mode == "acme" && cfg.https.email.empty()) {
    // The ACME CA writes there about expiring certificates and problems with the account.
    w.error(*https_mark, "https.email", "required when mode is acme: the address the ACME CA writes to about "
                                        "the certificates, like ops@example.com");
  }
  if (!w.errors.empty()) {
    return w.errors;
  }
  for (const auto& k : set_keys) {
    cfg.origins[k] = file;
  }
  cfg.config_file = file;
  out = std::move(cfg);
  return {};
}

Expected<void> apply_server_env(ServerConfig& cfg) {
  auto env = [](const char* k) -> std::optional<std::string> {
    const char* v = std::getenv(k);
    if (!v || !*v) {
      return std::nullopt;
    }
    return std::string(v);
  };
  auto bad = [](const char* k, const std::string& v, const std::string& what) {
    return make_error(ErrorCode::invalid_config, std::string("environment variable ") + k + ": expected " + what + ", got " +
                                                     quote(v));
  };
  auto dur = [&](const char* k, util::Millis& dest, const std::string& key) -> Expected<void> {
    if (auto v = env(k)) {
      auto d = core::parse_duration(*v);
      if (!d || *d <= 0) {
        return bad(k, *v, "a duration like 30s");
      }
      dest = *d;
      cfg.origins[key] = std::string("env ") + k;
    }
    return {};
  };
  if (auto v = env("IDP_HOME")) {
    cfg.home = *v;
    cfg.origins["home"] = "env IDP_HOME";
  }
  if (auto v = env("IDP_LISTEN")) {
    cfg.listen = *v;
    if (v->find(':') == std::string::npos || !cfg.api_port()) {
      return bad("IDP_LISTEN", *v, "an address like 127.0.0.1:8787 with a port from 0 to 65535");
    }
    cfg.origins["listen"] = "env IDP_LISTEN";
  }
  if (auto v = env("IDP_ROUTER_PORT")) {
    auto port = util::parse_int<int>(*v, 0, 65535);
    if (!port) {
      return bad("IDP_ROUTER_PORT", *v, "a port number from 0 to 65535");
    }
    cfg.router_port = *port;
    cfg.origins["router.port"] = "env IDP_ROUTER_PORT";
  }
  if (auto v = env("IDP_DOMAIN")) {
    cfg.domain = *v;
    cfg.origins["router.domain"] = "env IDP_DOMAIN";
  }
  if (auto v = env("IDP_TEMPLATES_PATH")) {
    for (auto& d : util::split(*v, ':')) {
      if (!d.empty()) {
        cfg.templates_path.push_back(d);
      }
    }
    cfg.origins["templates_path"] = "env IDP_TEMPLATES_PATH";
  }
  if (auto v = env("IDP_WORKERS")) {
    // The same bounds as the file's "workers" key.
    auto workers = util::parse_int<size_t>(*v, 1, 256);
    if (!workers) {
      return bad("IDP_WORKERS", *v, "a number of workers from 1 to 256");
    }
    cfg.engine.workers = *workers;
    cfg.origins["workers"] = "env IDP_WORKERS";
  }
  if (auto v = env("IDP_MAX_STREAMS")) {
    // The same bounds as the file's "max_streams" key.
    auto streams = util::parse_int<int>(*v, 0, 1024);
    if (!streams) {
      return bad("IDP_MAX_STREAMS", *v, "a number of streams from 0 to 1024");
    }
    cfg.max_streams = *streams;
    cfg.origins["max_streams"] = "env IDP_MAX_STREAMS";
  }
  IDP_TRY(dur("IDP_REAPER_INTERVAL", cfg.engine.reaper_interval, "reaper_interval"));
  IDP_TRY(dur("IDP_HEALTH_INTERVAL", cfg.engine.health_interval, "health_interval"));
  IDP_TRY(dur("IDP_TTL_MIN", cfg.engine.ttl_policy.min, "ttl.min"));
  IDP_TRY(dur("IDP_TTL_MAX", cfg.engine.ttl_policy.max, "ttl.max"));
  return {};
}

} // namespace idp::daemon
