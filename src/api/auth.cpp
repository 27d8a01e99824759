#include "api/auth.hpp"

#include <shared_mutex>

#include <spdlog/spdlog.h>

#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::api {

namespace {

constexpr std::string_view k_bearer = "Bearer ";
constexpr std::string_view k_secret_prefix = "idp_";
constexpr util::Millis k_touch_every_ms = 60'000;

} // namespace

std::optional<Role> parse_role(std::string_view name) {
  if (name == "viewer") {
    return Role::viewer;
  }
  if (name == "developer") {
    return Role::developer;
  }
  if (name == "admin") {
    return Role::admin;
  }
  return std::nullopt;
}

std::string_view role_name(Role role) {
  switch (role) {
  case Role::viewer: return "viewer";
  case Role::developer: return "developer";
  case Role::admin: return "admin";
  }
  return "viewer";
}

std::string token_hash(std::string_view secret) { return util::sha256_hex(secret); }

NewToken mint_token(const std::string& name, Role role, const std::string& owner, const std::string& created_by,
                    util::Millis now, util::Millis expires_at) {
  NewToken t;
  t.secret = std::string(k_secret_prefix) + util::random_hex(32);
  t.record.id = "tok_" + util::random_hex(6);
  t.record.hash = token_hash(t.secret);
  t.record.name = name;
  t.record.role = std::string(role_name(role));
  t.record.owner = owner;
  t.record.created_by = created_by;
  t.record.created_at = now;
  t.record.expires_at = expires_at;
  return t;
}

Expected<Principal> Authenticator::authenticate(std::string_view header, std::string* hash) {
  if (header.empty()) {
    return make_error(ErrorCode::unauthorized,
                      "this endpoint needs an API token: send \"Authorization: Bearer <token>\"");
  }
  if (!util::starts_with(header, k_bearer) || header.size() > 512) {
    return make_error(ErrorCode::unauthorized, "expected \"Authorization: Bearer <token>\"");
  }
  std::string secret = util::trim(header.substr(k_bearer.size()));
  // Unknown, revoked and expired tokens get the same answer: the reason goes to the log
  // only (by token id, never the secret), so a caller learns nothing about other tokens.
  const auto refused = [] {
    return make_error(ErrorCode::unauthorized, "the API token is not valid (unknown, revoked or expired)");
  };
  if (secret.empty()) {
    return refused();
  }
  std::string h = token_hash(secret);
  auto p = authenticate_hash(h);
  if (hash) {
    *hash = std::move(h);
  }
  return p;
}

Expected<Principal> Authenticator::authenticate_hash(const std::string& hash) {
  const auto refused = [] {
    return make_error(ErrorCode::unauthorized, "the API token is not valid (unknown, revoked or expired)");
  };
  auto found = lookup(hash);
  if (!found) {
    return make_error(ErrorCode::transient, "cannot check the API token now: " + found.error().message);
  }
  if (!*found) {
    return refused();
  }
  const store::ApiToken& t = **found;
  util::Millis now = m_clock.now_ms();
  if (t.revoked_at != 0) {
    spdlog::info("api: refused revoked token {} ({})", t.id, t.name);
    return refused();
  }
  if (t.expires_at != 0 && t.expires_at <= now) {
    spdlog::info("api: refused expired token {} ({})", t.id, t.name);
    return refused();
  }
  auto role = parse_role(t.role);
  if (!role) {
    spdlog::error("api: token {} has an unknown role {}", t.id, util::quote(t.role));
    return refused();
  }
  // Every authenticated request passes here: a shared lock, so that request threads do not
  // queue behind one another (a futex wait is a context switch); the exclusive one only
  // once a minute per token, to record its use.
  bool due = false;
  {
    std::shared_lock lock(m_mutex);
    auto it = m_last_touch.find(t.id);
    due = it == m_last_touch.end() || now - it->second >= k_touch_every_ms;
  }
  bool touch = false;
  if (due) {
    std::lock_guard lock(m_mutex);
    auto& last = m_last_touch[t.id];
    if (now - last >= k_touch_every_ms) { // another thread may have recorded it meanwhile
      last = now;
      touch = true;
    }
  }
  if (touch) {
    // Last use is information for `idp token list`, not a guard: a failed write is logged
    // and the request goes on.
    if (auto r = m_store.touch_api_token(t.id, now); !r) {
      spdlog::warn("api: cannot record the use of token {}: {}", t.id, r.error().message);
    }
  }
  return Principal{t.owner, *role, t.id, t.expires_at};
}

Expected<std::optional<store::ApiToken>> Authenticator::lookup(const std::string& hash) {
  uint64_t generation = 0;
  {
    std::shared_lock lock(m_mutex);
    if (auto it = m_cache.find(hash); it != m_cache.end()) {
      return std::optional<store::ApiToken>(it->second);
    }
    generation = m_generation;
  }
  IDP_TRY_ASSIGN(auto found, m_store.find_api_token(hash));
  if (found) {
    std::lock_guard lock(m_mutex);
    if (generation == m_generation) { // no create or revoke since the read: it is current
      m_cache.emplace(hash, *found);
    }
  }
  return found;
}

void Authenticator::forget_all() {
  std::lock_guard lock(m_mutex);
  m_cache.clear();
  ++m_generation;
}

} // namespace idp::api
