#pragma once
// Identity for the API: bearer tokens (random 256-bit secrets, stored only as SHA-256),
// roles, and the checks every request passes before any handler runs.

#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::api {

// viewer: read. developer: create; act on environments it owns. admin: everything.
enum class Role { viewer = 0, developer = 1, admin = 2 };

// "viewer" | "developer" | "admin" → Role; nullopt otherwise.
std::optional<Role> parse_role(std::string_view name);
std::string_view role_name(Role role);

// Who sent a request, once its token checked out.
struct Principal {
  std::string identity; // the token's owner: audit actor and owner of what it creates
  Role role = Role::viewer;
  std::string token_id;
  util::Millis expires_at = 0; // the token's expiry; 0 = never, or no token
};

// A token just made: the secret (shown once, never stored) and the record to store.
struct NewToken {
  std::string secret; // "idp_" + 64 hex characters (256 random bits)
  store::ApiToken record;
};

// Makes (but does not store) a token. `expires_at` 0 = never.
NewToken mint_token(const std::string& name, Role role, const std::string& owner, const std::string& created_by,
                    util::Millis now, util::Millis expires_at);

// The stored form of a secret (hex SHA-256).
std::string token_hash(std::string_view secret);

// Checks bearer tokens against the store. Thread-safe. Token records found in the store are
// kept in memory (a request then costs one SHA-256 and a map lookup, not a store query);
// whoever creates or revokes a token through this process calls forget_all(), so a
// revocation holds from the next request on. Unknown hashes are never kept (a flood of
// made-up tokens cannot grow the cache), so the cache holds at most the stored tokens.
class Authenticator {
public:
  Authenticator(store::StateStore& store, util::Clock& clock) : m_store(store), m_clock(clock) {}

  // The principal for an Authorization header value ("Bearer <secret>"). unauthorized
  // (with a message that never echoes the secret) when the header is missing or
  // malformed, or the token is unknown, revoked or expired; transient when the store fails.
  // Records the use (at most once a minute per token, so reads stay cheap). With `hash`,
  // the token's hash is put there (a caller that keeps it needs no second SHA-256).
  Expected<Principal> authenticate(std::string_view authorization_header, std::string* hash = nullptr);
  // The same for a token known by its hash (a dashboard session keeps only that).
  Expected<Principal> authenticate_hash(const std::string& hash);
  // Drops every cached token record: the next request of each token reads the store again.
  void forget_all();

private:
  // The record for `hash`, from the cache or the store (nullopt: no such token).
  Expected<std::optional<store::ApiToken>> lookup(const std::string& hash);

  store::StateStore& m_store;
  util::Clock& m_clock;
  std::shared_mutex m_mutex;                        // shared to read the maps below, exclusive to change them
  std::map<std::string, util::Millis> m_last_touch; // token id → last recorded use; guarded by m_mutex
  std::map<std::string, store::ApiToken, std::less<>> m_cache; // hash → stored record; guarded by m_mutex
  uint64_t m_generation = 0; // bumped by forget_all, so a lookup racing it does not refill; guarded by m_mutex
};

} // namespace idp::api
