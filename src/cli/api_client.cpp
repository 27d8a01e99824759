#include "cli/api_client.hpp"

#include <cstdlib>
#include <pwd.h>
#include <unistd.h>

#include "util/fatal.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::cli {

using nlohmann::json;

std::string default_home() { return util::default_idp_home(); }

std::string discover_server(const std::string& flag) {
  if (!flag.empty()) {
    return flag;
  }
  if (const char* s = std::getenv("IDP_SERVER"); s && *s) {
    return s;
  }
  // Only the state file is read here: the keychain is asked for tokens, not servers.
  auto st = Credentials(cli_config_dir(), nullptr).state();
  if (!st) {
    throw Fatal(st.error().full_message());
  }
  if (!st->default_server.empty()) {
    return st->default_server;
  }
  auto text = util::read_file(default_home() + "/daemon.json");
  if (text) {
    auto j = json::parse(*text, nullptr, false);
    if (j.is_object() && j.contains("api_url") && j["api_url"].is_string()) {
      return j["api_url"].get<std::string>();
    }
  }
  return "http://127.0.0.1:8787";
}

TokenChoice discover_token(const std::string& server) {
  const char* env = std::getenv("IDP_TOKEN");
  std::string env_token = util::trim(env ? env : "");
  if (!env_token.empty()) {
    // IDP_TOKEN wins: no need to open the keyring at all.
    return choose_token(env_token, Credentials(cli_config_dir(), nullptr), server, "");
  }
  return choose_token("", Credentials::for_user(), server, default_home() + "/admin.token");
}

static std::string actor() {
  const char* u = std::getenv("USER");
  if (!u || !*u) {
    struct passwd* pw = ::getpwuid(::getuid());
    u = pw ? pw->pw_name : "unknown";
  }
  return std::string("cli:") + u;
}

ApiClient::ApiClient(std::string base_url) : m_base(normalize_server(base_url)), m_actor(actor()) {
  m_token = discover_token(m_base);
}

ApiClient::ApiClient(std::string base_url, std::string token) : m_base(normalize_server(base_url)), m_actor(actor()) {
  m_token.token = std::move(token);
  m_token.source = TokenChoice::Source::given;
}

// What to do after a 401, by where the refused (or missing) token came from.
std::string ApiClient::unauthorized_hint() const {
  std::string login = "'idp login --server " + m_base + "'";
  std::string problem = m_token.problem.empty() ? "" : "; the stored login could not be used: " + m_token.problem;
  switch (m_token.source) {
  case TokenChoice::Source::given: return "";
  case TokenChoice::Source::env: return "; check IDP_TOKEN";
  case TokenChoice::Source::login:
    return "; the token 'idp login' stored for " + m_base + " (in " + m_token.where + ") was refused: run " + login +
           " to store a new one";
  case TokenChoice::Source::admin_file:
    return "; the token in " + m_token.where + " was refused: run " + login + " or set IDP_TOKEN" + problem;
  case TokenChoice::Source::none: break;
  }
  return "; no token found: run " + login +
         ", set IDP_TOKEN (or run on the server's machine as the user that can "
         "read $IDP_HOME/admin.token)" +
         problem;
}

Expected<json> ApiClient::request(const std::string& method, const std::string& path, const std::string& body) {
  IDP_TRY_ASSIGN(std::string text, send(method, path, body));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error(ErrorCode::permanent, "the server sent a response that is not JSON");
  }
  return j;
}

Expected<std::string> ApiClient::get_text(const std::string& path) { return send("GET", path, ""); }

Expected<std::string> ApiClient::send(const std::string& method, const std::string& path, const std::string& body) {
  IDP_TRY_ASSIGN(auto resp, send_full(method, path, body));
  return std::move(resp.body);
}

Expected<std::pair<json, std::string>> ApiClient::get_with_header(const std::string& path, const std::string& header) {
  IDP_TRY_ASSIGN(auto resp, send_full("GET", path, ""));
  json j = json::parse(resp.body, nullptr, false);
  if (j.is_discarded()) {
    return make_error(ErrorCode::permanent, "the server sent a response that is not JSON");
  }
  auto it = resp.headers.find(header);
  return std::pair<json, std::string>(std::move(j), it == resp.headers.end() ? "" : it->second);
}

Expected<util::HttpResponse> ApiClient::send_full(const std::string& method, const std::string& path,
                                                  const std::string& body) {
  util::HttpRequest req;
  req.method = method;
  req.url = m_base + path;
  req.body = body;
  req.timeout_ms = 120000;
  req.headers = {{"Accept", "application/json"}, {"X-Idp-Actor", m_actor}};
  if (!m_token.token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + m_token.token);
  }
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
  }
  auto resp = util::http_request(req);
  if (!resp) {
    return make_error(ErrorCode::transient, "cannot reach the idp server at " + m_base + " (" + resp.error().message +
                                                "); is 'idp serve' running? set --server or IDP_SERVER");
  }
  if (resp->status >= 400) {
    json j = json::parse(resp->body, nullptr, false);
    std::string msg = "server answered " + std::to_string(resp->status);
    ErrorCode code = ErrorCode::permanent;
    if (j.is_object() && j.contains("message")) {
      msg = j["message"].get<std::string>();
      std::string c = j.value("error", "");
      if (c == "not_found") {
        code = ErrorCode::not_found;
      } else if (c == "invalid_argument" || c == "invalid_json") {
        code = ErrorCode::invalid_argument;
      } else if (c == "invalid_config") {
        code = ErrorCode::invalid_config;
      } else if (c == "already_exists" || c == "conflict") {
        code = ErrorCode::conflict;
      } else if (c == "unauthorized") {
        code = ErrorCode::unauthorized;
        msg += unauthorized_hint();
      }
    }
    return make_error(code, msg);
  }
  return std::move(*resp);
}

Expected<json> ApiClient::get(const std::string& path) { return request("GET", path, ""); }

Expected<json> ApiClient::post(const std::string& path, const json& body) {
  return request("POST", path, util::json_dump(body));
}

Expected<json> ApiClient::del(const std::string& path) { return request("DELETE", path, ""); }

Expected<void> ApiClient::stream_lines(const std::string& path, const std::function<bool(const json&)>& on_line) {
  util::HttpRequest req;
  req.url = m_base + path;
  req.timeout_ms = 0;
  req.headers = {{"Accept", "application/x-ndjson"}, {"X-Idp-Actor", m_actor}};
  if (!m_token.token.empty()) {
    req.headers.emplace_back("Authorization", "Bearer " + m_token.token);
  }
  std::string buf;
  bool stopped = false;
  std::string error_body;
  bool unauthorized = false;
  req.on_data = [&](std::string_view chunk) {
    buf.append(chunk);
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      // Server-sent events carry the same objects after "data: " (ids and keep-alives skipped).
      if (line.rfind("data: ", 0) == 0) {
        line.erase(0, 6);
      }
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        continue;
      }
      if (j.contains("error") && j.contains("message") && !j.contains("text")) {
        error_body = j["message"].get<std::string>();
        unauthorized = j["error"] == "unauthorized";
        return false;
      }
      if (!on_line(j)) {
        stopped = true;
        return false;
      }
    }
    return true;
  };
  auto resp = util::http_request(req);
  if (!error_body.empty()) {
    if (unauthorized) {
      return make_error(ErrorCode::unauthorized, error_body + unauthorized_hint());
    }
    return make_error(ErrorCode::permanent, error_body);
  }
  if (!resp && !stopped) {
    return make_error(ErrorCode::transient,
                      "cannot reach the idp server at " + m_base + " (" + resp.error().message + ")");
  }
  if (resp && resp->status >= 400 && !buf.empty()) {
    json j = json::parse(buf, nullptr, false);
    return make_error(ErrorCode::permanent, j.is_object() ? j.value("message", buf) : buf);
  }
  return {};
}

} // namespace idp::cli
