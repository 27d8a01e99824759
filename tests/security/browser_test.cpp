// Issue 9, browser safety: a web page in a developer's browser cannot drive the API.
// Simple cross-origin requests (text/plain, foreign Origin) are refused before anything
// runs, and a foreign Host (DNS rebinding) gets no answer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

TEST(SecurityBrowserTest, CrossOriginSimpleRequestsRunNothing) {
  TempDir tmp("idp-sec-browser");
  (void)util::ensure_dir(tmp.sub("home"));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "main");
  std::string admin = d.admin_token();
  std::string port = d.api_url().substr(d.api_url().rfind(':') + 1);
  const std::vector<std::pair<std::string, std::string>> page = {{"Content-Type", "text/plain;charset=UTF-8"},
                                                                 {"Origin", "http://evil.example"}};
  std::string create = json{{"repo", repo.path()}, {"branch", "main"}}.dump();

  // What a page's fetch() sends without a preflight, even with a token somehow attached.
  for (const auto& tok : {std::string(), admin}) {
    auto [s, b] = d.api_as(tok, "POST", "/api/v1/environments", create, page);
    EXPECT_TRUE(s == 403 || s == 415) << s << " " << b.dump();
  }
  auto [plain, pb] = d.api_as(admin, "POST", "/api/v1/environments", create, {{"Content-Type", "text/plain"}});
  EXPECT_EQ(plain, 415) << pb.dump();
  EXPECT_EQ(pb.value("error", ""), "unsupported_media_type");
  auto [foreign, fb] = d.api_as(admin, "POST", "/api/v1/environments", create, {{"Origin", "http://evil.example"}});
  EXPECT_EQ(foreign, 403) << "JSON from a foreign origin: " << fb.dump();
  auto [envs_status, envs] = d.api("GET", "/api/v1/environments?all=true");
  ASSERT_EQ(envs_status, 200);
  EXPECT_TRUE(envs["environments"].empty()) << "nothing was created: " << envs.dump();

  // The server's own origin (its dashboard) may.
  auto [own, ob] = d.api_as(admin, "POST", "/api/v1/environments", create, {{"Origin", "http://127.0.0.1:" + port}});
  ASSERT_EQ(own, 202) << ob.dump();
  std::string env = ob["name"];
  ASSERT_TRUE(d.wait_phase(env, "ready", 120000)) << d.env(env).dump();

  std::string marker = tmp.shared("exec-ran");
  std::string exec = json{{"argv", {"touch", marker}}}.dump();
  for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           page, {{"Content-Type", "text/plain"}}, {{"Origin", "http://evil.example"}}, {{"Origin", "null"}}}) {
    auto [s, b] = d.api_as(admin, "POST", "/api/v1/environments/" + env + "/exec", exec, headers);
    EXPECT_TRUE(s == 403 || s == 415) << s << " " << b.dump();
  }
  EXPECT_FALSE(util::path_exists(marker)) << "nothing ran";
  auto [ok, okb] = d.api_as(admin, "POST", "/api/v1/environments/" + env + "/exec", exec);
  EXPECT_EQ(ok, 200) << okb.dump();
  EXPECT_TRUE(util::path_exists(marker)) << "the same exec, sent as the CLI does, runs";
}

TEST(SecurityBrowserTest, ForeignHostIsRefused) {
  TempDir tmp("idp-sec-host");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "server_names: [idp.example.com]\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  std::string port = d.api_url().substr(d.api_url().rfind(':') + 1);
  auto get = [&](const std::string& host, const std::string& path) {
    util::HttpRequest r;
    r.url = d.api_url() + path;
    r.headers = {{"Host", host}, d.admin_auth_header()};
    auto resp = util::http_request(r);
    return resp ? resp->status : 0L;
  };
  // A rebound name: the page's own host, now resolving to 127.0.0.1.
  EXPECT_EQ(get("evil.example:" + port, "/api/v1/environments"), 421);
  EXPECT_EQ(get("evil.example", "/"), 421);
  EXPECT_EQ(get("preview-x.preview.localhost:" + port, "/api/v1/environments"), 421);
  // Loopback names and configured names are the server's own.
  EXPECT_EQ(get("127.0.0.1:" + port, "/api/v1/environments"), 200);
  EXPECT_EQ(get("localhost:" + port, "/api/v1/environments"), 200);
  EXPECT_EQ(get("IDP.example.com", "/api/v1/environments"), 200);
}

// The dashboard signs in by pasting a token once: an HttpOnly, SameSite=Strict session
// cookie, plus a CSRF token that actions must carry; a revoked token ends the session.
TEST(SecurityBrowserTest, DashboardSessionCookieNeedsCsrfForActions) {
  TempDir tmp("idp-sec-session");
  (void)util::ensure_dir(tmp.sub("home"));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  auto [ts, tb] = d.api("POST", "/api/v1/tokens", json{{"name", "dora"}, {"role", "developer"}}.dump());
  ASSERT_EQ(ts, 201) << tb.dump();
  auto request = [&](const std::string& method, const std::string& path, const std::string& body,
                     std::vector<std::pair<std::string, std::string>> headers) {
    util::HttpRequest r;
    r.method = method;
    r.url = d.api_url() + path;
    r.body = body;
    if (!body.empty()) {
      headers.emplace_back("Content-Type", "application/json");
    }
    r.headers = headers;
    auto resp = util::http_request(r);
    return resp ? *resp : util::HttpResponse{};
  };
  auto page = request("GET", "/", "", {{"Accept", "text/html"}});
  EXPECT_EQ(page.status, 303) << "a browser without a session goes to the sign-in page";
  EXPECT_EQ(page.headers["location"], "/login");
  EXPECT_EQ(request("GET", "/login", "", {}).status, 200);
  EXPECT_EQ(request("POST", "/login", json{{"token", "idp_nope"}}.dump(), {}).status, 401);
  EXPECT_EQ(request("POST", "/login", json{{"token", tb["token"]}}.dump(), {{"Origin", "http://evil.example"}}).status,
            403);

  auto login = request("POST", "/login", json{{"token", tb["token"]}}.dump(), {});
  ASSERT_EQ(login.status, 200) << login.body;
  std::string set_cookie = login.headers["set-cookie"];
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("SameSite=Strict"), std::string::npos) << set_cookie;
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::string csrf = json::parse(login.body)["csrf"];
  ASSERT_FALSE(csrf.empty());

  EXPECT_EQ(request("GET", "/", "", {{"Cookie", cookie}}).status, 200);
  EXPECT_EQ(request("GET", "/api/v1/environments", "", {{"Cookie", cookie}}).status, 200);
  auto session = json::parse(request("GET", "/api/v1/session", "", {{"Cookie", cookie}}).body);
  EXPECT_EQ(session["identity"], "dora");
  EXPECT_EQ(session["csrf"], csrf);
  std::string create = json{{"repo", tmp.sub("nowhere")}, {"branch", "main"}}.dump();
  auto no_csrf = request("POST", "/api/v1/environments", create, {{"Cookie", cookie}});
  EXPECT_EQ(no_csrf.status, 403) << no_csrf.body;
  auto with_csrf = request("POST", "/api/v1/environments", create, {{"Cookie", cookie}, {"X-Idp-Csrf", csrf}});
  EXPECT_NE(with_csrf.status, 403) << "the action reaches the handler (which finds no repository): " << with_csrf.body;
  EXPECT_NE(with_csrf.status, 401);

  // Revoking the token ends the session at once.
  auto [ls, list] = d.api("GET", "/api/v1/tokens");
  std::string id;
  for (const auto& t : list["tokens"]) {
    if (t["name"] == "dora") {
      id = t["id"];
    }
  }
  ASSERT_EQ(d.api("DELETE", "/api/v1/tokens/" + id).first, 200);
  EXPECT_EQ(request("GET", "/api/v1/environments", "", {{"Cookie", cookie}}).status, 401);
}
