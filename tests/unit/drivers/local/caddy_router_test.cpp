#include "drivers/local/caddy_router.hpp"

#include <csignal>
#include <gtest/gtest.h>

#include "local_test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;
using idp::testing::wait_until;
using testing::get_via_router;
using testing::status_via_router;

// A tiny upstream: node answering every request with `body`.
class Upstream {
public:
  explicit Upstream(const std::string& body) {
    port = *util::find_free_port();
    util::Command c;
    c.argv = {"node", "-e",
              "require('http').createServer((q,s)=>s.end(process.argv[1])).listen(Number(process.argv[2]),'127.0.0.1')",
              body, std::to_string(port)};
    pid = *util::spawn(c, {});
    EXPECT_TRUE(wait_until([&] { return testing::http_get("http://127.0.0.1:" + std::to_string(port) + "/").has_value(); },
                           10000));
  }
  ~Upstream() { util::terminate_group(pid, 2000); }
  int port = 0;
  pid_t pid = 0;
};

struct RouterFixture {
  TempDir home;
  RouterConfig cfg;
  std::unique_ptr<CaddyRouter> router;

  RouterFixture() {
    cfg.dir = home.sub("router");
    cfg.port = *util::find_free_port();
    cfg.home_id = "t" + util::random_hex(5);
    router = std::make_unique<CaddyRouter>(cfg);
  }
};

int routes_with_id(const RouterFixture& f, const std::string& id) {
  util::HttpRequest r;
  r.url = "http://localhost/config/apps/http/servers/idp/routes";
  r.unix_socket = f.cfg.dir + "/admin.sock";
  auto resp = util::http_request(r);
  if (!resp) {
    return -1;
  }
  int n = 0;
  for (const auto& route : nlohmann::json::parse(resp->body)) {
    n += route.value("@id", "") == id;
  }
  return n;
}

TEST(CaddyRouterTest, UnknownHostGetsCatchAll404) {
  RouterFixture f;
  ASSERT_TRUE(f.router->start({}));
  auto r = get_via_router(f.cfg.port, "nothing", "/");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "no preview environment at this address\n");
  EXPECT_TRUE(util::path_exists(f.cfg.dir + "/caddy.log"));
  EXPECT_TRUE(util::path_exists(f.cfg.dir + "/admin.sock")) << "admin API on a unix socket";
}

TEST(CaddyRouterTest, SetRouteIsIdempotentAndSwitchesUpstream) {
  RouterFixture f;
  ASSERT_TRUE(f.router->start({}));
  Upstream one("one");
  Upstream two("two");
  ASSERT_TRUE(f.router->set_route({"app", one.port}));
  ASSERT_TRUE(f.router->set_route({"app", one.port}));
  EXPECT_EQ(routes_with_id(f, "idp-env-app"), 1) << "no duplicate @id after a repeated set";
  EXPECT_EQ(get_via_router(f.cfg.port, "app", "/")->body, "one");
  ASSERT_TRUE(f.router->set_route({"app", two.port}));
  EXPECT_EQ(get_via_router(f.cfg.port, "app", "/")->body, "two");
  EXPECT_EQ(routes_with_id(f, "idp-env-app"), 1);
  EXPECT_EQ(status_via_router(f.cfg.port, "other", "/"), 404);
}

TEST(CaddyRouterTest, RemoveRouteIsIdempotent) {
  RouterFixture f;
  Upstream one("one");
  ASSERT_TRUE(f.router->start({{"app", one.port}}));
  EXPECT_EQ(get_via_router(f.cfg.port, "app", "/")->body, "one") << "routes given to start() are served";
  ASSERT_TRUE(f.router->remove_route("app"));
  EXPECT_EQ(status_via_router(f.cfg.port, "app", "/"), 404);
  ASSERT_TRUE(f.router->remove_route("app"));
  ASSERT_TRUE(f.router->remove_route("never-there"));
  EXPECT_EQ(routes_with_id(f, "idp-env-app"), 0);
}

TEST(CaddyRouterTest, StaticRouteServesFilesWithSpaFallback) {
  RouterFixture f;
  ASSERT_TRUE(util::ensure_dir(f.home.sub("site")));
  ASSERT_TRUE(util::write_file_atomic(f.home.sub("site/index.html"), "<h1>home</h1>"));
  ASSERT_TRUE(util::write_file_atomic(f.home.sub("site/app.js"), "js"));
  ASSERT_TRUE(f.router->start({}));
  RouteTarget spa;
  spa.env = "site";
  spa.static_root = f.home.sub("site");
  spa.spa = true;
  ASSERT_TRUE(f.router->set_route(spa));
  EXPECT_EQ(get_via_router(f.cfg.port, "site", "/app.js")->body, "js");
  EXPECT_EQ(get_via_router(f.cfg.port, "site", "/deep/link")->body, "<h1>home</h1>");
  spa.spa = false;
  ASSERT_TRUE(f.router->set_route(spa));
  EXPECT_EQ(status_via_router(f.cfg.port, "site", "/deep/link"), 404);
  EXPECT_EQ(get_via_router(f.cfg.port, "site", "/")->body, "<h1>home</h1>");
}

TEST(CaddyRouterTest, RestartsCaddyWithRoutesAfterItDies) {
  RouterFixture f;
  Upstream one("one");
  ASSERT_TRUE(f.router->start({}));
  ASSERT_TRUE(f.router->set_route({"app", one.port}));
  pid_t first = f.router->pid();
  ASSERT_GT(first, 0);
  ::kill(first, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return f.router->pid() != first && f.router->pid() > 0; }, 20000));
  ASSERT_TRUE(wait_until([&] { return status_via_router(f.cfg.port, "app", "/") == 200; }, 20000));
  EXPECT_EQ(get_via_router(f.cfg.port, "app", "/")->body, "one");
  EXPECT_GE(f.router->restarts(), 1);
}

TEST(CaddyRouterTest, StartKillsStaleCaddyOfTheSameHome) {
  RouterFixture f;
  // Stands in for a Caddy that outlived its daemon: any process with the home's marker.
  util::Command c;
  c.argv = {"sleep", "600"};
  c.env = {{"IDP_ROUTER_HOME_ID", f.cfg.home_id}};
  pid_t stale = *util::spawn(c, {});
  ASSERT_TRUE(f.router->start({}));
  EXPECT_TRUE(wait_until([&] { return !util::process_alive(stale); }, 5000));
}

TEST(CaddyRouterTest, StopEndsCaddyAndIsIdempotent) {
  RouterFixture f;
  ASSERT_TRUE(f.router->start({}));
  pid_t pid = f.router->pid();
  f.router->stop();
  EXPECT_FALSE(util::process_alive(pid));
  EXPECT_EQ(f.router->pid(), 0);
  f.router->stop();
  EXPECT_EQ(status_via_router(f.cfg.port, "x", "/"), -1);
}

TEST(CaddyRouterTest, PortInUseFailsStartWithCaddysReason) {
  RouterFixture f;
  RouterFixture g;
  g.cfg.port = f.cfg.port;
  g.router = std::make_unique<CaddyRouter>(g.cfg);
  ASSERT_TRUE(f.router->start({}));
  auto r = g.router->start({});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("already in use"), std::string::npos) << r.error().message;
  EXPECT_EQ(g.router->pid(), 0);
}

TEST(CaddyRouterTest, LongHomeFallsBackToATcpAdminPort) {
  TempDir home;
  RouterConfig cfg;
  // sun_path holds 108 bytes: a deeper home cannot have its admin socket there.
  cfg.dir = home.sub(std::string(100, 'd') + "/router");
  cfg.port = *util::find_free_port();
  cfg.home_id = "t" + util::random_hex(5);
  CaddyRouter router(cfg);
  Upstream one("one");
  ASSERT_TRUE(router.start({}));
  EXPECT_FALSE(util::path_exists(cfg.dir + "/admin.sock"));
  ASSERT_TRUE(router.set_route({"app", one.port}));
  EXPECT_EQ(get_via_router(cfg.port, "app", "/")->body, "one");
  ASSERT_TRUE(router.remove_route("app"));
  EXPECT_EQ(status_via_router(cfg.port, "app", "/"), 404);
}

} // namespace
} // namespace idp::drivers::local
