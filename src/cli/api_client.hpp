#pragma once
// The CLI's client of the daemon's REST API. Errors carry the server's message, or say how
// to reach the server when it cannot be reached.

#include <functional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "cli/credentials.hpp"
#include "util/expected.hpp"
#include "util/http_client.hpp"

namespace idp::cli {

// The server URL: --server, else IDP_SERVER, else the server of the last `idp login`, else
// the api_url in $IDP_HOME/daemon.json (IDP_HOME default: util::default_idp_home()), else
// http://127.0.0.1:8787. Throws Fatal when the login state file is unreadable.
std::string discover_server(const std::string& flag);

// The home directory the daemon uses by default.
std::string default_home();

// The API token for `server`: IDP_TOKEN, else the token `idp login` stored for it (keyring
// or credentials file), else $IDP_HOME/admin.token when this user can read it (the admin
// token `idp serve` writes on first start), else none (requests go without one).
TokenChoice discover_token(const std::string& server);

class ApiClient {
public:
  // Sends the token discover_token(base_url) chooses.
  explicit ApiClient(std::string base_url);
  // Sends `token` (`idp login` checking the one it was given).
  ApiClient(std::string base_url, std::string token);

  Expected<nlohmann::json> get(const std::string& path);
  // A GET's JSON and the value of one of its response headers ("" when absent; the name in
  // lower case).
  Expected<std::pair<nlohmann::json, std::string>> get_with_header(const std::string& path, const std::string& header);
  // The body of a GET as is (a CSV report); errors as for get().
  Expected<std::string> get_text(const std::string& path);
  Expected<nlohmann::json> post(const std::string& path, const nlohmann::json& body);
  Expected<nlohmann::json> del(const std::string& path);
  // Streams a newline-delimited JSON response (or server-sent events' data lines), calling
  // on_line per object; stops when on_line returns false or the server ends the stream.
  Expected<void> stream_lines(const std::string& path, const std::function<bool(const nlohmann::json&)>& on_line);

  const std::string& base_url() const { return m_base; }

private:
  Expected<nlohmann::json> request(const std::string& method, const std::string& path, const std::string& body);
  // The response of a 2xx; the server's error (code and message) otherwise.
  Expected<std::string> send(const std::string& method, const std::string& path, const std::string& body);
  Expected<util::HttpResponse> send_full(const std::string& method, const std::string& path, const std::string& body);
  std::string m_base;
  std::string m_actor;
  std::string unauthorized_hint() const;
  TokenChoice m_token; // the token is never printed
};

} // namespace idp::cli
