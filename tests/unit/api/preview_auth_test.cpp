// PreviewAuth (issue 15): the forward_auth decision from a token, a preview session or a
// share link; the sign-in hand-off refuses return addresses outside the previews; share
// links open their own environment only, until they expire or are revoked.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "api/preview_auth.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

struct PreviewRig {
  InMemoryStore store;
  FakeClock clock;
  api::Authenticator auth{store, clock};
  api::PreviewAuth previews{settings(), store, auth, clock};

  static api::PreviewAuthSettings settings() {
    api::PreviewAuthSettings s;
    s.domain = "preview.localhost";
    s.router_port = 8080;
    s.grant_key = std::string(32, 'k');
    s.dashboard_url = "http://127.0.0.1:8787";
    return s;
  }
  api::PreviewRequest request(const std::string& env, const std::string& uri = "/") const {
    api::PreviewRequest r;
    r.host = env + ".preview.localhost:8080";
    r.uri = uri;
    r.method = "GET";
    return r;
  }
  std::string header(const api::PreviewAnswer& a, const std::string& name) const {
    for (const auto& [k, v] : a.headers) {
      if (k == name) {
        return v;
      }
    }
    return "";
  }
  std::string cookie_of(const api::PreviewAnswer& a) const {
    std::string set = header(a, "Set-Cookie");
    return set.substr(0, set.find(';'));
  }
};

} // namespace

TEST(PreviewAuthTest, WithoutCredentialsABrowserIsRedirectedAndOthersGet401) {
  PreviewRig rig;
  auto r = rig.request("web", "/a?b=1");
  r.accept = "text/html";
  auto a = rig.previews.check(r);
  EXPECT_EQ(a.status, 302);
  EXPECT_EQ(rig.header(a, "Location"), "http://127.0.0.1:8787/preview/signin?return=" +
                                           util::url_encode("http://web.preview.localhost:8080/a?b=1"));
  r.accept = "application/json";
  EXPECT_EQ(rig.previews.check(r).status, 401);
  r.method = "POST";
  r.accept = "text/html";
  EXPECT_EQ(rig.previews.check(r).status, 401) << "only a navigation is redirected";
  EXPECT_EQ(rig.previews.check(rig.request("a.b")).status, 404) << "not a preview host";
}

TEST(PreviewAuthTest, TokenOfAnyRoleOpensAndARevokedOneDoesNot) {
  PreviewRig rig;
  api::NewToken t = api::mint_token("ci", api::Role::viewer, "ci", "test", rig.clock.now_ms(), 0);
  ASSERT_TRUE(rig.store.insert_api_token(t.record).has_value());
  auto r = rig.request("web");
  r.authorization = "Bearer " + t.secret;
  auto a = rig.previews.check(r);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(rig.header(a, "X-Idp-User"), "ci");
  ASSERT_TRUE(rig.store.revoke_api_token(t.record.id, rig.clock.now_ms()).has_value());
  rig.auth.forget_all();
  rig.previews.forget_decisions();
  EXPECT_EQ(rig.previews.check(r).status, 401);
}

TEST(PreviewAuthTest, HandoffCodeIsSingleUseAndOnlyForItsHost) {
  PreviewRig rig;
  api::Principal p{"alice", api::Role::viewer, "github"};
  auto to = rig.previews.handoff(p, "", "http://web.preview.localhost:8080/page?x=1");
  ASSERT_TRUE(to.has_value()) << to.error().message;
  std::string prefix = "http://web.preview.localhost:8080/.idp/auth/callback?code=";
  ASSERT_TRUE(util::starts_with(*to, prefix)) << *to;
  std::string code = to->substr(prefix.size(), 64);
  EXPECT_EQ(rig.previews.callback("other.preview.localhost:8080", false, code, "/").status, 403);
  EXPECT_EQ(rig.previews.callback("web.preview.localhost:8080", false, code, "/").status, 403) << "used once";

  code = rig.previews.handoff(p, "", "http://web.preview.localhost:8080/")->substr(prefix.size(), 64);
  auto cb = rig.previews.callback("web.preview.localhost:8080", false, code, "/page?x=1");
  ASSERT_EQ(cb.status, 303);
  EXPECT_EQ(rig.header(cb, "Location"), "/page?x=1");
  EXPECT_NE(rig.header(cb, "Set-Cookie").find("Domain=preview.localhost"), std::string::npos);
  for (const char* env : {"web", "other"}) {
    auto r = rig.request(env);
    r.cookie = "a=b; " + rig.cookie_of(cb);
    auto a = rig.previews.check(r);
    EXPECT_EQ(a.status, 200) << env;
    EXPECT_EQ(rig.header(a, "X-Idp-User"), "alice");
  }
  // A code that is 61 s old is refused.
  code = rig.previews.handoff(p, "", "http://web.preview.localhost:8080/")->substr(prefix.size(), 64);
  rig.clock.advance(61'000);
  EXPECT_EQ(rig.previews.callback("web.preview.localhost:8080", false, code, "/").status, 403);
}

TEST(PreviewAuthTest, HandoffRefusesEveryReturnAddressOutsideThePreviews) {
  PreviewRig rig;
  api::Principal p{"alice", api::Role::viewer, "github"};
  for (const char* bad : {"https://evil.example/", "http://web.preview.localhost.evil.example:8080/",
                          "http://evil.example@web.preview.localhost:8080/", "http://web.preview.localhost:8081/",
                          "http://preview.localhost:8080/", "http://a.b.preview.localhost:8080/", "javascript:alert(1)",
                          "//web.preview.localhost:8080/", "http://web.preview.localhost:8080//evil.example/",
                          "http://web.preview.localhost:8080/\\evil", "https://web.preview.localhost:8080/",
                          "http://web.preview.localhost/"}) {
    auto r = rig.previews.handoff(p, "", bad);
    EXPECT_FALSE(r.has_value()) << bad << " → " << *r;
  }
  // The callback's return is a path on its own host only.
  std::string prefix = "http://web.preview.localhost:8080/.idp/auth/callback?code=";
  for (const char* ret : {"//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:x"}) {
    std::string code = rig.previews.handoff(p, "", "http://web.preview.localhost:8080/")->substr(prefix.size(), 64);
    auto cb = rig.previews.callback("web.preview.localhost:8080", false, code, ret);
    ASSERT_EQ(cb.status, 303) << ret;
    EXPECT_EQ(rig.header(cb, "Location"), "/") << ret;
  }
}

TEST(PreviewAuthTest, ShareLinkOpensItsEnvironmentOnlyUntilExpiryOrRevocation) {
  PreviewRig rig;
  auto g = rig.previews.mint_grant("web", 3'600'000, "alice");
  ASSERT_TRUE(g.has_value()) << g.error().message;
  auto first = rig.previews.check(rig.request("web", "/x?idp_share=" + g->token + "&y=2"));
  ASSERT_EQ(first.status, 303);
  EXPECT_EQ(rig.header(first, "Location"), "/x?y=2") << "the token leaves the address";
  EXPECT_EQ(rig.header(first, "Set-Cookie").find("Domain="), std::string::npos) << "host-only";
  auto with_cookie = [&](const std::string& env) {
    auto r = rig.request(env);
    r.cookie = rig.cookie_of(first);
    return rig.previews.check(r).status;
  };
  EXPECT_EQ(with_cookie("web"), 200);
  EXPECT_EQ(with_cookie("other"), 401);
  EXPECT_EQ(rig.previews.check(rig.request("other", "/?idp_share=" + g->token)).status, 403);

  auto parts = util::split(g->token, '.');
  std::string later = parts[0] + "." + std::to_string(std::stoll(parts[1]) + 1) + "." + parts[2];
  EXPECT_EQ(rig.previews.check(rig.request("web", "/?idp_share=" + later)).status, 403);
  EXPECT_EQ(rig.previews.check(rig.request("web", "/?idp_share=" + parts[0] + "." + parts[1] + ".00")).status, 403);

  ASSERT_TRUE(rig.store.revoke_preview_grant(g->grant.id, rig.clock.now_ms()).has_value());
  EXPECT_EQ(with_cookie("web"), 200) << "cached for a few seconds when revoked elsewhere";
  rig.previews.forget_decisions(); // what a revocation through this daemon does
  EXPECT_EQ(with_cookie("web"), 401);

  auto g2 = rig.previews.mint_grant("web", 10'000, "alice");
  auto r = rig.request("web", "/?idp_share=" + g2->token);
  EXPECT_EQ(rig.previews.check(r).status, 303);
  rig.clock.advance(10'000);
  EXPECT_EQ(rig.previews.check(r).status, 403) << "expired, even with its decision cached";
}

// What the router may check by itself: each sign-in is published (cookie, identity, the
// earlier of the session's and its token's expiry); a revoked token's session is withdrawn
// by forget_decisions; an identity Caddy would expand ({…}) is never published.
TEST(PreviewAuthTest, LiveSessionsArePublishedForTheRouterAndWithdrawnWithTheirToken) {
  PreviewRig rig;
  auto table = std::make_shared<core::PreviewSessionTable>();
  std::vector<std::vector<core::PreviewSession>> published;
  table->listen([&](const std::vector<core::PreviewSession>& s) { published.push_back(s); });
  auto settings = PreviewRig::settings();
  settings.sessions = table;
  api::PreviewAuth previews{settings, rig.store, rig.auth, rig.clock};
  const std::string prefix = "http://web.preview.localhost:8080/.idp/auth/callback?code=";
  auto sign_in = [&](const api::Principal& p, const std::string& token_hash) {
    auto to = previews.handoff(p, token_hash, "http://web.preview.localhost:8080/");
    EXPECT_TRUE(to.has_value());
    auto cb = previews.callback("web.preview.localhost:8080", false, to->substr(prefix.size(), 64), "/");
    EXPECT_EQ(cb.status, 303);
    std::string c = rig.cookie_of(cb);
    return c.substr(c.find('=') + 1);
  };
  util::Millis now = rig.clock.now_ms();
  api::NewToken t = api::mint_token("ci", api::Role::viewer, "ci-bot", "test", now, now + 3'600'000);
  ASSERT_TRUE(rig.store.insert_api_token(t.record).has_value());
  std::string bot = sign_in(*rig.auth.authenticate_hash(t.record.hash), t.record.hash);
  std::string alice = sign_in(api::Principal{"alice", api::Role::viewer, "github"}, "");
  sign_in(api::Principal{"{http.request.header.Cookie}", api::Role::viewer, "github"}, "");
  ASSERT_FALSE(published.empty());
  auto last = published.back();
  ASSERT_EQ(last.size(), 2u) << "the identity with a placeholder is checked by the daemon only";
  std::map<std::string, core::PreviewSession> by_id;
  for (const auto& s : last) {
    by_id[s.identity] = s;
  }
  EXPECT_EQ(by_id["ci-bot"].cookie, bot);
  EXPECT_EQ(by_id["ci-bot"].expires_at, now + 3'600'000) << "the token ends first";
  EXPECT_EQ(by_id["alice"].cookie, alice);
  EXPECT_EQ(by_id["alice"].expires_at, now + api::PreviewAuth::k_session_ttl_ms);

  ASSERT_TRUE(rig.store.revoke_api_token(t.record.id, now).has_value());
  rig.auth.forget_all();
  previews.forget_decisions();
  ASSERT_EQ(table->all().size(), 1u);
  EXPECT_EQ(table->all()[0].identity, "alice");
  auto r = rig.request("web");
  r.cookie = "idp_preview=" + bot;
  EXPECT_EQ(previews.check(r).status, 401) << "and the daemon refuses it too";
  table->listen(nullptr);
}
