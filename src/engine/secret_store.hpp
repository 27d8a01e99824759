#pragma once
// The server's secret store (issue 9): what repository config may name under `secrets:`.
// Two sources: the server config (`secrets: {NAME: {from: env:VAR | file:/path, repos: [...]}}`,
// read from the daemon's environment or files each time it is used) and secrets set through
// the API (`idp secret set`), sealed in the state store under a key derived from the master
// key. Each secret is for the repositories its scope names; any other repository is refused.
// Values leave this class only through resolve() / values_for(), never through list().
// Thread-safe.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/environment.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::engine {

// One entry of the server config's `secrets:` map.
struct ConfiguredSecret {
  std::string name;
  std::string from;               // "env:VAR" or "file:/absolute/path"
  std::vector<std::string> repos; // repository patterns (repo_matches); "*" = every repository
};

// What `idp secret list` shows: never a value.
struct SecretInfo {
  std::string name;
  std::vector<std::string> repos; // the scope; {"*"} = every repository
  std::string source;             // "store" (idp secret set) | "config" (server config)
  std::string from;               // config secrets: where the value is read ("env:VAR")
  std::string updated_by;         // store secrets
  util::Millis updated_at = 0;    // store secrets
};

// Whether `pattern` names repository `repo` (as an environment records it: a clone URL or a
// local path). Trailing "/" and ".git" are ignored on both sides. The pattern is a glob
// (`*`, `?`) over the whole URL or path, or, for URLs, over "owner/name" (the last two
// parts of its path): "acme/shop", "acme/*", "https://github.com/acme/shop", "/srv/git/*".
bool repo_matches(std::string_view pattern, std::string_view repo);

// invalid_argument unless `pattern` can scope a secret: 1-512 characters, no control
// characters or whitespace, no credentials (user:password@).
Expected<void> check_repo_pattern(std::string_view pattern);

class SecretStore {
public:
  // `key`: 32 bytes, util::derive_subkey of the master key (see load_secret_key).
  SecretStore(store::StateStore& store, std::string key, std::vector<ConfiguredSecret> configured, util::Clock& clock);

  // Sets (or replaces) secret `name` for `scope` ("" = every repository). invalid_argument
  // for a bad name, scope or value (empty, over 64 KiB); conflict when the server config
  // defines that name (the config wins, so a stored value would never be used).
  Expected<store::StoredSecret> set(const std::string& scope, const std::string& name, std::string_view value,
                                    const std::string& by);
  // Every secret (stored and configured), ordered by name. With `repo`, only those that
  // repository may use.
  Expected<std::vector<SecretInfo>> list(const std::optional<std::string>& repo);
  // Removes the stored secret (scope, name): not_found when there is none, conflict for a
  // configured one.
  Expected<void> remove(const std::string& scope, const std::string& name);

  // The value of `name` for an environment of `repo`: a stored secret scoped to that
  // repository, else one for every repository, else a configured one whose repos match.
  // invalid_config (naming the secret and the repository, never a value) when there is
  // none, or none for that repository; permanent when a value cannot be read or opened.
  Expected<std::string> resolve(const std::string& repo, const std::string& name);
  // The values of the store secrets `env`'s config names (for redaction); what does not
  // resolve is skipped.
  std::vector<std::string> values_for(const core::Environment& env);

private:
  store::StateStore& m_store;
  const std::string m_key;
  const std::vector<ConfiguredSecret> m_configured;
  util::Clock& m_clock;
};

// The secret store's key: the master key (<home>/db/master.key, 64 hex digits, created 0600
// when absent, the same file the local runtime derives database passwords from) through
// the KDF with purpose "secrets1". permanent when the file is malformed.
Expected<std::string> load_secret_key(const std::string& master_key_path);

} // namespace idp::engine
