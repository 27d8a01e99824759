// KeychainStore: libsecret's simple password API. Kept apart from credentials.cpp (and out
// of unity batches) because GLib's headers define macros (MIN, MAX, TRUE, …) that other
// files must not see.
#include <libsecret/secret.h>

#include "cli/credentials.hpp"

namespace idp::cli {

namespace {

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
    g_error_free(err);
  }
  return make_error(ErrorCode::transient, msg);
}

// Drops libsecret's shared connection to the service when an operation ends: a CLI does
// one or two operations, and nothing stays allocated for leak checkers to report.
struct ServiceDisconnect {
  ~ServiceDisconnect() { secret_service_disconnect(); }
};

} // namespace

Expected<void> KeychainStore::store(const std::string& server, const std::string& token) {
  ServiceDisconnect disconnect;
  GError* err = nullptr;
  std::string label = "mini-idp API token for " + server;
  gboolean ok = secret_password_store_sync(token_schema(), SECRET_COLLECTION_DEFAULT, label.c_str(), token.c_str(),
                                           nullptr, &err, "server", server.c_str(), nullptr);
  if (!ok || err) {
    return keychain_error(err, "cannot store the token");
  }
  return {};
}

Expected<std::optional<std::string>> KeychainStore::lookup(const std::string& server) {
  ServiceDisconnect disconnect;
  GError* err = nullptr;
  gchar* secret = secret_password_lookup_sync(token_schema(), nullptr, &err, "server", server.c_str(), nullptr);
  if (err) {
    secret_password_free(secret);
    return keychain_error(err, "cannot look the token up");
  }
  if (!secret) {
    return std::optional<std::string>();
  }
  std::string out(secret);
  secret_password_free(secret); // wipes the copy libsecret made
  return std::optional<std::string>(std::move(out));
}

Expected<bool> KeychainStore::remove(const std::string& server) {
  ServiceDisconnect disconnect;
  GError* err = nullptr;
  gboolean removed = secret_password_clear_sync(token_schema(), nullptr, &err, "server", server.c_str(), nullptr);
  if (err) {
    return keychain_error(err, "cannot remove the token");
  }
  return removed != FALSE;
}

} // namespace idp::cli
