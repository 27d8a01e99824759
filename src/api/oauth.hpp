#pragma once
// Sign in with GitHub (docs/dashboard.md): the OAuth app authorization-code flow with
// `state` and PKCE (S256). The user's organisations and teams (/user, /user/orgs,
// /user/teams) decide whether it may sign in at all (allowed_orgs) and with which role.

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/auth.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::api {

// `github.oauth` in the server config. Unset client_id: no GitHub sign-in.
struct GitHubOAuthSettings {
  std::string client_id;
  std::string client_secret;             // the value (env:/file: already resolved); never logged
  std::vector<std::string> allowed_orgs; // organisation logins; a user in none of them is refused
  // role name ("admin" | "developer" | "viewer") → entries "org" (every member) or
  // "org/team-slug". A user gets the highest role one of its orgs or teams is listed under.
  std::map<std::string, std::vector<std::string>> roles;
  std::string web_url = "https://github.com";     // GitHub Enterprise: https://HOST
  std::string api_url = "https://api.github.com"; // GitHub Enterprise: https://HOST/api/v3
  bool enabled() const { return !client_id.empty(); }
};

// What GitHub says about the user who signed in.
struct GitHubMembership {
  std::string login;
  std::vector<std::string> orgs;  // organisation logins
  std::vector<std::string> teams; // "org/team-slug"
};

// The role `m` gets under `s` (names compared without case), or why it may not sign in:
// in no allowed org, or matched by no role entry (a message for the user).
struct RoleDecision {
  std::optional<Role> role;
  std::string refusal; // set when role is not
};
RoleDecision github_role(const GitHubMembership& m, const GitHubOAuthSettings& s);

// PKCE (RFC 7636): the S256 challenge of a verifier, base64url without padding.
std::string pkce_challenge(const std::string& verifier);

// The flows in progress and their completion. Thread-safe: pending flows are kept under a
// mutex (at most k_max_pending, each for 10 minutes); GitHub is called outside it.
class GitHubOAuth {
public:
  GitHubOAuth(GitHubOAuthSettings settings, util::Clock& clock);

  struct Start {
    std::string state;         // also set as a cookie: the callback must come from this browser
    std::string authorize_url; // where the browser goes next
  };
  // Begins a sign-in that GitHub sends back to `redirect_uri`.
  Start start(const std::string& redirect_uri);

  struct SignedIn {
    GitHubMembership membership;
    RoleDecision decision; // refused when decision.role is unset
  };
  // Completes the flow of `state` (each state is used once): exchanges `code` with the PKCE
  // verifier, reads the membership, decides the role. unauthorized for an unknown, used
  // or expired state or a code GitHub refuses; transient
  // when GitHub cannot be reached or answers an error.
  Expected<SignedIn> finish(const std::string& state, const std::string& code);

  const GitHubOAuthSettings& settings() const { return m_settings; }

  static constexpr size_t k_max_pending = 1000;

private:
  struct Pending {
    std::string verifier;
    std::string redirect_uri;
    util::Millis expires_at = 0;
  };
  Expected<GitHubMembership> membership(const std::string& access_token) const;

  GitHubOAuthSettings m_settings;
  util::Clock& m_clock;
  std::mutex m_mutex;
  std::map<std::string, Pending> m_pending; // state → flow; guarded by m_mutex
};

} // namespace idp::api
