#include "api/oauth.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "util/base64.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"

namespace idp::api {

namespace {

constexpr util::Millis k_flow_ttl_ms = 10 * 60'000;
constexpr size_t k_max_orgs_or_teams = 100; // one page: a user in more is matched on the first 100

std::string base64url(std::string_view bytes) {
  std::string s = util::base64_encode(bytes);
  while (!s.empty() && s.back() == '=') {
    s.pop_back();
  }
  std::replace(s.begin(), s.end(), '+', '-');
  std::replace(s.begin(), s.end(), '/', '_');
  return s;
}

bool contains_ci(const std::vector<std::string>& list, const std::string& value) {
  std::string v = util::to_lower(value);
  return std::any_of(list.begin(), list.end(), [&v](const std::string& x) { return util::to_lower(x) == v; });
}

std::string list_or_none(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& x : list) {
    out += (out.empty() ? "" : ", ") + x;
  }
  return out.empty() ? "none" : out;
}

} // namespace

std::string pkce_challenge(const std::string& verifier) { return base64url(util::sha256_raw(verifier)); }

RoleDecision github_role(const GitHubMembership& m, const GitHubOAuthSettings& s) {
  std::vector<std::string> allowed;
  for (const auto& org : m.orgs) {
    if (contains_ci(s.allowed_orgs, org)) {
      allowed.push_back(org);
    }
  }
  if (allowed.empty()) {
    return {std::nullopt, "GitHub user " + util::quote(m.login) +
                              " is a member of none of the organisations this server allows (" +
                              list_or_none(s.allowed_orgs) + "); its organisations: " + list_or_none(m.orgs)};
  }
  // Entries of an org that is not allowed grant nothing: allowed_orgs is the outer fence.
  auto matches = [&](const std::string& entry) {
    std::string org = entry.substr(0, entry.find('/'));
    if (!contains_ci(allowed, org)) {
      return false;
    }
    return entry.find('/') == std::string::npos ? true : contains_ci(m.teams, entry);
  };
  for (const char* role : {"admin", "developer", "viewer"}) {
    auto it = s.roles.find(role);
    if (it != s.roles.end() && std::any_of(it->second.begin(), it->second.end(), matches)) {
      return {parse_role(role), ""};
    }
  }
  return {std::nullopt, "GitHub user " + util::quote(m.login) + " is a member of " + list_or_none(allowed) +
                            " but of no organisation or team that github.oauth.roles gives a role to (its teams: " +
                            list_or_none(m.teams) + ")"};
}

GitHubOAuth::GitHubOAuth(GitHubOAuthSettings settings, util::Clock& clock)
    : m_settings(std::move(settings)), m_clock(clock) {}

GitHubOAuth::Start GitHubOAuth::start(const std::string& redirect_uri) {
  Start out;
  out.state = util::random_hex(16);
  Pending p;
  p.verifier = base64url(util::random_hex(32)); // 86 characters of [A-Za-z0-9_-]: within RFC 7636's 43-128
  p.redirect_uri = redirect_uri;
  util::Millis now = m_clock.now_ms();
  p.expires_at = now + k_flow_ttl_ms;
  std::string challenge = pkce_challenge(p.verifier);
  {
    std::lock_guard lock(m_mutex);
    std::erase_if(m_pending, [now](const auto& kv) { return kv.second.expires_at <= now; });
    if (m_pending.size() >= k_max_pending) {
      m_pending.erase(std::min_element(m_pending.begin(), m_pending.end(), [](const auto& a, const auto& b) {
        return a.second.expires_at < b.second.expires_at;
      }));
    }
    m_pending[out.state] = p;
  }
  out.authorize_url =
      m_settings.web_url + "/login/oauth/authorize?client_id=" + util::url_encode(m_settings.client_id) +
      "&redirect_uri=" + util::url_encode(redirect_uri) + "&scope=" + util::url_encode("read:org") +
      "&state=" + out.state + "&code_challenge=" + challenge + "&code_challenge_method=S256" + "&allow_signup=false";
  return out;
}

Expected<GitHubOAuth::SignedIn> GitHubOAuth::finish(const std::string& state, const std::string& code) {
  Pending p;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_pending.find(state);
    if (it == m_pending.end() || it->second.expires_at <= m_clock.now_ms()) {
      if (it != m_pending.end()) {
        m_pending.erase(it);
      }
      return make_error(ErrorCode::unauthorized,
                        "this sign-in is unknown, already used or older than 10 minutes: start again");
    }
    p = it->second;
    m_pending.erase(it); // a state is good for one callback
  }
  if (code.empty()) {
    return make_error(ErrorCode::unauthorized, "GitHub sent no authorization code (was access denied?)");
  }
  util::HttpRequest req;
  req.method = "POST";
  req.url = m_settings.web_url + "/login/oauth/access_token";
  req.headers = {{"Accept", "application/json"},
                 {"Content-Type", "application/x-www-form-urlencoded"},
                 {"User-Agent", "mini-idp"}};
  req.body = "client_id=" + util::url_encode(m_settings.client_id) +
             "&client_secret=" + util::url_encode(m_settings.client_secret) + "&code=" + util::url_encode(code) +
             "&redirect_uri=" + util::url_encode(p.redirect_uri) + "&code_verifier=" + util::url_encode(p.verifier);
  req.max_body = 64 * 1024;
  auto r = util::http_request(req);
  if (!r) {
    return make_error(ErrorCode::transient, "cannot reach GitHub at " + m_settings.web_url + ": " + r.error().message);
  }
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object() || !j.contains("access_token") || !j["access_token"].is_string()) {
    // GitHub answers 200 with {"error": ..., "error_description": ...} for a bad code.
    std::string why = j.is_object() && j.contains("error_description") && j["error_description"].is_string()
                          ? j["error_description"].get<std::string>()
                          : "HTTP " + std::to_string(r->status);
    return make_error(ErrorCode::unauthorized, "GitHub refused the sign-in: " + why.substr(0, 200));
  }
  IDP_TRY_ASSIGN(GitHubMembership m, membership(j["access_token"].get<std::string>()));
  RoleDecision d = github_role(m, m_settings);
  return SignedIn{m, d};
}

Expected<GitHubMembership> GitHubOAuth::membership(const std::string& access_token) const {
  auto get = [&](const std::string& path) -> Expected<nlohmann::json> {
    util::HttpRequest req;
    req.url = m_settings.api_url + path;
    req.headers = {{"Authorization", "Bearer " + access_token},
                   {"Accept", "application/vnd.github+json"},
                   {"User-Agent", "mini-idp"}};
    req.max_body = 4 * 1024 * 1024;
    auto r = util::http_request(req);
    if (!r) {
      return make_error(ErrorCode::transient,
                        "cannot reach GitHub's API at " + m_settings.api_url + ": " + r.error().message);
    }
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (r->status != 200 || j.is_discarded()) {
      return make_error(ErrorCode::transient,
                        "GitHub's API answered HTTP " + std::to_string(r->status) + " to GET " + path);
    }
    return j;
  };
  GitHubMembership m;
  IDP_TRY_ASSIGN(auto user, get("/user"));
  if (!user.is_object() || !user.contains("login") || !user["login"].is_string()) {
    return make_error(ErrorCode::transient, "GitHub's API answered GET /user without a login");
  }
  m.login = user["login"].get<std::string>();
  IDP_TRY_ASSIGN(auto orgs, get("/user/orgs?per_page=" + std::to_string(k_max_orgs_or_teams)));
  for (const auto& o : orgs.is_array() ? orgs : nlohmann::json::array()) {
    if (o.is_object() && o.contains("login") && o["login"].is_string()) {
      m.orgs.push_back(o["login"].get<std::string>());
    }
  }
  IDP_TRY_ASSIGN(auto teams, get("/user/teams?per_page=" + std::to_string(k_max_orgs_or_teams)));
  for (const auto& t : teams.is_array() ? teams : nlohmann::json::array()) {
    if (t.is_object() && t.contains("slug") && t["slug"].is_string() && t.contains("organization") &&
        t["organization"].is_object() && t["organization"].contains("login") &&
        t["organization"]["login"].is_string()) {
      m.teams.push_back(t["organization"]["login"].get<std::string>() + "/" + t["slug"].get<std::string>());
    }
  }
  return m;
}

} // namespace idp::api
