#include "sources/github_client.hpp"

#include <nlohmann/json.hpp>

#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::sources {

using nlohmann::json;

GithubClient::GithubClient(std::string api_url, std::string token)
    : m_api_url(std::move(api_url)), m_token(std::move(token)) {
  while (!m_api_url.empty() && m_api_url.back() == '/') {
    m_api_url.pop_back();
  }
}

std::string GithubClient::redact(std::string text) const {
  if (m_token.size() < 4) {
    return text;
  }
  for (size_t pos = text.find(m_token); pos != std::string::npos; pos = text.find(m_token, pos)) {
    text.replace(pos, m_token.size(), "[token]");
  }
  return text;
}

Expected<GithubClient::Reply> GithubClient::call(const std::string& method, const std::string& path,
                                                 const std::string& body) {
  util::HttpRequest req;
  req.method = method;
  req.url = m_api_url + path;
  req.headers = {{"Authorization", "Bearer " + m_token},
                 {"Accept", "application/vnd.github+json"},
                 {"X-GitHub-Api-Version", k_github_api_version},
                 {"User-Agent", "mini-idp"}};
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  req.timeout_ms = 15000;
  std::string what = method + " " + path;
  auto resp = util::http_request(req);
  if (!resp) {
    return Unexpected(Error(resp.error().code == ErrorCode::timeout ? ErrorCode::timeout : ErrorCode::transient,
                            "github " + what + ": " + redact(resp.error().message)));
  }
  if (resp->status >= 200 && resp->status < 300) {
    Reply r;
    r.status = resp->status;
    r.body = std::move(resp->body);
    auto link = resp->headers.find("link");
    if (link != resp->headers.end()) {
      r.link = link->second;
    }
    return r;
  }
  auto j = json::parse(resp->body, nullptr, false);
  std::string message = j.is_object() && j.contains("message") && j["message"].is_string()
                            ? j["message"].get<std::string>()
                            : std::string("no message");
  message = "github " + what + ": HTTP " + std::to_string(resp->status) + ": " + redact(message.substr(0, 300));
  auto remaining = resp->headers.find("x-ratelimit-remaining");
  bool rate_limited =
      resp->status == 429 ||
      (resp->status == 403 && ((remaining != resp->headers.end() && util::trim(remaining->second) == "0") ||
                               resp->headers.count("retry-after")));
  ErrorCode code = ErrorCode::permanent;
  if (rate_limited || resp->status >= 500) {
    code = ErrorCode::transient;
  } else if (resp->status == 401) {
    code = ErrorCode::unauthorized;
  } else if (resp->status == 404) {
    code = ErrorCode::not_found;
  }
  return make_error(code, message);
}

Expected<void> GithubClient::create_status(const std::string& repo, const std::string& sha, const std::string& state,
                                           const std::string& target_url, const std::string& description,
                                           const std::string& context) {
  json body = {{"state", state}, {"context", context}};
  if (!target_url.empty()) {
    body["target_url"] = target_url;
  }
  if (!description.empty()) {
    // GitHub refuses descriptions over 140 characters; cut at a UTF-8 boundary.
    std::string d = description;
    if (d.size() > 140) {
      size_t cut = 137;
      while (cut > 0 && (static_cast<unsigned char>(d[cut]) & 0xC0) == 0x80) {
        --cut;
      }
      d = d.substr(0, cut) + "...";
    }
    body["description"] = d;
  }
  IDP_TRY(call("POST", "/repos/" + repo + "/statuses/" + sha, util::json_dump(body)));
  return {};
}

Expected<std::optional<int64_t>> GithubClient::find_comment(const std::string& repo, int number,
                                                            const std::string& marker) {
  const int per_page = 100;
  for (int page = 1; page <= 100; ++page) {
    IDP_TRY_ASSIGN(Reply r, call("GET",
                                 "/repos/" + repo + "/issues/" + std::to_string(number) +
                                     "/comments?per_page=" + std::to_string(per_page) + "&page=" + std::to_string(page),
                                 ""));
    auto j = json::parse(r.body, nullptr, false);
    if (!j.is_array()) {
      return make_error(ErrorCode::transient, "github: listing comments of #" + std::to_string(number) +
                                                  " returned something other than a list");
    }
    for (const auto& c : j) {
      if (c.is_object() && c.contains("body") && c["body"].is_string() &&
          c["body"].get<std::string>().find(marker) != std::string::npos && c.contains("id") &&
          c["id"].is_number_integer()) {
        return std::optional<int64_t>(c["id"].get<int64_t>());
      }
    }
    // The Link header says whether there is a next page; without one, a short page is the last.
    bool has_next =
        r.link.empty() ? static_cast<int>(j.size()) == per_page : r.link.find("rel=\"next\"") != std::string::npos;
    if (!has_next) {
      break;
    }
  }
  return std::optional<int64_t>();
}

Expected<int64_t> GithubClient::create_comment(const std::string& repo, int number, const std::string& body) {
  IDP_TRY_ASSIGN(Reply r, call("POST", "/repos/" + repo + "/issues/" + std::to_string(number) + "/comments",
                               util::json_dump(json{{"body", body}})));
  auto j = json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_number_integer()) {
    return make_error(ErrorCode::transient,
                      "github: creating a comment on #" + std::to_string(number) + " returned no comment id");
  }
  return j["id"].get<int64_t>();
}

Expected<void> GithubClient::update_comment(const std::string& repo, int64_t id, const std::string& body) {
  IDP_TRY(call("PATCH", "/repos/" + repo + "/issues/comments/" + std::to_string(id),
               util::json_dump(json{{"body", body}})));
  return {};
}

} // namespace idp::sources
