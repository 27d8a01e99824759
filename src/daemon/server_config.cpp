#include "daemon/server_config.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>

#include "api/auth.hpp"
#include "core/ttl.hpp"
#include "drivers/driver.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/numbers.hpp"
#include "util/s3_client.hpp"
#include "util/strings.hpp"

namespace idp::daemon {

using util::quote;

std::string ServerConfig::api_host() const {
  auto colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

std::string ServerConfig::preview_protect() const {
  if (!previews.protect.empty()) {
    return previews.protect;
  }
  // Without a sign-in method nobody could sign in to see a preview: `make run`'s demo and a
  // first install stay reachable. Tokens alone do not count (a browser cannot send one).
  return github_oauth.enabled() ? "signin" : "none";
}

Expected<int> ServerConfig::api_port() const {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return 8787;
  }
  auto port = util::parse_int<int>(std::string_view(listen).substr(colon + 1), 0, 65535);
  if (!port) {
    return make_error(ErrorCode::invalid_config,
                      "listen: expected an address like 127.0.0.1:8787 with a port from 0 to 65535, got " +
                          quote(listen));
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

// "10.0.0.0/16", "2001:db8::/32": an address and a prefix length that fits it.
bool is_cidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) {
    return false;
  }
  std::string addr = s.substr(0, slash);
  auto bits = util::parse_int<int>(s.substr(slash + 1), 0, 128);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, addr.c_str(), buf) == 1) {
    return bits && *bits <= 32;
  }
  return bits && ::inet_pton(AF_INET6, addr.c_str(), buf) == 1;
}

using core::ConfigDocument;
using core::ConfigNode;
using core::Option;
using core::OptionMessage;
using core::OptionTable;
using nlohmann::json;
namespace values = core::option_values;

std::string describe(const json& v) { return core::describe_config_value(v); }

// "host:port" with a port from 0 to 65535; the host a name, an IPv4 address or [IPv6].
// An http(s) base URL like `example`, without its trailing slashes.
OptionMessage base_url(const json& v, const std::string& example, std::string& out) {
  std::string s;
  if (auto m = values::text(v, "a URL like " + example, s)) {
    return m;
  }
  if (!util::starts_with(s, "http://") && !util::starts_with(s, "https://")) {
    return "expected a URL like " + example + ", got " + util::quote(s);
  }
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  out = s;
  return std::nullopt;
}

OptionMessage listen_address(const json& v, std::string_view example, std::string& out) {
  static const std::regex k_listen("^(\\[[0-9A-Fa-f:.]+\\]|[^:\\s\\[\\]]+):([0-9]{1,5})$");
  std::string what = "an address like " + std::string(example) + " with a port from 0 to 65535";
  std::string s;
  if (auto m = values::text(v, what, s)) {
    return m;
  }
  std::smatch match;
  if (!std::regex_match(s, match, k_listen) || !util::parse_int<int>(match[2].str(), 0, 65535)) {
    return "expected " + what + ", got " + util::quote(s);
  }
  out = s;
  return std::nullopt;
}

constexpr std::string_view k_duration = "a duration like 30s or 5m";

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
  auto r = f.check_options(json{{key, 0}});
  return r || r.error().message.find("unknown option") == std::string::npos;
}

// One drivers.<name> section: values converted as the drivers take them (a duration
// "2s"/"500ms" under `drain` becomes drain_ms: 2000), then checked by the driver itself
// (its own option table), so --check-config finds what serve would. Messages use the
// names of the file.
bool apply_driver_section(ConfigDocument& doc, const ConfigNode& section, const std::string& dname, ServerConfig& cfg) {
  const std::string& prefix = section.key;
  const drivers::DriverFactory* factory = find_driver(dname);
  if (!factory) {
    std::vector<std::string> names;
    for (const auto* f : drivers::builtin_driver_factories()) {
      names.emplace_back(f->name());
    }
    std::string hint = util::closest_match(dname, names);
    doc.error_at_key(section, "unknown driver" +
                                  (hint.empty() ? "" : ", did you mean " + util::quote("drivers." + hint) + "?") +
                                  " (compiled in: " + util::join(names, ", ") + ")");
    return false;
  }
  if (section.value->is_null()) {
    return true;
  }
  if (!section.value->is_object()) {
    doc.error_at_value(section, "expected a map of options, got " + describe(*section.value));
    return false;
  }
  struct Written {
    std::string text;
    ConfigNode node;
  };
  std::map<std::string, Written> written; // driver's key → what the file said
  json opts = json::object();
  static const std::regex k_num("^-?[0-9]{1,15}$");
  static const std::regex k_ms("^([0-9]{1,12})ms$");
  bool ok = true;
  for (const std::string& k : doc.members(section)) {
    ConfigNode node = doc.child(section, k);
    if (!node.value->is_string()) {
      doc.error_at_value(node, "expected a single value, got " + describe(*node.value));
      ok = false;
      continue;
    }
    const std::string v = node.value->get<std::string>();
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
    written[jkey] = {v, node};
  }
  if (!ok) {
    return false;
  }
  auto checked = factory->check_options(opts);
  if (checked) {
    cfg.driver_options[dname] = opts;
    return true;
  }
  // Say which option is wrong, in the file's terms.
  static const std::regex k_prefix("^driver \"[^\"]+\": option \"[^\"]+\": ");
  static const std::regex k_hint("did you mean \"([^\"]+)\"");
  bool placed = false;
  for (const auto& [jkey, src] : written) {
    auto one = factory->check_options(json{{jkey, opts[jkey]}});
    if (one) {
      continue;
    }
    placed = true;
    const std::string& msg = one.error().message;
    const std::string user_key = src.node.key.substr(prefix.size() + 1);
    if (msg.find("unknown option") == std::string::npos) {
      doc.error_at_value(src.node, std::regex_replace(msg, k_prefix, ""));
    } else if (jkey == user_key && !util::ends_with(jkey, "_ms") && driver_knows(*factory, jkey + "_ms")) {
      doc.error_at_value(src.node, "expected a duration like 500ms, 2s or 5m, got " + util::quote(src.text));
    } else {
      std::smatch m;
      std::string hint;
      if (std::regex_search(msg, m, k_hint)) {
        hint = m[1].str();
        if (util::ends_with(hint, "_ms")) {
          hint = hint.substr(0, hint.size() - 3); // the name a duration is written under
        }
      }
      doc.error_at_key(src.node, "unknown option" +
                                     (hint.empty() ? "" : ", did you mean " + util::quote(prefix + "." + hint) + "?"));
    }
  }
  if (!placed) {
    doc.error_at_value(section, checked.error().message);
  }
  return false;
}

// secrets.<name>: where the value is read and which repositories may use it.
const OptionTable<engine::ConfiguredSecret>& secret_table() {
  static const OptionTable<engine::ConfiguredSecret> k_table({
      {.key = "from",
       .doc = "where the value is read: env:VAR or file:/absolute/path",
       .parse = [](const json& v, engine::ConfiguredSecret& sec) -> OptionMessage {
         if (auto m = values::text(v, "env:VAR or file:/absolute/path", sec.from)) {
           return m;
         }
         bool ok = (util::starts_with(sec.from, "env:") && sec.from.size() > 4) ||
                   (util::starts_with(sec.from, "file:/") && sec.from.size() > 6);
         if (!ok) {
           // Not echoed: it may be the value itself, written here by mistake.
           return std::string("expected env:VAR or file:/absolute/path (where the value is read; the value "
                              "itself does not belong in the config)");
         }
         return std::nullopt;
       }},
      {.key = "repos",
       .doc = "the repositories that may use it (owner/name, a URL or a path; * = every one)",
       .parse = [](const json& v, engine::ConfiguredSecret& sec) -> OptionMessage {
         if (auto m = values::string_list(v, "repositories (owner/name, a URL or a path; * = every one)", sec.repos)) {
           return m;
         }
         for (const auto& pattern : sec.repos) {
           if (auto c = engine::check_repo_pattern(pattern); !c) {
             return c.error().message;
           }
         }
         if (sec.repos.empty()) {
           return std::string("expected at least one repository, like [acme/shop] (\"*\" for every one)");
         }
         return std::nullopt;
       }},
  });
  return k_table;
}

// A secret reference of the server config (a value, env:NAME or file:PATH), resolved.
OptionMessage secret_value(const json& v, std::string_view what, std::string& dest) {
  std::string ref;
  if (auto m = values::text(v, what, ref)) {
    return m;
  }
  auto resolved = resolve_secret_reference(ref);
  if (!resolved) {
    return resolved.error().message;
  }
  dest = *resolved;
  return std::nullopt;
}

// A price per unit: a number from 0 to 1000.
OptionMessage price_value(const json& v, double& out, double max = 1000) {
  std::optional<double> d;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    char* end = nullptr;
    double parsed = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(parsed)) {
      d = parsed;
    }
  }
  if (!d || *d < 0 || *d > max) {
    return max > 1000 ? "expected an amount like 200, got " + describe(v)
                      : "expected a price from 0 to 1000 like 0.04048, got " + describe(v);
  }
  out = *d;
  return std::nullopt;
}

OptionMessage preview_protect_value(const json& v, std::string& out) {
  std::string s;
  if (auto m = values::text(v, "signin or none", s)) {
    return m;
  }
  if (s != "signin" && s != "none") {
    std::string hint = util::closest_match(s, {"signin", "none"});
    return "expected signin or none, got " + util::quote(s) +
           (hint.empty() ? "" : " (did you mean " + util::quote(hint) + "?)");
  }
  out = s;
  return std::nullopt;
}

// A repositories[i] entry: the watched repository, and its preview settings (kept beside
// it: sources never see them).
struct RepositoryEntry : sources::WatchedRepo {
  std::optional<std::string> preview_protect;
  std::optional<bool> preview_allow_public;
};

// repositories[i]: one watched repository (docs/gitops.md).
const OptionTable<RepositoryEntry>& repository_table() {
  using sources::WatchedRepo;
  static const OptionTable<RepositoryEntry> k_table({
      {.key = "url",
       .doc = "the repository's git URL or local path (required)",
       .parse = [](const json& v, WatchedRepo& repo) -> OptionMessage {
         if (auto m = values::text(v, "a git URL or a local path", repo.url)) {
           return m;
         }
         if (repo.url.empty() || repo.url.front() == '-') {
           return "expected a git URL or a local path, got " + util::quote(repo.url);
         }
         if (util::url_has_credentials(repo.url)) {
           // Kept for git alone (handed over at start); shown and stored stripped.
           repo.url_with_credentials = repo.url;
           repo.url = util::strip_url_credentials(repo.url);
         }
         return std::nullopt;
       }},
      {.key = "github_repo",
       .default_text = "from the url",
       .doc = "owner/name for webhooks and notifications",
       .parse = [](const json& v, WatchedRepo& repo) -> OptionMessage {
         static const std::regex k_re("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$");
         if (auto m = values::text(v, "owner/name", repo.github_repo)) {
           return m;
         }
         if (!std::regex_match(repo.github_repo, k_re)) {
           return "expected owner/name, got " + util::quote(repo.github_repo);
         }
         return std::nullopt;
       }},
      {.key = "branches.include",
       .default_text = "*",
       .doc = "branch globs that get environments",
       .parse = [](const json& v, WatchedRepo& repo) { return values::string_list(v, "branch globs", repo.include); }},
      {.key = "branches.exclude",
       .default_text = "the default branch",
       .doc = "branch globs that never do",
       .parse = [](const json& v, WatchedRepo& repo) { return values::string_list(v, "branch globs", repo.exclude); }},
      {.key = "default_branch",
       .default_text = "main",
       .parse = [](const json& v, WatchedRepo& repo) { return values::text(v, "a branch name", repo.default_branch); }},
      {.key = "webhook_secret",
       .doc = "a secret or env:NAME / file:PATH",
       .parse =
           [](const json& v, WatchedRepo& repo) {
             return secret_value(v, "a secret or env:NAME / file:PATH", repo.webhook_secret);
           }},
      {.key = "github_token",
       .doc = "a token or env:NAME / file:PATH",
       .parse =
           [](const json& v, WatchedRepo& repo) {
             return secret_value(v, "a token or env:NAME / file:PATH", repo.github_token);
           }},
      {.key = "default_template",
       .parse = [](const json& v,
                   WatchedRepo& repo) { return values::text(v, "a template name", repo.default_template); }},
      {.key = "poll",
       .default_text = "false",
       .parse = [](const json& v, WatchedRepo& repo) { return values::boolean(v, repo.poll); }},
      {.key = "poll_interval",
       .default_text = "30s",
       .parse = [](const json& v, WatchedRepo& repo) -> OptionMessage {
         // Also "<n>ms": sub-second polling is for tests (each poll runs git ls-remote).
         const std::string s = v.is_string() ? v.get<std::string>() : "";
         if (util::ends_with(s, "ms")) {
           if (auto ms = util::parse_int<int64_t>(std::string_view(s).substr(0, s.size() - 2), 1, 9999999)) {
             repo.poll_interval = *ms;
             return std::nullopt;
           }
         }
         return values::duration(v, repo.poll_interval, k_duration);
       }},
      {.key = "forks",
       .default_text = "ignore",
       .doc = "pull requests from forks: ignore, or approve (deployed under the untrusted profile once approved)",
       .parse = [](const json& v, WatchedRepo& repo) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "ignore or approve", s)) {
           return m;
         }
         if (s != "ignore" && s != "approve") {
           std::string hint = util::closest_match(s, {"ignore", "approve"});
           return "expected ignore or approve, got " + util::quote(s) +
                  (hint.empty() ? "" : " (did you mean " + util::quote(hint) + "?)");
         }
         repo.forks = s;
         return std::nullopt;
       }},
      {.key = "fork_approvers",
       .doc = "GitHub logins whose pull request comment \"/idp approve\" approves a fork's head commit",
       .parse = [](const json& v, WatchedRepo& repo) -> OptionMessage {
         if (auto m = values::string_list(v, "GitHub logins like [alice]", repo.fork_approvers)) {
           return m;
         }
         static const std::regex k_login("^[A-Za-z0-9](-?[A-Za-z0-9])*$");
         for (const auto& l : repo.fork_approvers) {
           if (l.size() > 39 || !std::regex_match(l, k_login)) {
             return "expected GitHub logins like alice, got " + util::quote(l);
           }
         }
         return std::nullopt;
       }},
      {.key = "previews.protect",
       .default_text = "the server's previews.protect",
       .doc = "signin or none for this repository's previews",
       .parse = [](const json& v, RepositoryEntry& e) -> OptionMessage {
         std::string s;
         if (auto m = preview_protect_value(v, s)) {
           return m;
         }
         e.preview_protect = s;
         return std::nullopt;
       }},
      {.key = "previews.allow_public",
       .default_text = "the server's previews.allow_public",
       .doc = "whether this repository's .idp/config.yml may say public: true",
       .parse = [](const json& v, RepositoryEntry& e) -> OptionMessage {
         bool b = false;
         if (auto m = values::boolean(v, b)) {
           return m;
         }
         e.preview_allow_public = b;
         return std::nullopt;
       }},
  });
  return k_table;
}

// True when an error was reported under `key`: a value left out (not UTF-8) is not also
// reported as missing.
bool has_error(const ConfigDocument& doc, const std::string& key) {
  const auto& errors = doc.errors();
  return std::any_of(errors.begin(), errors.end(), [&](const core::ConfigError& e) { return e.key == key; });
}

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

bool apply_secrets(ConfigDocument& doc, const ConfigNode& node, ServerConfig& cfg) {
  // The server's secret store, part 1 (issue 9): values read from the daemon's
  // environment or files when an environment of an allowed repository deploys.
  if (!node.value->is_object()) {
    doc.error_at_value(node, "expected a map of NAME: {from: env:VAR or file:/path, repos: [owner/name, ...]}, got " +
                                 describe(*node.value));
    return false;
  }
  size_t before = doc.errors().size();
  cfg.secrets.clear();
  for (const std::string& name : doc.members(node)) {
    ConfigNode child = doc.child(node, name);
    if (!core::is_secret_store_name(name)) {
      doc.error_at_key(child, "expected a secret name of letters, digits, '_', '.' or '-', got " + util::quote(name));
      continue;
    }
    engine::ConfiguredSecret sec;
    sec.name = name;
    auto applied = secret_table().apply(doc, child, sec);
    if (child.value->is_object() && !contains(applied, "from") && !child.value->contains("from") &&
        !has_error(doc, child.key + ".from")) {
      doc.error_at_value(child, "required: where the value is read, env:VAR or file:/absolute/path",
                         child.key + ".from");
    }
    if (child.value->is_object() && !contains(applied, "repos") && !child.value->contains("repos") &&
        !has_error(doc, child.key + ".repos")) {
      doc.error_at_value(child, "required: the repositories that may use it, like [acme/shop] (\"*\" for every one)",
                         child.key + ".repos");
    }
    cfg.secrets.push_back(std::move(sec));
  }
  return doc.errors().size() == before;
}

// budgets[i].notify: a list of {webhook: URL} and {github_comment: true|false}; each
// problem at its item's position.
bool apply_budget_notify(ConfigDocument& doc, const ConfigNode& node, engine::Budget& b) {
  if (!node.value->is_array()) {
    doc.error_at_value(node, "expected a list like [{webhook: https://hooks.example.com/x}] or "
                             "[{github_comment: true}], got " +
                                 describe(*node.value));
    return false;
  }
  size_t before = doc.errors().size();
  b.webhooks.clear();
  b.github_comment = false;
  for (size_t i = 0; i < node.value->size(); ++i) {
    ConfigNode item = doc.item(node, i);
    const json& v = *item.value;
    if (!v.is_object() || v.size() != 1 || (!v.contains("webhook") && !v.contains("github_comment"))) {
      doc.error_at_value(item, "expected {webhook: https://...} or {github_comment: true}, got " + describe(v));
      continue;
    }
    if (v.contains("github_comment")) {
      ConfigNode flag = doc.child(item, "github_comment");
      bool on = false;
      if (auto m = values::boolean(*flag.value, on)) {
        doc.error_at_value(flag, *m);
        continue;
      }
      b.github_comment = b.github_comment || on;
      continue;
    }
    ConfigNode hook = doc.child(item, "webhook");
    std::string url;
    if (auto m = base_url(*hook.value, "https://hooks.example.com/x", url)) {
      doc.error_at_value(hook, *m);
      continue;
    }
    b.webhooks.push_back(url);
  }
  return doc.errors().size() == before;
}

const OptionTable<engine::Budget>& budget_table() {
  static const OptionTable<engine::Budget> k_table({
      {.key = "name",
       .doc = "the budget's name (required, unique)",
       .parse = [](const json& v, engine::Budget& b) -> OptionMessage {
         if (auto m = values::text(v, "a name like payments", b.name)) {
           return m;
         }
         static const std::regex k_name("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$");
         if (!std::regex_match(b.name, k_name)) {
           return "expected a name of letters, digits, '_', '.' or '-', got " + util::quote(b.name);
         }
         return std::nullopt;
       }},
      {.key = "match.team",
       .doc = "only environments whose owner is in this team (teams:)",
       .parse = [](const json& v, engine::Budget& b) { return values::text(v, "a team name", b.team); }},
      {.key = "match.repo",
       .doc = "only environments of this repository (owner/name, a URL or a path)",
       .parse = [](const json& v,
                   engine::Budget& b) { return values::text(v, "a repository like acme/shop", b.repo); }},
      {.key = "match.owner",
       .doc = "only environments of this owner",
       .parse = [](const json& v, engine::Budget& b) { return values::text(v, "an owner identity", b.owner); }},
      {.key = "monthly",
       .doc = "the limit per calendar month, in cost.currency (required)",
       .parse = [](const json& v, engine::Budget& b) -> OptionMessage {
         if (auto m = price_value(v, b.monthly, 1e9)) {
           return m;
         }
         if (b.monthly <= 0) {
           return "expected a limit above 0 like 200, got " + describe(v);
         }
         return std::nullopt;
       }},
      {.key = "alert_at",
       .doc = "percentages of the limit that each alert once a month",
       .parse = [](const json& v, engine::Budget& b) -> OptionMessage {
         std::vector<std::string> items;
         if (auto m = values::string_list(v, "percentages like [50, 80, 100]", items)) {
           return m;
         }
         b.alert_at.clear();
         for (const auto& i : items) {
           auto n = util::parse_int<int>(i, 1, 1000);
           if (!n) {
             return "expected percentages from 1 to 1000 like [50, 80, 100], got " + util::quote(i);
           }
           b.alert_at.push_back(*n);
         }
         return std::nullopt;
       }},
      {.key = "notify",
       .doc = "where alerts go: [{webhook: https://...}] (Slack-compatible JSON), [{github_comment: true}] (a "
              "comment on each pull request whose environment it matches)",
       .parse_node = apply_budget_notify},
      {.key = "on_exhausted",
       .doc = "what a create it matches does while its month is projected past the limit: none; block (refused); "
              "sleep (its idle environments go to sleep first); destroy_oldest (its least recently used one is "
              "destroyed first)",
       .parse = [](const json& v, engine::Budget& b) -> OptionMessage {
         if (auto m = values::text(v, "none, block, sleep or destroy_oldest", b.on_exhausted)) {
           return m;
         }
         if (b.on_exhausted != "none" && b.on_exhausted != "block" && b.on_exhausted != "sleep" &&
             b.on_exhausted != "destroy_oldest") {
           return "expected none, block, sleep or destroy_oldest, got " + util::quote(b.on_exhausted);
         }
         return std::nullopt;
       }},
  });
  return k_table;
}

bool apply_budgets(ConfigDocument& doc, const ConfigNode& node, ServerConfig& cfg) {
  if (!node.value->is_array()) {
    doc.error_at_value(node, "expected a list of budgets like [{name: payments, monthly: 200}], got " +
                                 describe(*node.value));
    return false;
  }
  size_t before = doc.errors().size();
  cfg.budgets.clear();
  std::set<std::string> names;
  for (size_t i = 0; i < node.value->size(); ++i) {
    ConfigNode item = doc.item(node, i);
    engine::Budget b;
    auto applied = budget_table().apply(doc, item, b);
    if (item.value->is_object()) {
      for (const char* required : {"name", "monthly"}) {
        if (!item.value->contains(required) && !has_error(doc, item.key + "." + required)) {
          doc.error_at_value(item,
                             std::string("required: ") + (std::string(required) == "name"
                                                              ? "the budget's name"
                                                              : "its monthly limit, like 200"),
                             item.key + "." + required);
        }
      }
      if (!b.name.empty() && !names.insert(b.name).second) {
        doc.error_at_value(doc.child(item, "name"), "another budget is called " + util::quote(b.name));
      }
    }
    cfg.budgets.push_back(std::move(b));
  }
  return doc.errors().size() == before;
}

bool apply_teams(ConfigDocument& doc, const ConfigNode& node, ServerConfig& cfg) {
  // teams: {payments: {members: [alice, bob]}}: who belongs to which team, for idp cost
  // --by team and the chargeback report. Members are identities as owners carry them (a
  // token's owner, a GitHub login).
  if (!node.value->is_object()) {
    doc.error_at_value(node, "expected a map of team name: {members: [identity, ...]}, got " + describe(*node.value));
    return false;
  }
  size_t before = doc.errors().size();
  std::map<std::string, std::string> team_of;
  static const std::regex k_name("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$");
  for (const std::string& name : doc.members(node)) {
    ConfigNode team = doc.child(node, name);
    if (!std::regex_match(name, k_name)) {
      doc.error_at_key(team, "expected a team name of letters, digits, '_', '.' or '-', got " + util::quote(name));
      continue;
    }
    if (!team.value->is_object()) {
      doc.error_at_value(team, "expected {members: [identity, ...]}, got " + describe(*team.value));
      continue;
    }
    for (const std::string& key : doc.members(team)) {
      ConfigNode child = doc.child(team, key);
      if (key != "members") {
        doc.error_at_key(child, "unknown key, expected members");
        continue;
      }
      std::vector<std::string> members;
      if (auto m = values::string_list(*child.value, "identities like [alice, github:bob]", members)) {
        doc.error_at_value(child, *m);
        continue;
      }
      for (const auto& member : members) {
        if (auto [it, fresh] = team_of.emplace(member, name); !fresh && it->second != name) {
          doc.error_at_value(child, util::quote(member) + " is already a member of team " + util::quote(it->second) +
                                        ": an owner's cost goes to one team");
        }
      }
    }
  }
  cfg.team_of = std::move(team_of);
  return doc.errors().size() == before;
}

bool apply_repositories(ConfigDocument& doc, const ConfigNode& node, ServerConfig& cfg) {
  if (!node.value->is_array()) {
    doc.error_at_value(node, "expected a list of repositories, got " + describe(*node.value));
    return false;
  }
  size_t before = doc.errors().size();
  cfg.repositories.clear();
  cfg.repository_previews.clear();
  for (size_t i = 0; i < node.value->size(); ++i) {
    ConfigNode item = doc.item(node, i);
    RepositoryEntry repo;
    auto applied = repository_table().apply(doc, item, repo);
    if (item.value->is_object() && !item.value->contains("url") && !has_error(doc, item.key + ".url")) {
      doc.error_at_value(item, "required: the repository's git URL or local path", item.key + ".url");
    }
    if (repo.preview_protect || repo.preview_allow_public) {
      cfg.repository_previews.push_back({repo.url, repo.github_repo, repo.preview_protect, repo.preview_allow_public});
    }
    cfg.repositories.push_back(static_cast<sources::WatchedRepo&&>(std::move(repo)));
  }
  return doc.errors().size() == before;
}

bool apply_drivers(ConfigDocument& doc, const ConfigNode& node, ServerConfig& cfg) {
  if (!node.value->is_object()) {
    doc.error_at_value(node, "expected a map of driver name: options, got " + describe(*node.value));
    return false;
  }
  bool ok = true;
  for (const std::string& name : doc.members(node)) {
    ok = apply_driver_section(doc, doc.child(node, name), name, cfg) && ok;
  }
  return ok;
}

const OptionTable<ServerConfig>& server_table() {
  static const OptionTable<ServerConfig> k_table({
      {.key = "home",
       .env = "IDP_HOME",
       .default_text = "~/.local/share/idp (/var/lib/idp as root)",
       .doc = "the state directory",
       .parse = [](const json& v, ServerConfig& c) { return values::text(v, "a directory", c.home); }},
      {.key = "listen",
       .env = "IDP_LISTEN",
       .default_text = "127.0.0.1:8787",
       .doc = "the API's address (port 0 = any free port)",
       .parse = [](const json& v, ServerConfig& c) { return listen_address(v, "127.0.0.1:8787", c.listen); }},
      {.key = "webhook_listen",
       .doc = "an address that serves /hooks/github alone",
       .parse = [](const json& v, ServerConfig& c) { return listen_address(v, "0.0.0.0:8788", c.webhook_listen); }},
      {.key = "metrics",
       .default_text = "private",
       .doc = "public: /metrics without a token",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "public or private", s)) {
           return m;
         }
         if (s != "public" && s != "private") {
           return "expected public or private, got " + util::quote(s);
         }
         c.metrics_public = s == "public";
         return std::nullopt;
       }},
      {.key = "previews.protect",
       .env = "IDP_PREVIEWS_PROTECT",
       .default_text = "signin with github.oauth, else none",
       .doc = "signin: preview URLs need a sign-in (or a viewer token, or a share link); none: open",
       .parse = [](const json& v, ServerConfig& c) { return preview_protect_value(v, c.previews.protect); }},
      {.key = "previews.allow_public",
       .default_text = "false",
       .doc = "whether .idp/config.yml may open one environment's preview with public: true",
       .parse = [](const json& v, ServerConfig& c) { return values::boolean(v, c.previews.allow_public); }},
      {.key = "limits.concurrent_builds",
       .default_text = "0 (no limit)",
       .doc = "builds (local.build) running at once; beyond, a deploy waits for a slot",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 1000, "a number of builds (0 = no limit)", c.max_concurrent_builds);
           }},
      {.key = "limits.environments.global",
       .default_text = "0 (no limit)",
       .doc = "environments running at once on this server; beyond, new ones are queued until one is destroyed",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 1000000, "a number of environments (0 = no limit)",
                                              c.engine.limits.global);
           }},
      {.key = "limits.environments.per_repo",
       .default_text = "0 (no limit)",
       .doc = "environments of one repository running at once; beyond, new ones are queued",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 1000000, "a number of environments (0 = no limit)",
                                              c.engine.limits.per_repo);
           }},
      {.key = "limits.environments.per_owner",
       .default_text = "0 (no limit)",
       .doc = "environments of one owner running at once; beyond, new ones are queued",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 1000000, "a number of environments (0 = no limit)",
                                              c.engine.limits.per_owner);
           }},
      {.key = "limits.on_full",
       .default_text = "queue",
       .doc = "beyond a limit: queue the new environment, or evict_lru: put the scope's least recently requested "
              "one to sleep to make room",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         if (!v.is_string() || (v != "queue" && v != "evict_lru")) {
           return "expected queue or evict_lru, got " + describe(v);
         }
         c.engine.limits.evict_lru = v == "evict_lru";
         return std::nullopt;
       }},
      {.key = "sleep.default_after",
       .default_text = "0 (never)",
       .doc = "idle time after which an environment sleeps when its .idp/config.yml has no sleep_after",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.sleep.default_after, "a duration like 30m, or 0 for never", true);
           }},
      {.key = "sleep.max_after",
       .default_text = "0 (no maximum)",
       .doc = "the longest sleep_after a config may ask; a config's never or a longer period gets this",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.sleep.max_after, "a duration like 4h, or 0 for no maximum", true);
           }},
      {.key = "sleep.check_interval",
       .default_text = "30s",
       .doc = "how often idle environments are looked for",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         util::Millis d = 0;
         if (auto m = values::duration(v, d, "a duration from 1s to 1h like 30s")) {
           return m;
         }
         if (d < 1000 || d > 3'600'000) {
           return "expected a duration from 1s to 1h like 30s, got " + describe(v);
         }
         c.sleep.check_interval = d;
         return std::nullopt;
       }},
      {.key = "sleep.wake_timeout",
       .default_text = "30s",
       .doc = "how long a request to a sleeping environment waits for it; then a browser gets a page that retries",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         util::Millis d = 0;
         if (auto m = values::duration(v, d, "a duration from 1s to 5m like 30s")) {
           return m;
         }
         if (d < 1000 || d > 300'000) {
           return "expected a duration from 1s to 5m like 30s, got " + describe(v);
         }
         c.sleep.wake_timeout = d;
         return std::nullopt;
       }},
      {.key = "cost.cpu_hour",
       .default_text = "0.04048 (Fargate, per vCPU-hour)",
       .doc = "price of one vCPU for an hour, for idp cost",
       .parse = [](const json& v, ServerConfig& c) { return price_value(v, c.cost_rates.cpu_hour); }},
      {.key = "cost.memory_gb_hour",
       .default_text = "0.004445 (Fargate, per GB-hour)",
       .doc = "price of one GB of memory for an hour",
       .parse = [](const json& v, ServerConfig& c) { return price_value(v, c.cost_rates.memory_gb_hour); }},
      {.key = "cost.storage_gb_month",
       .default_text = "0.115 (RDS storage, per GB-month)",
       .doc = "price of one GB of database storage for a month",
       .parse = [](const json& v, ServerConfig& c) { return price_value(v, c.cost_rates.storage_gb_month); }},
      {.key = "cost.currency",
       .default_text = "USD",
       .doc = "the currency of the prices (a three-letter code)",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "a currency code like USD", s)) {
           return m;
         }
         static const std::regex k_code("^[A-Z]{3}$");
         if (!std::regex_match(s, k_code)) {
           return "expected a three-letter currency code like USD or EUR, got " + util::quote(s);
         }
         c.cost_rates.currency = s;
         return std::nullopt;
       }},
      {.key = "cost.sample_interval",
       .default_text = "1m",
       .doc = "how often each environment's usage is sampled",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         util::Millis d = 0;
         if (auto m = values::duration(v, d, "a duration from 1s to 1h like 1m")) {
           return m;
         }
         if (d < 1000 || d > 3'600'000) {
           return "expected a duration from 1s to 1h like 1m, got " + describe(v);
         }
         c.cost_sample_interval = d;
         return std::nullopt;
       }},
      {.key = "cost.retention",
       .default_text = "400d",
       .doc = "how long hourly usage is kept (0 = forever)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.cost_retention, "a duration like 400d, or 0 to keep it forever", true);
           }},
      {.key = "cost.export.to",
       .default_text = "\"\" (no export)",
       .doc = "where each month's chargeback report is uploaded early the next month, s3://bucket/prefix/",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "an S3 URL like s3://bucket/chargeback/", s)) {
           return m;
         }
         auto loc = util::parse_s3_url(s, false);
         if (!loc) {
           return loc.error().message;
         }
         c.cost_export.to = *loc;
         return std::nullopt;
       }},
      {.key = "cost.export.by",
       .default_text = "\"\" (a row per environment)",
       .doc = "the exported report's grouping: team, owner, repo or template",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "team, owner, repo or template", s)) {
           return m;
         }
         if (s == "environment") {
           s.clear();
         }
         if (s.empty() || engine::check_cost_grouping(s)) {
           c.cost_export.by = s;
           return std::nullopt;
         }
         return "expected team, owner, repo or template, got " + util::quote(s);
       }},
      {.key = "cost.export.format",
       .default_text = "csv",
       .doc = "the exported report's format: csv or json",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "csv or json", s)) {
           return m;
         }
         if (s != "csv" && s != "json") {
           return "expected csv or json, got " + util::quote(s);
         }
         c.cost_export.format = s;
         return std::nullopt;
       }},
      {.key = "forks.egress_allow",
       .default_text = "[registry.npmjs.org, registry.yarnpkg.com, pypi.org, files.pythonhosted.org]",
       .doc = "hosts an approved fork's build and app may reach (host, *.suffix, host:port), through the egress proxy",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::vector<std::string> hosts;
         if (auto m = values::string_list(v, "host names like [registry.npmjs.org]", hosts)) {
           return m;
         }
         static const std::regex k_host("^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$");
         for (const auto& h : hosts) {
           if (!std::regex_match(h, k_host)) {
             return "expected host names like registry.npmjs.org, *.example.com or host:port, got " + util::quote(h);
           }
         }
         c.untrusted.egress_allow = hosts;
         return std::nullopt;
       }},
      {.key = "forks.egress_cidrs",
       .default_text = "[] (none)",
       .doc = "networks an approved fork may reach on Kubernetes (NetworkPolicy ipBlock) and ECS (task security group)",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::vector<std::string> cidrs;
         if (auto m = values::string_list(v, "networks like [10.0.0.0/16]", cidrs)) {
           return m;
         }
         for (const auto& cidr : cidrs) {
           if (!is_cidr(cidr)) {
             return "expected networks in CIDR notation like 10.0.0.0/16 or 2001:db8::/32, got " + util::quote(cidr);
           }
         }
         c.untrusted.egress_cidrs = cidrs;
         return std::nullopt;
       }},
      {.key = "forks.pids",
       .default_text = "64",
       .doc = "processes an approved fork's build or app may run at once",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 1, 100000, "a number of processes from 1 to 100000",
                                              c.untrusted.pids_max);
           }},
      {.key = "forks.cpu",
       .default_text = "256",
       .doc = "CPU units an approved fork may use at most (its config's cpu is capped)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 1, 16384, "CPU units from 1 to 16384", c.engine.untrusted.cpu);
           }},
      {.key = "forks.memory",
       .default_text = "512",
       .doc = "MiB an approved fork may use at most (its config's memory is capped)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 16, 1048576, "MiB from 16 to 1048576", c.engine.untrusted.memory);
           }},
      {.key = "forks.ttl",
       .default_text = "24h",
       .doc = "the TTL of an approved fork's environment (each approval and push moves it out by this)",
       .parse = [](const json& v, ServerConfig& c) { return values::duration(v, c.engine.untrusted.ttl, k_duration); }},
      {.key = "server_names",
       .doc = "Host names the API answers to besides loopback ones",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         if (auto m = values::string_list(v, "host names", c.server_names)) {
           return m;
         }
         for (const auto& h : c.server_names) {
           if (h.empty() || h.find_first_of(" /:@") != std::string::npos) {
             return "expected host names like idp.example.com (no scheme, port or path), got " + util::quote(h);
           }
         }
         return std::nullopt;
       }},
      {.key = "runtime",
       .default_text = "local",
       .doc = "the runtime environments get",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::text(v, "a runtime name like local", c.engine.default_runtime); }},
      {.key = "workers",
       .env = "IDP_WORKERS",
       .default_text = "4",
       .doc = "concurrent operations",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 1, 256, "a number of workers from 1 to 256", c.engine.workers);
           }},
      {.key = "max_streams",
       .env = "IDP_MAX_STREAMS",
       .default_text = "64",
       .doc = "event and log streams served at once (each on its own thread; 503 beyond)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 1024, "a number of streams from 0 to 1024", c.max_streams);
           }},
      {.key = "reaper_interval",
       .env = "IDP_REAPER_INTERVAL",
       .default_text = "30s",
       .doc = "the TTL reaper's period",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::duration(v, c.engine.reaper_interval, k_duration); }},
      {.key = "health_interval",
       .env = "IDP_HEALTH_INTERVAL",
       .default_text = "10s",
       .doc = "the health check's period",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::duration(v, c.engine.health_interval, k_duration); }},
      {.key = "keep_running",
       .default_text = "false",
       .doc = "leave environments running when the server stops",
       .parse = [](const json& v, ServerConfig& c) { return values::boolean(v, c.keep_running); }},
      {.key = "default_template",
       .default_text = "api-service",
       .doc = "the template of a repository whose config names none",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::text(v, "a template name", c.engine.default_template); }},
      {.key = "templates_path",
       .env = "IDP_TEMPLATES_PATH",
       .doc = "more template directories (the environment's are added to the file's)",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::vector<std::string> dirs;
         if (auto m = values::string_list(v, "directories", dirs)) {
           return m;
         }
         c.templates_path.insert(c.templates_path.end(), dirs.begin(), dirs.end());
         return std::nullopt;
       },
       .env_separator = ':'},
      {.key = "router.port",
       .env = "IDP_ROUTER_PORT",
       .default_text = "chosen on first start, then kept",
       .doc = "the port environments' URLs use",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 65535, "a port number 0-65535", c.router_port);
           }},
      {.key = "router.listen_host",
       .default_text = "127.0.0.1",
       .doc = "the address the router listens on",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::text(v, "an address like 127.0.0.1 or 0.0.0.0", c.router_listen_host);
           }},
      {.key = "router.domain",
       .env = "IDP_DOMAIN",
       .default_text = "preview.localhost",
       .doc = "environments are <name>.<domain>",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         static const std::regex k_domain(
             "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
         std::string s;
         if (auto m = values::text(v, "a DNS domain like preview.example.com", s)) {
           return m;
         }
         if (!std::regex_match(s, k_domain)) {
           return "expected a DNS domain like preview.example.com, got " + util::quote(s);
         }
         c.domain = s;
         return std::nullopt;
       }},
      {.key = "ttl.min",
       .env = "IDP_TTL_MIN",
       .default_text = "10m",
       .doc = "the shortest TTL allowed",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::duration(v, c.engine.ttl_policy.min, k_duration); }},
      {.key = "ttl.max",
       .env = "IDP_TTL_MAX",
       .default_text = "30d",
       .doc = "the longest lifetime allowed",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::duration(v, c.engine.ttl_policy.max, k_duration); }},
      {.key = "retention.events",
       .env = "IDP_RETENTION_EVENTS",
       .default_text = "90d",
       .doc = "events older than this are removed (0 = kept forever)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.engine.event_retention, "a duration like 90d, or 0 to keep them forever",
                                     true);
           }},
      {.key = "retention.destroyed",
       .env = "IDP_RETENTION_DESTROYED",
       .default_text = "30d",
       .doc = "rows of environments destroyed longer ago are removed (0 = kept forever)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.engine.destroyed_retention, "a duration like 30d, or 0 to keep them forever",
                                     true);
           }},
      {.key = "retention.mirrors",
       .env = "IDP_RETENTION_MIRRORS",
       .default_text = "7d",
       .doc = "git mirrors unused and unfetched this long are removed (0 = kept forever)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.engine.mirror_retention, "a duration like 7d, or 0 to keep them forever",
                                     true);
           }},
      {.key = "retention.interval",
       .env = "IDP_RETENTION_INTERVAL",
       .default_text = "1h",
       .doc = "how often old data is pruned (0 = never)",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::duration(v, c.engine.retention_interval, "a duration like 1h, or 0 to never prune", true);
           }},
      {.key = "github.api_url",
       .default_text = "https://api.github.com",
       .parse = [](const json& v, ServerConfig& c) { return base_url(v, "https://api.github.com", c.github_api_url); }},
      {.key = "github.oauth.client_id",
       .doc = "the OAuth app's client ID: Sign in with GitHub on the dashboard (docs/dashboard.md)",
       .parse = [](const json& v,
                   ServerConfig& c) { return values::text(v, "an OAuth app client ID", c.github_oauth.client_id); }},
      {.key = "github.oauth.client_secret",
       .doc = "the OAuth app's client secret: env:VAR, file:/path or the value",
       .parse =
           [](const json& v, ServerConfig& c) {
             return secret_value(v, "env:VAR, file:/path or the secret", c.github_oauth.client_secret);
           }},
      {.key = "github.oauth.allowed_orgs",
       .doc = "organisations whose members may sign in; anyone else is refused",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         if (auto m = values::string_list(v, "organisation logins like [acme]", c.github_oauth.allowed_orgs)) {
           return m;
         }
         for (const auto& o : c.github_oauth.allowed_orgs) {
           if (o.empty() || o.find_first_of("/ :@") != std::string::npos) {
             return "expected organisation logins like acme (no team, no URL), got " + util::quote(o);
           }
         }
         return std::nullopt;
       }},
      {.key = "github.oauth.roles",
       .doc = "role → [org or org/team], e.g. {admin: [acme/ops], developer: [acme/dev], viewer: [acme]}",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         if (!v.is_object()) {
           return "expected a map like {admin: [acme/ops], developer: [acme/dev], viewer: [acme]}, got " + describe(v);
         }
         std::map<std::string, std::vector<std::string>> roles;
         for (const auto& [role, list] : v.items()) {
           if (!api::parse_role(role)) {
             std::string hint = util::closest_match(role, {"admin", "developer", "viewer"});
             return "expected the roles admin, developer or viewer, got " + util::quote(role) +
                    (hint.empty() ? "" : " (did you mean " + util::quote(hint) + "?)");
           }
           if (auto m = values::string_list(list, "a list like [acme, acme/team-slug]", roles[role])) {
             return m;
           }
           for (const auto& e : roles[role]) {
             auto slash = e.find('/');
             if (e.empty() || slash == 0 || slash + 1 == e.size() ||
                 e.find('/', slash == std::string::npos ? 0 : slash + 1) != std::string::npos ||
                 e.find_first_of(" :@") != std::string::npos) {
               return "role " + util::quote(role) +
                      ": expected an organisation like acme or a team like acme/dev, got " + util::quote(e);
             }
           }
         }
         c.github_oauth.roles = roles;
         return std::nullopt;
       }},
      {.key = "github.oauth.web_url",
       .default_text = "https://github.com",
       .doc = "GitHub's web address (GitHub Enterprise: https://HOST)",
       .parse = [](const json& v,
                   ServerConfig& c) { return base_url(v, "https://github.com", c.github_oauth.web_url); }},
      {.key = "github.oauth.api_url",
       .default_text = "https://api.github.com",
       .doc = "GitHub's API address for the sign-in (GitHub Enterprise: https://HOST/api/v3)",
       .parse = [](const json& v,
                   ServerConfig& c) { return base_url(v, "https://api.github.com", c.github_oauth.api_url); }},
      {.key = "https.mode",
       .default_text = "off",
       .doc = "off, internal (Caddy's local CA) or acme",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "off, internal or acme", s)) {
           return m;
         }
         if (s != "off" && s != "internal" && s != "acme") {
           std::string hint = util::closest_match(s, {"off", "internal", "acme"});
           return "expected off, internal or acme, got " + util::quote(s) +
                  (hint.empty() ? "" : " (did you mean " + util::quote(hint) + "?)");
         }
         c.https.mode = s;
         return std::nullopt;
       }},
      {.key = "https.email",
       .doc = "the ACME account's contact (required with acme)",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         static const std::regex k_email("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$");
         std::string s;
         if (auto m = values::text(v, "an email address like ops@example.com", s)) {
           return m;
         }
         if (!std::regex_match(s, k_email)) {
           return "expected an email address like ops@example.com, got " + util::quote(s);
         }
         c.https.email = s;
         return std::nullopt;
       }},
      {.key = "https.acme_ca",
       .default_text = "Let's Encrypt",
       .doc = "acme: the ACME directory URL (a private CA, Let's Encrypt's staging)",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "an ACME directory URL like https://acme.example.com/directory", s)) {
           return m;
         }
         // RFC 8555 section 6.1: ACME is spoken over https only.
         if (!util::starts_with(s, "https://") || s.size() == 8) {
           return "expected an https:// ACME directory URL like https://acme.example.com/directory, got " +
                  util::quote(s);
         }
         c.https.acme_ca = s;
         return std::nullopt;
       }},
      {.key = "https.acme_ca_root",
       .doc = "acme: a PEM file of the roots that acme_ca's certificate chains to",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "the path of a PEM certificate file", s)) {
           return m;
         }
         if (s.empty() || s.front() != '/') {
           return "expected an absolute path of a PEM certificate file, got " + util::quote(s);
         }
         auto text = util::read_file(s);
         if (!text) {
           return "cannot read " + util::quote(s) + ": " + text.error().message;
         }
         if (text->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
           return "expected a PEM certificate file, " + util::quote(s) + " has no BEGIN CERTIFICATE block";
         }
         c.https.acme_ca_root = s;
         return std::nullopt;
       }},
      {.key = "https.ask",
       .doc = "the URL Caddy asks before each certificate",
       .parse = [](const json& v, ServerConfig& c) -> OptionMessage {
         std::string s;
         if (auto m = values::text(v, "a URL like http://127.0.0.1:9000/allowed", s)) {
           return m;
         }
         if (!util::starts_with(s, "http://") && !util::starts_with(s, "https://")) {
           return "expected a URL like http://127.0.0.1:9000/allowed, got " + util::quote(s);
         }
         c.https.ask = s;
         return std::nullopt;
       }},
      {.key = "https.port",
       .default_text = "443",
       .parse =
           [](const json& v, ServerConfig& c) {
             return values::whole_number_into(v, 0, 65535, "a port number 0-65535", c.https.port);
           }},
      {.key = "drivers", .doc = "driver options: drivers.<name>.<option>", .parse_node = apply_drivers},
      {.key = "secrets", .doc = "the server's secret store", .parse_node = apply_secrets},
      {.key = "repositories", .doc = "watched repositories", .parse_node = apply_repositories},
      {.key = "teams", .doc = "who belongs to which team (idp cost --by team)", .parse_node = apply_teams},
      {.key = "budgets", .doc = "monthly cost limits, their alerts and guardrails", .parse_node = apply_budgets},
  });
  return k_table;
}

} // namespace

std::vector<core::ConfigError> apply_server_config_file(ServerConfig& out, const std::string& text,
                                                        const std::string& file) {
  ConfigDocument doc = ConfigDocument::from_yaml(text, file);
  const ConfigNode root = doc.root();
  if (!doc.ok() && root.value->is_null()) {
    return doc.sorted_errors();
  }
  if (root.value->is_null()) {
    return {};
  }
  ServerConfig cfg = out; // applied only when everything is valid
  auto applied = server_table().apply(doc, root, cfg);
  if (cfg.engine.ttl_policy.min > cfg.engine.ttl_policy.max) {
    auto [line, column] = doc.value_position(root);
    doc.error(line, column, "ttl",
              "min " + core::format_ttl(cfg.engine.ttl_policy.min) + " is above max " +
                  core::format_ttl(cfg.engine.ttl_policy.max));
  }
  ConfigNode cost_export = doc.child(doc.child(root, "cost"), "export");
  if (cost_export.value->is_object() && !cfg.cost_export.enabled() && !has_error(doc, "cost.export.to")) {
    doc.error_at_value(cost_export, "required with cost.export: where to upload, like s3://bucket/chargeback/",
                       "cost.export.to");
  }
  ConfigNode https = doc.child(root, "https");
  if (https.value->is_object() && cfg.https.mode == "acme" && cfg.https.email.empty() &&
      !has_error(doc, "https.email")) {
    // The ACME CA writes there about expiring certificates and problems with the account.
    doc.error_at_value(https,
                       "required when mode is acme: the address the ACME CA writes to about the certificates, "
                       "like ops@example.com",
                       "https.email");
  }
  for (const char* key : {"acme_ca", "acme_ca_root"}) {
    ConfigNode n = doc.child(https, key);
    if (n.value && !n.value->is_null() && cfg.https.mode != "acme" && !has_error(doc, std::string("https.") + key)) {
      doc.error_at_value(n, std::string("only with mode acme (mode is ") + cfg.https.mode + ")",
                         std::string("https.") + key);
    }
  }
  ConfigNode oauth = doc.child(doc.child(root, "github"), "oauth");
  bool oauth_errors = std::any_of(doc.errors().begin(), doc.errors().end(),
                                  [](const core::ConfigError& e) { return util::starts_with(e.key, "github.oauth"); });
  if (oauth.value->is_object() && !oauth_errors) {
    // Without a secret GitHub refuses every sign-in; without allowed orgs anyone could sign in.
    const char* missing = cfg.github_oauth.client_id.empty()       ? "client_id"
                          : cfg.github_oauth.client_secret.empty() ? "client_secret"
                          : cfg.github_oauth.allowed_orgs.empty()  ? "allowed_orgs"
                                                                   : nullptr;
    if (missing) {
      doc.error_at_value(oauth,
                         std::string("required with github.oauth: client_id, client_secret (env:VAR) and "
                                     "allowed_orgs (the organisations whose members may sign in)"),
                         std::string("github.oauth.") + missing);
    }
  }
  if (!doc.ok()) {
    return doc.sorted_errors();
  }
  for (const auto& k : applied) {
    cfg.origins[k] = file;
  }
  cfg.config_file = file;
  out = std::move(cfg);
  return {};
}

Expected<void> apply_server_env(ServerConfig& cfg) {
  auto getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  return server_table().apply_env(cfg, getenv, cfg.origins);
}

std::vector<ServerConfigKey> server_config_keys() {
  std::vector<ServerConfigKey> out;
  for (const auto& o : server_table().options()) {
    out.push_back({o.key, o.env, o.default_text, o.doc});
  }
  return out;
}

} // namespace idp::daemon
