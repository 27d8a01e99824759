#include "cli/credentials.hpp"

#include <cstdlib>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "util/fs.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli {

using nlohmann::json;

namespace {

// The directory holds tokens (the file store) and says which servers this user logs in
// to: only its owner may list or enter it, whatever the umask made of it.
Expected<void> ensure_private_dir(const std::string& dir) {
  IDP_TRY(util::ensure_dir(dir, 0700));
  if (::chmod(dir.c_str(), 0700) != 0) {
    return make_error(ErrorCode::io_error, "cannot make " + util::quote(dir) + " private (chmod 0700)");
  }
  return {};
}

// A JSON object from `path`; {} when the file does not exist.
Expected<json> read_json_object(const std::string& path, const std::string& what) {
  auto text = util::read_file(path);
  if (!text) {
    if (text.error().code == ErrorCode::not_found) {
      return json::object();
    }
    return Unexpected(text.error());
  }
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    return make_error(ErrorCode::invalid_config, util::quote(path) + ": expected the JSON object idp writes for " +
                                                     what + "; delete the file and run 'idp login' again");
  }
  return j;
}

Expected<void> write_private_file(const std::string& path, const std::string& data) {
  IDP_TRY(ensure_private_dir(path.substr(0, path.rfind('/'))));
  IDP_TRY(util::write_file_atomic(path, data, 0600));
  // The umask may have taken bits away, never added; set the mode exactly anyway.
  if (::chmod(path.c_str(), 0600) != 0) {
    return make_error(ErrorCode::io_error, "cannot set mode 0600 on " + util::quote(path));
  }
  return {};
}

} // namespace

bool session_bus_configured() {
  const char* a = std::getenv("DBUS_SESSION_BUS_ADDRESS");
  return a && *a;
}

std::string cli_config_dir() {
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && x[0] == '/') {
    return std::string(x) + "/idp";
  }
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    struct passwd* pw = ::getpwuid(::getuid());
    home = pw ? pw->pw_dir : "/";
  }
  return std::string(home) + "/.config/idp";
}

std::string normalize_server(const std::string& url) {
  std::string s = util::trim(url);
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

// --- FileStore ---

Expected<void> FileStore::store(const std::string& server, const std::string& token) {
  IDP_TRY_ASSIGN(json j, read_json_object(m_path, "its credentials"));
  if (!j["servers"].is_object()) {
    j["servers"] = json::object();
  }
  j["servers"][server] = {{"token", token}};
  return write_private_file(m_path, util::json_dump(j, 2) + "\n");
}

Expected<std::optional<std::string>> FileStore::lookup(const std::string& server) {
  IDP_TRY_ASSIGN(json j, read_json_object(m_path, "its credentials"));
  auto servers = j.find("servers");
  if (servers == j.end() || !servers->is_object()) {
    return std::optional<std::string>();
  }
  auto entry = servers->find(server);
  if (entry == servers->end() || !entry->is_object() || !entry->contains("token") || !(*entry)["token"].is_string()) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>((*entry)["token"].get<std::string>());
}

Expected<bool> FileStore::remove(const std::string& server) {
  IDP_TRY_ASSIGN(json j, read_json_object(m_path, "its credentials"));
  if (!j.contains("servers") || !j["servers"].is_object() || !j["servers"].contains(server)) {
    return false;
  }
  j["servers"].erase(server);
  if (j["servers"].empty()) {
    // No token left: no file of tokens either.
    if (::unlink(m_path.c_str()) != 0) {
      return make_error(ErrorCode::io_error, "cannot remove " + util::quote(m_path));
    }
    return true;
  }
  IDP_TRY(write_private_file(m_path, util::json_dump(j, 2) + "\n"));
  return true;
}

// --- Credentials ---

Credentials::Credentials(std::string dir, std::unique_ptr<CredentialStore> keychain)
    : m_dir(std::move(dir)), m_keychain(std::move(keychain)),
      m_file(std::make_unique<FileStore>(m_dir + "/credentials")) {}

Credentials Credentials::for_user() {
  return Credentials(cli_config_dir(), session_bus_configured() ? std::make_unique<KeychainStore>() : nullptr);
}

Expected<LoginState> Credentials::state() const {
  IDP_TRY_ASSIGN(json j, read_json_object(m_dir + "/config.json", "its login state"));
  LoginState s;
  if (j.contains("default_server") && j["default_server"].is_string()) {
    s.default_server = j["default_server"].get<std::string>();
  }
  if (j.contains("logins") && j["logins"].is_object()) {
    for (const auto& [server, kind] : j["logins"].items()) {
      if (kind.is_string()) {
        s.logins[server] = kind.get<std::string>();
      }
    }
  }
  return s;
}

Expected<void> Credentials::write_state(const LoginState& s) const {
  json j = {{"default_server", s.default_server}, {"logins", s.logins}};
  return write_private_file(m_dir + "/config.json", util::json_dump(j, 2) + "\n");
}

Expected<SavedLogin> Credentials::save(const std::string& server, const std::string& token) {
  IDP_TRY(ensure_private_dir(m_dir));
  IDP_TRY_ASSIGN(auto lock, util::FileLock::acquire(m_dir + "/.lock"));
  IDP_TRY_ASSIGN(LoginState st, state());
  SavedLogin saved;
  if (m_keychain) {
    auto stored = m_keychain->store(server, token);
    if (stored) {
      saved.kind = m_keychain->kind();
      saved.where = m_keychain->describe();
      // An older login of this server may have gone to the file: leave no copy there.
      IDP_TRY(m_file->remove(server));
    } else {
      saved.keychain_problem = stored.error().full_message();
    }
  }
  if (saved.kind.empty()) {
    IDP_TRY(m_file->store(server, token));
    saved.kind = m_file->kind();
    saved.where = m_file->describe();
  }
  st.logins[server] = saved.kind;
  st.default_server = server;
  IDP_TRY(write_state(st));
  return saved;
}

Expected<bool> Credentials::forget(const std::string& server) {
  IDP_TRY(ensure_private_dir(m_dir));
  IDP_TRY_ASSIGN(auto lock, util::FileLock::acquire(m_dir + "/.lock"));
  IDP_TRY_ASSIGN(LoginState st, state());
  bool in_keychain = st.logins.count(server) && st.logins[server] == "keychain";
  if (in_keychain && !m_keychain) {
    return make_error(ErrorCode::transient, "the token for " + server +
                                                " is in the Secret Service keyring, and no session bus is reachable "
                                                "(DBUS_SESSION_BUS_ADDRESS is not set): run 'idp logout' in the "
                                                "session that ran 'idp login'");
  }
  bool removed = false;
  if (m_keychain) {
    auto r = m_keychain->remove(server);
    if (!r && in_keychain) {
      return Unexpected(r.error().with_context("cannot remove the token for " + server + " from the keyring"));
    }
    // Otherwise a failing keychain is ignored: the state says the token is not there.
    removed = r && *r;
  }
  IDP_TRY_ASSIGN(bool from_file, m_file->remove(server));
  removed = removed || from_file || st.logins.count(server) > 0;
  bool changed = st.logins.erase(server) > 0;
  if (st.default_server == server) {
    st.default_server.clear();
    changed = true;
  }
  if (changed) {
    IDP_TRY(write_state(st));
  }
  return removed;
}

Expected<std::optional<StoredToken>> Credentials::lookup(const std::string& server) const {
  IDP_TRY_ASSIGN(LoginState st, state());
  auto it = st.logins.find(server);
  // Only a login recorded in the keychain asks the keychain: a command never makes the
  // desktop prompt to unlock a keyring that holds nothing for it.
  if (it != st.logins.end() && it->second == "keychain") {
    if (!m_keychain) {
      return make_error(ErrorCode::transient, "the token 'idp login' stored for " + server +
                                                  " is in the Secret Service keyring, but no session bus is reachable "
                                                  "(DBUS_SESSION_BUS_ADDRESS is not set)");
    }
    auto t = m_keychain->lookup(server);
    if (!t) {
      return Unexpected(t.error().with_context("cannot read the token for " + server + " from the keyring"));
    }
    if (!*t) {
      return std::optional<StoredToken>();
    }
    return std::optional<StoredToken>(StoredToken{**t, m_keychain->describe()});
  }
  IDP_TRY_ASSIGN(auto t, m_file->lookup(server));
  if (!t) {
    return std::optional<StoredToken>();
  }
  return std::optional<StoredToken>(StoredToken{*t, m_file->describe()});
}

TokenChoice choose_token(const std::string& env_token, const Credentials& creds, const std::string& server,
                         const std::string& admin_token_path) {
  TokenChoice c;
  if (!env_token.empty()) {
    c.token = env_token;
    c.source = TokenChoice::Source::env;
    c.where = "IDP_TOKEN";
    return c;
  }
  auto stored = creds.lookup(normalize_server(server));
  if (stored && *stored && !util::trim((*stored)->token).empty()) {
    c.token = util::trim((*stored)->token);
    c.source = TokenChoice::Source::login;
    c.where = (*stored)->where;
    return c;
  }
  if (!stored) {
    c.problem = stored.error().full_message();
  }
  std::string admin = util::trim(util::read_file(admin_token_path).value_or(""));
  if (!admin.empty()) {
    c.token = admin;
    c.source = TokenChoice::Source::admin_file;
    c.where = admin_token_path;
  }
  return c;
}

} // namespace idp::cli
