// KeychainStore: libsecret's simple password API. Kept apart from credentials.cpp (and out
// of unity batches) because GLib's headers define macros (MIN, MAX, TRUE, …) that other
// files must not see.
//
// libsecret is loaded when the keychain is first used, not linked: it brings GLib, GIO and
// a dozen more libraries whose loading cost every `idp` command some 5 ms, and only
// `idp login`/`logout` and a keychain lookup need them.
#include <dlfcn.h>
#include <libsecret/secret.h>

#include "cli/credentials.hpp"

namespace idp::cli {

namespace {

// The entry points used here, from the libsecret loaded at first use (its dependencies,
// GLib's g_error_free among them, resolve through its handle).
struct LibSecret {
  decltype(&secret_password_store_sync) store = nullptr;
  decltype(&secret_password_lookup_sync) lookup = nullptr;
  decltype(&secret_password_clear_sync) clear = nullptr;
  decltype(&secret_password_free) free_password = nullptr;
  decltype(&secret_service_disconnect) disconnect = nullptr;
  decltype(&g_error_free) free_error = nullptr;
  std::string error; // why it could not be loaded; "" when loaded
};

template <class F>
bool resolve(void* handle, const char* name, F& fn) {
  fn = reinterpret_cast<F>(::dlsym(handle, name));
  return fn != nullptr;
}

const LibSecret& libsecret() {
  static const LibSecret lib = [] {
    LibSecret l;
    void* h = ::dlopen("libsecret-1.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* why = ::dlerror();
      l.error = std::string("the OS keychain needs libsecret (Debian: apt-get install libsecret-1-0): ") +
                (why ? why : "cannot load libsecret-1.so.0");
      return l;
    }
    if (!(resolve(h, "secret_password_store_sync", l.store) && resolve(h, "secret_password_lookup_sync", l.lookup) &&
          resolve(h, "secret_password_clear_sync", l.clear) && resolve(h, "secret_password_free", l.free_password) &&
          resolve(h, "secret_service_disconnect", l.disconnect) && resolve(h, "g_error_free", l.free_error))) {
      l.error = "the OS keychain: libsecret-1.so.0 lacks an expected function";
    }
    return l; // the handle stays open for the process's life
  }();
  return lib;
}

Expected<const LibSecret*> loaded() {
  const LibSecret& l = libsecret();
  if (!l.error.empty()) {
    return make_error(ErrorCode::permanent, l.error);
  }
  return &l;
}

const SecretSchema* token_schema() {
  static const SecretSchema schema = {
      "dev.mini-idp.token",
      SECRET_SCHEMA_NONE,
      {{"server", SECRET_SCHEMA_ATTRIBUTE_STRING}, {nullptr, SECRET_SCHEMA_ATTRIBUTE_STRING}},
  };
  return &schema;
}

// The GError's message as an Error (the message names the D-Bus failure, never a secret).
Unexpected keychain_error(GError* err, const char* what) {
  std::string msg =
      std::string("Secret Service: ") + what + ": " + (err && err->message ? err->message : "unknown error");
  for (auto& c : msg) {
    if (c == '\n') {
      c = ' ';
    }
  }
  if (err) {
    libsecret().free_error(err);
  }
  return make_error(ErrorCode::transient, msg);
}

// Drops libsecret's shared connection to the service when an operation ends: a CLI does
// one or two operations, and nothing stays allocated for leak checkers to report.
struct ServiceDisconnect {
  const LibSecret& lib;
  ~ServiceDisconnect() { lib.disconnect(); }
};

} // namespace

Expected<void> KeychainStore::store(const std::string& server, const std::string& token) {
  IDP_TRY_ASSIGN(const LibSecret* lib, loaded());
  ServiceDisconnect disconnect{*lib};
  GError* err = nullptr;
  std::string label = "mini-idp API token for " + server;
  gboolean ok = lib->store(token_schema(), SECRET_COLLECTION_DEFAULT, label.c_str(), token.c_str(), nullptr, &err,
                           "server", server.c_str(), nullptr);
  if (!ok || err) {
    return keychain_error(err, "cannot store the token");
  }
  return {};
}

Expected<std::optional<std::string>> KeychainStore::lookup(const std::string& server) {
  IDP_TRY_ASSIGN(const LibSecret* lib, loaded());
  ServiceDisconnect disconnect{*lib};
  GError* err = nullptr;
  gchar* secret = lib->lookup(token_schema(), nullptr, &err, "server", server.c_str(), nullptr);
  if (err) {
    lib->free_password(secret);
    return keychain_error(err, "cannot look the token up");
  }
  if (!secret) {
    return std::optional<std::string>();
  }
  std::string out(secret);
  lib->free_password(secret); // wipes the copy libsecret made
  return std::optional<std::string>(std::move(out));
}

Expected<bool> KeychainStore::remove(const std::string& server) {
  IDP_TRY_ASSIGN(const LibSecret* lib, loaded());
  ServiceDisconnect disconnect{*lib};
  GError* err = nullptr;
  gboolean removed = lib->clear(token_schema(), nullptr, &err, "server", server.c_str(), nullptr);
  if (err) {
    return keychain_error(err, "cannot remove the token");
  }
  return removed != FALSE;
}

} // namespace idp::cli
