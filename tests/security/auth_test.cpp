// Issue 9, identity and authorization: bearer tokens on every route that reads or changes
// environments, roles, owners, and an audit log that names the token's identity.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

// Outside the anonymous namespace: in a unity build the TEST_F classes deriving from it
// would otherwise trip -Wsubobject-linkage.
class SecurityAuthTest : public ::testing::Test {
protected:
  SecurityAuthTest() : tmp("idp-sec-auth") {
    (void)util::ensure_dir(tmp.sub("home"));
    d = std::make_unique<DaemonProcess>(tmp.sub("home"));
    d->start();
    repo = std::make_unique<GitRepo>(make_example_repo(tmp.sub("app"), "api-service", "main"));
  }

  // Creates a token with the admin token; returns its secret.
  std::string token(const std::string& name, const std::string& role, const std::string& ttl = "") {
    json body = {{"name", name}, {"role", role}};
    if (!ttl.empty()) {
      body["ttl"] = ttl;
    }
    auto [status, t] = d->api("POST", "/api/v1/tokens", body.dump());
    EXPECT_EQ(status, 201) << t.dump();
    return t.value("token", "");
  }

  std::pair<long, json> create_as(const std::string& tok, const std::string& branch,
                                  const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    if (branch != "main") {
      repo->checkout_new_branch(branch);
    }
    json body = {{"repo", repo->path()}, {"branch", branch}};
    return d->api_as(tok, "POST", "/api/v1/environments", body.dump(), headers);
  }

  std::pair<long, json> exec_as(const std::string& tok, const std::string& env) {
    return d->api_as(tok, "POST", "/api/v1/environments/" + env + "/exec", json{{"argv", {"echo", "ran"}}}.dump());
  }

  long raw_get_status(const std::string& path, const std::string& tok) {
    util::HttpRequest r;
    r.url = d->api_url() + path;
    r.timeout_ms = 5000;
    if (!tok.empty()) {
      r.headers = {{"Authorization", "Bearer " + tok}};
    }
    if (path == "/api/v1/events/stream") {
      r.on_data = [](std::string_view) { return false; }; // the status is all we need
    }
    auto resp = util::http_request(r);
    return resp ? resp->status : 0;
  }

  size_t env_count() {
    auto [status, body] = d->api("GET", "/api/v1/environments?all=true");
    EXPECT_EQ(status, 200);
    return body["environments"].size();
  }

  TempDir tmp;
  std::unique_ptr<DaemonProcess> d;
  std::unique_ptr<GitRepo> repo;
};

// The first start writes an admin token (0600) that the CLI on this machine finds by
// itself through the home, as it finds daemon.json.
TEST_F(SecurityAuthTest, FirstStartWritesAnAdminTokenTheCliUses) {
  std::string path = d->home() + "/admin.token";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string secret = d->admin_token();
  EXPECT_EQ(secret.size(), 4u + 64u) << "idp_ + 256 bits in hex";

  util::Command c;
  c.argv = {idp_binary(), "list", "--json"};
  c.env = {{"IDP_HOME", d->home()}, {"IDP_SERVER", d->api_url()}, {"NO_COLOR", "1"}};
  c.unset_env = {"IDP_TOKEN"};
  auto r = util::run(c);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 0) << r->err;

  // Without a readable token the CLI is refused, and says what to do.
  c.env = {{"IDP_HOME", tmp.sub("elsewhere")}, {"IDP_SERVER", d->api_url()}, {"NO_COLOR", "1"}};
  r = util::run(c);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_NE(r->err.find("IDP_TOKEN"), std::string::npos) << r->err;

  // A restart keeps the same token; the store never holds the secret itself.
  d->stop();
  d->start();
  EXPECT_EQ(d->admin_token(), secret);
  for (const char* f : {"state.db", "state.db-wal"}) {
    std::string bytes = util::read_file(d->home() + "/" + f).value_or("");
    EXPECT_EQ(bytes.find(secret), std::string::npos) << f;
  }
}

// No token, a bad one, a revoked one, an expired one: 401 everywhere, nothing changes.
TEST_F(SecurityAuthTest, MissingBadRevokedOrExpiredTokenIsRefusedEverywhere) {
  std::string revoked = token("gone", "admin");
  auto [list_status, list] = d->api("GET", "/api/v1/tokens");
  ASSERT_EQ(list_status, 200);
  std::string revoked_id;
  for (const auto& t : list["tokens"]) {
    EXPECT_FALSE(t.contains("token")) << "a secret is shown only when created";
    EXPECT_FALSE(t.contains("hash"));
    if (t["name"] == "gone") {
      revoked_id = t["id"];
    }
  }
  ASSERT_FALSE(revoked_id.empty());
  // Used once first, so the server has the token's record in memory when it is revoked.
  EXPECT_EQ(d->api_as(revoked, "GET", "/api/v1/environments").first, 200);
  EXPECT_EQ(d->api("DELETE", "/api/v1/tokens/" + revoked_id).first, 200);
  std::string expired = token("brief", "admin", "1s");
  ASSERT_TRUE(wait_until([&] { return d->api_as(expired, "GET", "/api/v1/environments").first == 401; }, 15000))
      << "a token with a 1s ttl stops working";

  const std::vector<std::pair<std::string, std::string>> callers = {
      {"no token", ""}, {"bad token", "idp_" + std::string(64, 'a')}, {"revoked", revoked}, {"expired", expired}};
  for (const auto& [who, tok] : callers) {
    SCOPED_TRACE(who);
    auto [c, cb] = create_as(tok, "main");
    EXPECT_EQ(c, 401) << cb.dump();
    EXPECT_EQ(cb.value("error", ""), "unauthorized");
    EXPECT_EQ(d->api_as(tok, "GET", "/api/v1/environments").first, 401);
    EXPECT_EQ(d->api_as(tok, "GET", "/api/v1/environments/preview-x").first, 401);
    EXPECT_EQ(d->api_as(tok, "GET", "/api/v1/events").first, 401);
    EXPECT_EQ(d->api_as(tok, "GET", "/api/v1/tokens").first, 401);
    EXPECT_EQ(exec_as(tok, "preview-x").first, 401);
    EXPECT_EQ(d->api_as(tok, "DELETE", "/api/v1/environments/preview-x").first, 401);
    EXPECT_EQ(d->api_as(tok, "POST", "/api/v1/tokens", json{{"name", "me"}, {"role", "admin"}}.dump()).first, 401);
    EXPECT_EQ(raw_get_status("/", tok), 401);
    EXPECT_EQ(raw_get_status("/metrics", tok), 401);
    EXPECT_EQ(raw_get_status("/api/v1/events/stream", tok), 401);
  }
  EXPECT_EQ(env_count(), 0u) << "nothing was created";
  EXPECT_EQ(raw_get_status("/healthz", ""), 200) << "health checks need no token";
  EXPECT_EQ(raw_get_status("/", d->admin_token()), 200);
  EXPECT_EQ(raw_get_status("/metrics", d->admin_token()), 200);
}

// Viewers read; developers act on what they own; admins on everything. The audit log
// names the token's identity, whatever X-Idp-Actor says.
TEST_F(SecurityAuthTest, RolesAndOwnersDecideWhoMayActOnAnEnvironment) {
  std::string viewer = token("vera", "viewer");
  std::string alice = token("alice", "developer");
  std::string bob = token("bob", "developer");
  std::string admin = d->admin_token();

  auto [vc, vcb] = create_as(viewer, "main");
  EXPECT_EQ(vc, 403) << vcb.dump();
  EXPECT_EQ(vcb.value("error", ""), "forbidden");
  EXPECT_EQ(d->api_as(viewer, "POST", "/api/v1/tokens", json{{"name", "x"}, {"role", "admin"}}.dump()).first, 403);
  EXPECT_EQ(d->api_as(alice, "GET", "/api/v1/tokens").first, 403) << "tokens are the admin's";

  auto [ac, acb] = create_as(alice, "feature/alice", {{"X-Idp-Actor", "mallory"}});
  ASSERT_EQ(ac, 202) << acb.dump();
  std::string env = acb["name"];
  EXPECT_EQ(acb["owner"], "alice");
  auto [other, ob] = d->api_as(alice, "POST", "/api/v1/environments",
                               json{{"repo", repo->path()}, {"branch", "main"}, {"owner", "bob"}}.dump());
  EXPECT_EQ(other, 403) << "only an admin creates for someone else: " << ob.dump();
  ASSERT_TRUE(d->wait_phase(env, "ready", 120000)) << d->env(env).dump();

  // Readers see it; nobody but its owner and the admin touches it.
  EXPECT_EQ(d->api_as(viewer, "GET", "/api/v1/environments/" + env).first, 200);
  EXPECT_EQ(exec_as(viewer, env).first, 403);
  EXPECT_EQ(d->api_as(viewer, "DELETE", "/api/v1/environments/" + env).first, 403);
  EXPECT_EQ(d->api_as(viewer, "GET", "/api/v1/environments/" + env + "/logs").first, 403);
  auto [be, beb] = exec_as(bob, env);
  EXPECT_EQ(be, 403) << beb.dump();
  EXPECT_NE(beb.value("message", "").find("alice"), std::string::npos) << beb.dump();
  EXPECT_EQ(d->api_as(bob, "DELETE", "/api/v1/environments/" + env).first, 403);
  EXPECT_EQ(d->api_as(bob, "GET", "/api/v1/environments/" + env + "/logs").first, 403);
  EXPECT_EQ(d->api_as(bob, "POST", "/api/v1/environments/" + env + "/extend", json{{"ttl", "2h"}}.dump()).first, 403);
  EXPECT_EQ(d->api_as(bob, "POST", "/api/v1/environments/" + env + "/unlock", "{}").first, 403);
  EXPECT_EQ(d->env(env).value("phase", ""), "ready") << "refused requests change nothing";

  auto [ae, aeb] = exec_as(alice, env);
  EXPECT_EQ(ae, 200) << aeb.dump();
  EXPECT_EQ(d->api_as(alice, "GET", "/api/v1/environments/" + env + "/logs").first, 200);
  auto [me, meb] = exec_as(admin, env);
  EXPECT_EQ(me, 200) << meb.dump();
  auto [md, mdb] = d->api_as(admin, "DELETE", "/api/v1/environments/" + env);
  EXPECT_EQ(md, 202) << mdb.dump();

  auto [es, events] = d->api("GET", "/api/v1/environments/" + env + "/events");
  ASSERT_EQ(es, 200);
  std::string create_actor, destroy_actor;
  for (const auto& e : events["events"]) {
    if (e["action"] == "create" && create_actor.empty()) {
      create_actor = e["actor"];
    }
    if (e["action"] == "destroy" && destroy_actor.empty()) {
      destroy_actor = e["actor"];
    }
  }
  EXPECT_EQ(create_actor.rfind("alice", 0), 0u) << "the token's identity, not the header: " << events.dump();
  EXPECT_EQ(destroy_actor.rfind("admin", 0), 0u) << events.dump();
}

// `metrics: public` lets a scraper in without a token; everything else still needs one.
TEST(SecurityAuthConfigTest, PublicMetricsNeedNoToken) {
  TempDir tmp("idp-sec-metrics");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "metrics: public\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  util::HttpRequest r;
  r.url = d.api_url() + "/metrics";
  auto m = util::http_request(r);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(d.api_as("", "GET", "/api/v1/environments").first, 401);
}
