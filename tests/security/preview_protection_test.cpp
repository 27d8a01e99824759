// Issue 15, protected previews, against a real `idp serve` and its real Caddy: without a
// session a browser is sent to sign in and any other client gets 401; the sign-in's
// hand-off, a viewer token or a share link opens the preview; an expired, revoked, altered
// or other environment's share link does not; `public: true` opens a preview only where the
// server allows it (a positioned config error elsewhere); the app never sees the idp cookie
// or token; the preview cookie is no key to the API; the sign-in is no open redirect.
//
// Built twice: security_preview_test runs it with the router's default (a Caddy route per
// environment), security_preview_lookup_test (IDP_PREVIEW_ROUTER_LOOKUP) with the local
// driver's router_mode "lookup", where Caddy asks the daemon for every request (issue 14).
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

#ifdef IDP_PREVIEW_ROUTER_LOOKUP
#define SecurityPreviewTest SecurityPreviewLookupTest
constexpr const char* k_router_options = "drivers:\n  local:\n    router_mode: lookup\n";
#else
constexpr const char* k_router_options = "";
#endif

namespace {

// Echoes what reached it: the request line and every header (the test looks for idp's
// credentials there). /health answers too, like any app's.
const char* k_preview_echo_app = R"js('use strict';
const http = require('http');
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(JSON.stringify({app: 'echo', method: req.method, path: req.url, headers: req.headers, body}));
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
)js";

std::string preview_app_config(bool is_public) {
  return std::string("template: api-service\nhealth_check_path: /health\n") + (is_public ? "public: true\n" : "") +
         "local:\n  start: \"node server.js\"\n";
}

struct PreviewReply {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  json j() const { return json::parse(body, nullptr, false); }
};

} // namespace

// Outside the anonymous namespace: unity builds (see tests/security/auth_test.cpp).
class SecurityPreviewTest : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    s_tmp = new TempDir("idp-sec-preview");
    (void)util::ensure_dir(s_tmp->sub("home"));
    s_repo = new GitRepo(s_tmp->sub("repo"));
    s_public_repo = new GitRepo(s_tmp->sub("public-repo"));
    for (GitRepo* r : {s_repo, s_public_repo}) {
      r->write_file("server.js", k_preview_echo_app);
      r->write_file(".idp/config.yml", preview_app_config(false));
      r->commit("echo app");
      r->checkout_new_branch("wants-public");
      r->write_file(".idp/config.yml", "# a preview anyone may open\n" + preview_app_config(true));
      r->commit("public");
      r->checkout("main");
    }
    // Protected by default, public previews allowed for one repository only.
    (void)util::write_file_atomic(s_tmp->sub("server.yml"), std::string(k_router_options) +
                                                                "previews:\n  protect: signin\n  allow_public: false\n"
                                                                "repositories:\n  - url: \"" +
                                                                s_public_repo->path() +
                                                                "\"\n    previews:\n      allow_public: true\n");
    s_daemon = new DaemonProcess(s_tmp->sub("home"), {"--config", s_tmp->sub("server.yml")});
    s_daemon->start();
    for (const char* name : {"web", "other"}) {
      auto r = s_daemon->cli({"create", "--repo", s_repo->path(), "--branch", "main", "--name", name});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err << s_daemon->log();
    }
  }
  static void TearDownTestSuite() {
    if (s_daemon) {
      s_daemon->cli({"destroy", "web"});
      s_daemon->cli({"destroy", "other"});
      s_daemon->stop();
    }
    delete s_daemon;
    delete s_repo;
    delete s_public_repo;
    delete s_tmp;
    s_daemon = nullptr;
  }

  // A request through the router (Caddy) for <env>.preview.localhost.
  static PreviewReply via_router(const std::string& env, const std::string& path,
                                 std::vector<std::pair<std::string, std::string>> headers = {},
                                 const std::string& method = "GET", const std::string& body = "") {
    util::HttpRequest req;
    req.method = method;
    req.body = body;
    req.url = "http://127.0.0.1:" + std::to_string(s_daemon->router_port()) + path;
    headers.push_back({"Host", host(env)});
    req.headers = headers;
    auto r = util::http_request(req);
    if (!r) {
      return {0, {}, r.error().message};
    }
    return {r->status, r->headers, r->body};
  }
  static std::string host(const std::string& env) {
    return env + ".preview.localhost:" + std::to_string(s_daemon->router_port());
  }
  // A request to the daemon's API address (the dashboard).
  static PreviewReply to_api(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) {
    util::HttpRequest req;
    req.url = s_daemon->api_url() + path;
    req.headers = std::move(headers);
    auto r = util::http_request(req);
    if (!r) {
      return {0, {}, r.error().message};
    }
    return {r->status, r->headers, r->body};
  }
  // "name=value" of a Set-Cookie header.
  static std::string cookie_pair(const std::string& set_cookie) { return set_cookie.substr(0, set_cookie.find(';')); }
  // The whole sign-in as a browser goes through it, with `token` signed in on the dashboard:
  // returns the preview cookie ("idp_preview=…").
  static std::string sign_in(const std::string& env, const std::string& token) {
    std::string ret = "http://" + host(env) + "/some/page?x=1";
    auto handoff = to_api("/preview/signin?return=" + util::url_encode(ret), {{"Authorization", "Bearer " + token}});
    EXPECT_EQ(handoff.status, 303) << handoff.body;
    std::string to = handoff.headers["location"];
    std::string prefix = "http://" + host(env) + "/.idp/auth/callback?code=";
    EXPECT_TRUE(util::starts_with(to, prefix)) << to;
    auto cb = via_router(env, to.substr(("http://" + host(env)).size()));
    EXPECT_EQ(cb.status, 303) << cb.body;
    EXPECT_EQ(cb.headers["location"], "/some/page?x=1");
    std::string set = cb.headers["set-cookie"];
    EXPECT_NE(set.find("Domain=preview.localhost"), std::string::npos) << set;
    EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
    return cookie_pair(set);
  }
  static std::string token_with_role(const std::string& name, const std::string& role) {
    auto r = s_daemon->cli({"token", "create", "--name", name, "--role", role});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return util::trim(r.out);
  }
  static json share(const std::string& env, const std::string& ttl) {
    auto r = s_daemon->cli({"share", env, "--ttl", ttl, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return json::parse(r.out, nullptr, false);
  }
  // The path and query of a share URL.
  static std::string share_path(const json& s) {
    std::string url = s.value("url", "");
    auto slash = url.find('/', std::string("http://").size());
    return slash == std::string::npos ? "/" : url.substr(slash);
  }

  static TempDir* s_tmp;
  static GitRepo* s_repo;
  static GitRepo* s_public_repo;
  static DaemonProcess* s_daemon;
};

TempDir* SecurityPreviewTest::s_tmp = nullptr;
GitRepo* SecurityPreviewTest::s_repo = nullptr;
GitRepo* SecurityPreviewTest::s_public_repo = nullptr;
DaemonProcess* SecurityPreviewTest::s_daemon = nullptr;

// Must show 1: without a session a browser goes to sign in (and comes back to the same
// address); a script gets 401; /health is not exempt; the platform's own health checks
// (the environments became ready) never needed the router.
TEST_F(SecurityPreviewTest, WithoutCredentialsBrowserIsSentToSignInAndOthersGet401) {
  auto browser = via_router("web", "/some/page?x=1", {{"Accept", "text/html,application/xhtml+xml"}});
  EXPECT_EQ(browser.status, 302) << browser.body;
  EXPECT_EQ(browser.headers["location"], s_daemon->api_url() + "/preview/signin?return=" +
                                             util::url_encode("http://" + host("web") + "/some/page?x=1"));
  EXPECT_EQ(browser.body.find("\"app\""), std::string::npos) << browser.body;

  auto script = via_router("web", "/", {{"Accept", "application/json"}});
  EXPECT_EQ(script.status, 401) << script.body;
  EXPECT_NE(script.headers["www-authenticate"].find("Bearer"), std::string::npos);
  EXPECT_EQ(via_router("web", "/health").status, 401);
  EXPECT_EQ(via_router("web", "/echo", {}, "POST", "x").status, 401);
  EXPECT_EQ(s_daemon->env("web").value("phase", ""), "ready");

  // The dashboard's hand-off page sends a browser without a session to the sign-in first.
  auto signin =
      to_api("/preview/signin?return=" + util::url_encode("http://" + host("web") + "/"), {{"Accept", "text/html"}});
  EXPECT_EQ(signin.status, 303) << signin.body;
  EXPECT_TRUE(util::starts_with(signin.headers["location"], "/login?next=")) << signin.headers["location"];
}

// Must show 1: the sign-in's session cookie opens the preview, and every other preview
// of the server (one sign-in covers them all); the app sees neither the cookie nor a token.
TEST_F(SecurityPreviewTest, SessionCookieOpensEveryPreviewAndNeverReachesTheApp) {
  std::string viewer = token_with_role("preview-viewer", "viewer");
  std::string cookie = sign_in("web", viewer);
  ASSERT_TRUE(util::starts_with(cookie, "idp_preview=")) << cookie;
  for (const char* env : {"web", "other"}) {
    auto r = via_router(env, "/page", {{"Cookie", "theme=dark; " + cookie + "; lang=en"}, {"Accept", "text/html"}});
    ASSERT_EQ(r.status, 200) << env << ": " << r.body;
    json j = r.j();
    EXPECT_EQ(j["app"], "echo");
    std::string seen = j["headers"].dump();
    EXPECT_EQ(seen.find("idp_preview"), std::string::npos) << seen;
    EXPECT_EQ(seen.find(cookie.substr(12)), std::string::npos) << seen;
    EXPECT_NE(seen.find("theme=dark"), std::string::npos) << "the app's own cookies pass: " << seen;
    EXPECT_EQ(j["headers"].value("x-idp-user", ""), "preview-viewer");
  }
  // A spoofed identity header is replaced by the daemon's.
  auto spoof = via_router("web", "/", {{"Cookie", cookie}, {"X-Idp-User", "admin"}});
  EXPECT_EQ(spoof.j()["headers"].value("x-idp-user", ""), "preview-viewer") << spoof.body;
}

// The hand-off code is single use and only for the host it was made for.
TEST_F(SecurityPreviewTest, SignInCodeIsSingleUseAndBoundToItsHost) {
  std::string admin = s_daemon->admin_token();
  auto handoff = to_api("/preview/signin?return=" + util::url_encode("http://" + host("web") + "/"),
                        {{"Authorization", "Bearer " + admin}});
  ASSERT_EQ(handoff.status, 303);
  std::string path = handoff.headers["location"].substr(("http://" + host("web")).size());
  auto on_other = via_router("other", path);
  EXPECT_EQ(on_other.status, 403) << on_other.body;
  // Used (refused) once: gone for its own host as well.
  EXPECT_EQ(via_router("web", path).status, 403);
}

// Must show 1: a viewer token opens it (CI, tests); the app never sees the token; a
// revoked token does not.
TEST_F(SecurityPreviewTest, ViewerTokenOpensPreviewAndIsStrippedBeforeTheApp) {
  std::string viewer = token_with_role("preview-ci", "viewer");
  auto r = via_router("web", "/echo", {{"Authorization", "Bearer " + viewer}}, "POST", "hello");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.j();
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["body"], "hello");
  EXPECT_FALSE(j["headers"].contains("authorization")) << j["headers"].dump();
  EXPECT_EQ(r.body.find(viewer), std::string::npos);

  auto list = s_daemon->api("GET", "/api/v1/tokens");
  std::string id;
  for (const auto& t : list.second["tokens"]) {
    if (t["name"] == "preview-ci") {
      id = t["id"];
    }
  }
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(s_daemon->cli({"token", "revoke", id}).exit_code, 0);
  EXPECT_EQ(via_router("web", "/", {{"Authorization", "Bearer " + viewer}}).status, 401);
}

// The benchmark's design (bench/protected_preview.cpp): with a route per environment, Caddy
// lets a live session's cookie through by itself, so a signed-in browser is served even
// while the daemon cannot answer (stopped with SIGSTOP here); revoking the token the
// session came from ends it before `idp token revoke` returns, with no cache to wait out.
TEST_F(SecurityPreviewTest, SignedInBrowserNeedsNoDaemonRoundTripAndEndsWithItsToken) {
  std::string viewer = token_with_role("preview-fast", "viewer");
  std::string cookie = sign_in("web", viewer);
#ifndef IDP_PREVIEW_ROUTER_LOOKUP
  {
    struct Resume {
      pid_t pid;
      ~Resume() { ::kill(pid, SIGCONT); }
    } resume{s_daemon->pid()};
    ASSERT_EQ(::kill(s_daemon->pid(), SIGSTOP), 0);
    util::HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(s_daemon->router_port()) + "/fast";
    req.headers = {{"Host", host("other")}, {"Cookie", cookie}, {"X-Idp-User", "admin"}};
    req.timeout_ms = 5000;
    auto r = util::http_request(req);
    ASSERT_TRUE(r.has_value()) << "Caddy asked the stopped daemon: " << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
    json j = json::parse(r->body, nullptr, false);
    EXPECT_EQ(j["headers"].value("x-idp-user", ""), "preview-fast") << "the session's identity, not the client's";
    EXPECT_EQ(j["headers"].dump().find(cookie.substr(12)), std::string::npos);
  }
#endif
  auto list = s_daemon->api("GET", "/api/v1/tokens");
  std::string id;
  for (const auto& t : list.second["tokens"]) {
    if (t["name"] == "preview-fast") {
      id = t["id"];
    }
  }
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(via_router("web", "/", {{"Cookie", cookie}}).status, 200);
  ASSERT_EQ(s_daemon->cli({"token", "revoke", id}).exit_code, 0);
  EXPECT_EQ(via_router("web", "/", {{"Cookie", cookie}}).status, 401);
  EXPECT_EQ(via_router("other", "/", {{"Cookie", cookie}, {"Accept", "text/html"}}).status, 302);
}

// Must show 1: a share link opens its environment (and only it) until it is revoked; the
// token leaves the address and never reaches the app; altered or forged links are refused;
// the revocation holds across a restart of the daemon.
TEST_F(SecurityPreviewTest, ShareLinkOpensOnlyItsEnvironmentUntilRevoked) {
  json s = share("web", "24h");
  ASSERT_TRUE(s.is_object());
  std::string path = share_path(s);
  ASSERT_NE(path.find("idp_share="), std::string::npos) << s.dump();
  std::string token = util::url_decode(path.substr(path.find("idp_share=") + 10));

  auto first = via_router("web", path, {{"Accept", "text/html"}});
  ASSERT_EQ(first.status, 303) << first.body;
  EXPECT_EQ(first.headers["location"], "/");
  std::string set = first.headers["set-cookie"];
  EXPECT_EQ(set.find("Domain="), std::string::npos) << "a share link's cookie is for its host alone: " << set;
  std::string cookie = cookie_pair(set);
  auto page = via_router("web", "/", {{"Cookie", cookie}});
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.body.find(token), std::string::npos) << page.body;
  EXPECT_EQ(page.j()["headers"].value("x-idp-user", ""), "share:" + s.value("id", ""));

  // Another environment: neither the link nor its cookie.
  EXPECT_EQ(via_router("other", path).status, 403);
  EXPECT_EQ(via_router("other", "/", {{"Cookie", cookie}}).status, 401);
  // Altered: a later expiry, or another signature.
  auto parts = util::split(token, '.');
  ASSERT_EQ(parts.size(), 3u);
  std::string later = parts[0] + "." + std::to_string(std::stoll(parts[1]) + 86'400'000) + "." + parts[2];
  EXPECT_EQ(via_router("web", "/?idp_share=" + later).status, 403);
  std::string forged = parts[0] + "." + parts[1] + "." + std::string(64, 'a');
  EXPECT_EQ(via_router("web", "/?idp_share=" + forged).status, 403);
  EXPECT_EQ(via_router("web", "/", {{"Cookie", "idp_share=" + forged}}).status, 401);

  auto listed = s_daemon->cli({"share", "--list", "web"});
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_NE(listed.out.find(s.value("id", "")), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find(token), std::string::npos);

  auto revoke = s_daemon->cli({"share", "--revoke", s.value("id", "")});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.out << revoke.err;
  EXPECT_EQ(via_router("web", "/", {{"Cookie", cookie}}).status, 401);
  EXPECT_EQ(via_router("web", path).status, 403);

  s_daemon->stop();
  s_daemon->start();
  EXPECT_EQ(via_router("web", path).status, 403);
  EXPECT_EQ(via_router("web", "/", {{"Cookie", cookie}}).status, 401);
  // The router asks the restarted daemon (its new address): a token still opens it, once
  // the restarted server has started the app again.
  std::string admin = s_daemon->admin_token();
  EXPECT_TRUE(wait_until(
      [&] {
        return via_router("web", "/", {{"Authorization", "Bearer " + admin}}).status == 200;
      },
      60000, 100))
      << via_router("web", "/", {{"Authorization", "Bearer " + admin}}).body;
  EXPECT_TRUE(wait_until(
      [&] {
        return via_router("other", "/", {{"Authorization", "Bearer " + admin}}).status == 200;
      },
      60000, 100));
}

// Must show 1: an expired share link gets no access.
TEST_F(SecurityPreviewTest, ExpiredShareLinkIsRefused) {
  json s = share("web", "2s");
  std::string path = share_path(s);
  auto first = via_router("web", path);
  ASSERT_EQ(first.status, 303) << first.body;
  std::string cookie = cookie_pair(first.headers["set-cookie"]);
  // Polled to its expiry (the server's clock decides), then refused both ways.
  EXPECT_TRUE(wait_until([&] { return via_router("web", path).status == 403; }, 20000, 200));
  EXPECT_EQ(via_router("web", "/", {{"Cookie", cookie}}).status, 401);
}

// Must show 1: public: true opens the preview where the server allows it (this
// repository's entry), and is a config error naming file:line:col where it does not.
TEST_F(SecurityPreviewTest, PublicConfigOpensOnlyWhereTheServerAllows) {
  auto ok = s_daemon->cli({"create", "--repo", s_public_repo->path(), "--branch", "wants-public", "--name", "open"});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  auto open = via_router("open", "/", {{"Accept", "text/html"}});
  EXPECT_EQ(open.status, 200) << open.body;
  EXPECT_EQ(open.j()["app"], "echo");
  // The preview cookie goes to every host of the domain: an open app must not collect it.
  auto cookies = via_router("open", "/", {{"Cookie", "idp_preview=0123abcd; theme=dark"}});
  EXPECT_EQ(cookies.body.find("0123abcd"), std::string::npos) << cookies.body;
  EXPECT_NE(cookies.body.find("theme=dark"), std::string::npos) << cookies.body;
  // Nobody signed in to an open preview: no client names its user, nor where it goes.
  auto spoof = via_router("open", "/", {{"X-Idp-User", "admin"}, {"X-Idp-Upstream", "127.0.0.1:1"}});
  ASSERT_EQ(spoof.status, 200) << spoof.body;
  for (const char* h : {"x-idp-user", "x-idp-upstream", "x-idp-root", "x-idp-kind"}) {
    EXPECT_FALSE(spoof.j()["headers"].contains(h)) << h << ": " << spoof.body;
  }

  auto refused = s_daemon->cli({"create", "--repo", s_repo->path(), "--branch", "wants-public", "--name", "closed"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  std::string want = ".idp/config.yml:4:9: key \"public\": public: true is not allowed by this server";
  EXPECT_NE(refused.err.find(want), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("allow_public"), std::string::npos) << refused.err;
  EXPECT_EQ(s_daemon->env("closed").value("phase", ""), "failed");
  s_daemon->cli({"destroy", "open"});
}

// The preview cookie is no key to the API or the dashboard: an app sees it on its own
// host's requests and could replay it.
TEST_F(SecurityPreviewTest, PreviewCookieIsRefusedByTheApi) {
  std::string cookie = sign_in("web", s_daemon->admin_token());
  std::string id = cookie.substr(cookie.find('=') + 1);
  for (const std::string& c : {cookie, "idp_session=" + id}) {
    auto r = to_api("/api/v1/environments", {{"Cookie", c}});
    EXPECT_EQ(r.status, 401) << c << ": " << r.body;
    EXPECT_EQ(to_api("/api/v1/session", {{"Cookie", c}}).status, 401);
  }
  // The forward_auth endpoint answers the machine's Caddy only, never through the API route.
  EXPECT_EQ(via_router("web", "/internal/preview-auth", {{"Cookie", cookie}}).j()["path"], "/internal/preview-auth");
}

// The sign-in hand-off is no open redirect: only preview hosts of this server, on its
// router's port, get a code; the callback goes back to a path on its own host.
TEST_F(SecurityPreviewTest, SignInRefusesReturnAddressesOutsideThePreviews) {
  std::string admin = s_daemon->admin_token();
  std::string port = std::to_string(s_daemon->router_port());
  const std::vector<std::string> bad_returns = {"https://evil.example/",
                                                "http://web.preview.localhost.evil.example:" + port + "/",
                                                "http://evil.example@web.preview.localhost:" + port + "/",
                                                "http://web.preview.localhost:1/",
                                                "http://preview.localhost:" + port + "/",
                                                "http://a.b.preview.localhost:" + port + "/",
                                                "javascript:alert(1)",
                                                "//web.preview.localhost:" + port + "/",
                                                "http://web.preview.localhost:" + port + "//evil.example/"};
  for (const std::string& bad : bad_returns) {
    auto r = to_api("/preview/signin?return=" + util::url_encode(bad), {{"Authorization", "Bearer " + admin}});
    EXPECT_EQ(r.status, 400) << bad << ": " << r.headers["location"];
    EXPECT_TRUE(r.headers["location"].empty()) << bad;
  }
  // The callback's return is a path on the same host, never another host.
  auto handoff = to_api("/preview/signin?return=" + util::url_encode("http://" + host("web") + "/"),
                        {{"Authorization", "Bearer " + admin}});
  ASSERT_EQ(handoff.status, 303);
  std::string loc = handoff.headers["location"];
  std::string path = loc.substr(("http://" + host("web")).size());
  path = path.substr(0, path.find("&return=")) + "&return=" + util::url_encode("//evil.example/x");
  auto cb = via_router("web", path);
  EXPECT_EQ(cb.status, 303);
  EXPECT_EQ(cb.headers["location"], "/");
}
