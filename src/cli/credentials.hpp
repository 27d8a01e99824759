#pragma once
// Where `idp login` keeps API tokens and which token a command sends. A token lives in the
// OS keychain (Secret Service, through libsecret) when a session bus answers, else in a
// 0600 file under $XDG_CONFIG_HOME/idp. No message here ever contains a token.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "util/expected.hpp"

namespace idp::cli {

// A place holding at most one token per server URL.
class CredentialStore {
public:
  virtual ~CredentialStore() = default;
  // "keychain" or "file": recorded in the login state so that lookups ask the right place.
  virtual std::string kind() const = 0;
  // Where, for messages: "the Secret Service keyring", "the file /…/credentials".
  virtual std::string describe() const = 0;
  // Stores `token` for `server`, replacing any. Error (with the store's reason) when it cannot.
  virtual Expected<void> store(const std::string& server, const std::string& token) = 0;
  // The token stored for `server`; nullopt when there is none.
  virtual Expected<std::optional<std::string>> lookup(const std::string& server) = 0;
  // Removes the token of `server`; false when there was none.
  virtual Expected<bool> remove(const std::string& server) = 0;
};

// Tokens in a JSON file ({"servers": {URL: {"token": …}}}), written atomically with mode
// 0600 in a directory made 0700. Not thread-safe; Credentials serializes writers with a lock.
class FileStore : public CredentialStore {
public:
  explicit FileStore(std::string path) : m_path(std::move(path)) {}
  std::string kind() const override { return "file"; }
  std::string describe() const override { return "the file " + m_path; }
  Expected<void> store(const std::string& server, const std::string& token) override;
  Expected<std::optional<std::string>> lookup(const std::string& server) override;
  Expected<bool> remove(const std::string& server) override;

private:
  std::string m_path;
};

// The Secret Service (gnome-keyring, KWallet, KeePassXC) through libsecret: one item per
// server, schema "dev.mini-idp.token", attribute server=URL, in the default collection.
// Calls may block while the desktop asks the user to unlock the keyring.
class KeychainStore : public CredentialStore {
public:
  std::string kind() const override { return "keychain"; }
  std::string describe() const override { return "the Secret Service keyring"; }
  Expected<void> store(const std::string& server, const std::string& token) override;
  Expected<std::optional<std::string>> lookup(const std::string& server) override;
  Expected<bool> remove(const std::string& server) override;
};

// True when DBUS_SESSION_BUS_ADDRESS is set. Without it the keychain is not tried at all:
// GLib would otherwise try to autolaunch a bus through X11.
bool session_bus_configured();

// $XDG_CONFIG_HOME/idp, else $HOME/.config/idp.
std::string cli_config_dir();

// A server URL as a key: surrounding space and trailing slashes removed.
std::string normalize_server(const std::string& url);

// The CLI's login state in <dir>/config.json (no secrets): the default server (the last
// `idp login`) and which store holds each server's token.
struct LoginState {
  std::string default_server;
  std::map<std::string, std::string> logins; // server → CredentialStore::kind()
};

// What Credentials::save did: the store used and, when the keychain was wanted but could
// not be used, why (the caller warns that the token went to a file).
struct SavedLogin {
  std::string kind;
  std::string where;
  std::string keychain_problem; // "" when the keychain took it, or was not tried
};

// A token found for a server, with where it came from (for messages, never the token).
struct StoredToken {
  std::string token;
  std::string where;
};

// The stores and the login state of one config directory. `keychain` is null when no
// session bus is configured (the file store is used alone).
class Credentials {
public:
  Credentials(std::string dir, std::unique_ptr<CredentialStore> keychain);
  // The user's: cli_config_dir(), and a KeychainStore when session_bus_configured().
  static Credentials for_user();

  // invalid_config when config.json exists but is not what this CLI writes.
  Expected<LoginState> state() const;
  // Stores `token` for `server` (keychain first, else the file), removes it from the other
  // store, and makes `server` the default. Serialized with other writers by a lock file.
  Expected<SavedLogin> save(const std::string& server, const std::string& token);
  // Removes `server`'s token from every store and the state (and the default when it was
  // that server). False when nothing was stored. Error when the keychain holds it (per the
  // state) but cannot be reached: nothing is changed then.
  Expected<bool> forget(const std::string& server);
  // The token `idp login` stored for `server`: nullopt when none; an error that says why
  // when the state names a store that cannot be read.
  Expected<std::optional<StoredToken>> lookup(const std::string& server) const;

  const std::string& dir() const { return m_dir; }

private:
  Expected<void> write_state(const LoginState& s) const;
  std::string m_dir;
  std::unique_ptr<CredentialStore> m_keychain;
  std::unique_ptr<CredentialStore> m_file;
};

// Which token a command sends, and where it came from (for the hint after a 401).
struct TokenChoice {
  enum class Source { none, given, env, login, admin_file };
  std::string token; // never printed
  Source source = Source::none;
  std::string where;   // the store or file it came from
  std::string problem; // why a stored login could not be used ("" when none)
};

// IDP_TOKEN (`env_token`, when not empty) > the login stored for `server` > the admin
// token in `admin_token_path` when readable > none. A login whose store fails is skipped
// (its reason kept in `problem`).
TokenChoice choose_token(const std::string& env_token, const Credentials& creds, const std::string& server,
                         const std::string& admin_token_path);

} // namespace idp::cli
