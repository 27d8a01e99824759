#include "engine/secret_store.hpp"

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "core/app_config.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/secretbox.hpp"
#include "util/strings.hpp"

namespace idp::engine {

using util::quote;

namespace {

constexpr size_t k_max_value_bytes = 64 * 1024;

std::string normalize_repo(std::string_view r) {
  std::string s(r);
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  if (util::ends_with(s, ".git")) {
    s.resize(s.size() - 4);
  }
  return s;
}

// "owner/name" of a URL (https://host/owner/name, ssh://git@host/owner/name,
// git@host:owner/name); "" for local paths.
std::string owner_and_name(const std::string& repo) {
  std::string path;
  if (auto scheme = repo.find("://"); scheme != std::string::npos) {
    auto slash = repo.find('/', scheme + 3);
    path = slash == std::string::npos ? "" : repo.substr(slash + 1);
  } else if (auto colon = repo.find(':'); colon != std::string::npos && repo.front() != '/' && repo.find('/') > colon) {
    path = repo.substr(colon + 1); // scp-like git@host:owner/name
  } else {
    return "";
  }
  auto parts = util::split(path, '/');
  parts.erase(std::remove(parts.begin(), parts.end(), std::string()), parts.end());
  if (parts.size() < 2) {
    return "";
  }
  return parts[parts.size() - 2] + "/" + parts.back();
}

// Binds a sealed value to where it is stored: moved to another name or scope, it does not open.
std::string aad_of(const std::string& scope, const std::string& name) { return "idp-secret\n" + scope + "\n" + name; }

Expected<std::string> read_configured(const ConfiguredSecret& c) {
  if (util::starts_with(c.from, "env:")) {
    const char* v = std::getenv(c.from.c_str() + 4);
    if (!v) {
      return make_error(ErrorCode::permanent, "secret " + quote(c.name) +
                                                  " of the server config: the server's environment variable " +
                                                  quote(c.from.substr(4)) + " is not set");
    }
    return std::string(v);
  }
  auto text = util::read_file(c.from.substr(5));
  if (!text) {
    return make_error(ErrorCode::permanent, "secret " + quote(c.name) + " of the server config: cannot read " +
                                                quote(c.from.substr(5)) + ": " + text.error().message);
  }
  return util::trim(*text);
}

bool scope_matches(const std::string& scope, const std::string& repo) {
  return scope.empty() || repo_matches(scope, repo);
}

} // namespace

bool repo_matches(std::string_view pattern, std::string_view repo) {
  std::string p = normalize_repo(pattern);
  std::string r = normalize_repo(repo);
  if (p == "*" || util::glob_match(p, r)) {
    return true;
  }
  if (p.find(':') == std::string::npos && std::count(p.begin(), p.end(), '/') == 1 && p.front() != '/') {
    std::string on = owner_and_name(r);
    return !on.empty() && util::glob_match(p, on);
  }
  return false;
}

Expected<void> check_repo_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.size() > 512 ||
      std::any_of(pattern.begin(), pattern.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
    return make_error(
        ErrorCode::invalid_argument,
        "expected a repository like acme/shop, a clone URL or a local path (globs * and ? allowed), got " +
            quote(pattern));
  }
  // user-info before "@" in a URL: a credential that would show in listings and events.
  auto scheme = pattern.find("://");
  if (scheme != std::string_view::npos) {
    auto at = pattern.find('@', scheme + 3);
    auto slash = pattern.find('/', scheme + 3);
    if (at != std::string_view::npos && (slash == std::string_view::npos || at < slash) &&
        pattern.substr(scheme + 3, at - scheme - 3).find(':') != std::string_view::npos) {
      return make_error(ErrorCode::invalid_argument, "expected a repository without credentials (user:password@)");
    }
  }
  return {};
}

SecretStore::SecretStore(store::StateStore& store, std::string key, std::vector<ConfiguredSecret> configured,
                         util::Clock& clock)
    : m_store(store), m_key(std::move(key)), m_configured(std::move(configured)), m_clock(clock) {}

Expected<store::StoredSecret> SecretStore::set(const std::string& scope, const std::string& name,
                                               std::string_view value, const std::string& by) {
  if (!core::is_secret_store_name(name)) {
    return make_error(
        ErrorCode::invalid_argument,
        "secret name: expected 1-64 letters, digits, '_', '.' or '-' (not starting with '.' or '-'), got " +
            quote(name));
  }
  if (!scope.empty()) {
    IDP_TRY(check_repo_pattern(scope));
  }
  if (value.empty() || value.size() > k_max_value_bytes) {
    return make_error(ErrorCode::invalid_argument,
                      "secret value: expected 1 byte to 64 KiB, got " + std::to_string(value.size()) + " bytes");
  }
  for (const auto& c : m_configured) {
    if (c.name == name) {
      return make_error(ErrorCode::conflict,
                        "secret " + quote(name) + " is defined in the server config (secrets:); change it there");
    }
  }
  IDP_TRY_ASSIGN(std::string sealed, util::seal_secret(m_key, value, aad_of(scope, name)));
  store::StoredSecret s;
  s.scope = scope;
  s.name = name;
  s.sealed = util::base64_encode(sealed);
  s.updated_by = by;
  s.updated_at = m_clock.now_ms();
  IDP_TRY(m_store.put_secret(s));
  s.sealed.clear();
  return s;
}

Expected<std::vector<SecretInfo>> SecretStore::list(const std::optional<std::string>& repo) {
  IDP_TRY_ASSIGN(auto stored, m_store.list_secrets());
  std::vector<SecretInfo> out;
  for (const auto& s : stored) {
    if (repo && !scope_matches(s.scope, *repo)) {
      continue;
    }
    SecretInfo i;
    i.name = s.name;
    i.repos = {s.scope.empty() ? std::string("*") : s.scope};
    i.source = "store";
    i.updated_by = s.updated_by;
    i.updated_at = s.updated_at;
    out.push_back(std::move(i));
  }
  for (const auto& c : m_configured) {
    if (repo &&
        std::none_of(c.repos.begin(), c.repos.end(), [&](const std::string& p) { return repo_matches(p, *repo); })) {
      continue;
    }
    SecretInfo i;
    i.name = c.name;
    i.repos = c.repos;
    i.source = "config";
    i.from = c.from;
    out.push_back(std::move(i));
  }
  std::stable_sort(out.begin(), out.end(), [](const SecretInfo& a, const SecretInfo& b) { return a.name < b.name; });
  return out;
}

Expected<void> SecretStore::remove(const std::string& scope, const std::string& name) {
  for (const auto& c : m_configured) {
    if (c.name == name) {
      return make_error(ErrorCode::conflict,
                        "secret " + quote(name) + " is defined in the server config (secrets:); remove it there");
    }
  }
  return m_store.delete_secret(scope, name);
}

Expected<std::string> SecretStore::resolve(const std::string& repo, const std::string& name) {
  IDP_TRY_ASSIGN(auto stored, m_store.list_secrets());
  bool exists = false;
  const store::StoredSecret* specific = nullptr;
  const store::StoredSecret* global = nullptr;
  for (const auto& s : stored) {
    if (s.name != name) {
      continue;
    }
    exists = true;
    if (s.scope.empty()) {
      global = &s;
    } else if (repo_matches(s.scope, repo) && !specific) {
      specific = &s;
    }
  }
  if (const auto* s = specific ? specific : global) {
    auto sealed = util::base64_decode(s->sealed);
    if (!sealed) {
      return make_error(ErrorCode::permanent, "secret " + quote(name) + ": its stored form is malformed");
    }
    auto value = util::open_secret(m_key, *sealed, aad_of(s->scope, s->name));
    if (!value) {
      return Unexpected(value.error().with_context("secret " + quote(name)));
    }
    return std::move(*value);
  }
  for (const auto& c : m_configured) {
    if (c.name != name) {
      continue;
    }
    exists = true;
    if (std::any_of(c.repos.begin(), c.repos.end(), [&](const std::string& p) { return repo_matches(p, repo); })) {
      return read_configured(c);
    }
  }
  if (exists) {
    return make_error(ErrorCode::invalid_config,
                      "secret " + quote(name) + " of the server's secret store is not available to repository " +
                          quote(repo) + ": an admin may allow it (idp secret set --repo REPO " + name +
                          ", or repos: of secrets." + name + " in the server config)");
  }
  return make_error(ErrorCode::invalid_config,
                    "no secret " + quote(name) +
                        " in the server's secret store (an admin adds it with idp secret set " + name +
                        ", or under secrets: in the server config)");
}

std::vector<std::string> SecretStore::values_for(const core::Environment& env) {
  std::vector<std::string> out;
  auto config = nlohmann::json::parse(env.config_json, nullptr, false);
  if (!config.is_object() || !config.contains("secrets") || !config["secrets"].is_object()) {
    return out;
  }
  for (const auto& ref : config["secrets"]) {
    if (ref.is_string() && core::is_secret_store_name(ref.get<std::string>())) {
      if (auto v = resolve(env.repo, ref.get<std::string>())) {
        out.push_back(std::move(*v));
      }
    }
  }
  return out;
}

Expected<std::string> load_secret_key(const std::string& master_key_path) {
  auto text = util::read_file(master_key_path);
  std::string hex;
  if (text) {
    hex = util::trim(*text);
  } else {
    std::string dir = master_key_path.substr(0, master_key_path.rfind('/'));
    IDP_TRY(util::ensure_dir(dir, 0700));
    hex = util::random_hex(32);
    IDP_TRY(util::write_file_atomic(master_key_path, hex + "\n", 0600));
  }
  std::optional<std::string> raw = hex.size() == 64 ? util::from_hex(hex) : std::nullopt;
  if (!raw) {
    return make_error(ErrorCode::permanent, "malformed master key " + quote(master_key_path) +
                                                " (expected 64 hex digits): restore it from a backup");
  }
  return util::derive_subkey(*raw, "secrets1");
}

} // namespace idp::engine
