// static-site on the local runtime: local.build writes dist/, Caddy serves it, unknown
// paths fall back to index.html with static.spa.
#include <gtest/gtest.h>

#include "templates_test_support.hpp"

using namespace idp;
using namespace idp::testing;

TEST_F(TemplatesTest, StaticSiteServesTheBuiltFilesWithSpaFallback) {
  auto d = make_daemon();
  GitRepo repo = make_example_repo(tmp.sub("site"), "static-site", "feature/site");
  auto validated = d->cli({"config", "validate", repo.path() + "/.idp/config.yml"});
  EXPECT_EQ(validated.exit_code, 0) << validated.out << validated.err;
  create(*d, repo, "feature/site");
  const std::string env = "preview-site";
  auto index = http(*d, env, "GET", "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("<h1>static-site demo</h1>"), std::string::npos) << index.body;
  EXPECT_EQ(index.body.find("{{built}}"), std::string::npos) << "the built page, not the source";
  auto js = http(*d, env, "GET", "/assets/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_NE(js.body.find("client route"), std::string::npos) << js.body;
  EXPECT_EQ(http(*d, env, "GET", "/assets/style.css").status, 200);
  auto route = http(*d, env, "GET", "/some/client/route");
  EXPECT_EQ(route.status, 200) << "SPA fallback";
  EXPECT_EQ(route.body, index.body);
  // dist/ is served, not the repository: the repository's build.js is not there, and a
  // missing file with an extension is a 404, not index.html (only page routes fall back).
  EXPECT_EQ(http(*d, env, "GET", "/build.js").status, 404);
  EXPECT_EQ(http(*d, env, "GET", "/assets/missing.js").status, 404);
  auto st = status(*d, env);
  EXPECT_EQ(st["outputs"]["kind"], "static");
  EXPECT_EQ(st["phase"], "ready");
  ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
  EXPECT_EQ(http(*d, env, "GET", "/").status, 404);
  EXPECT_EQ(d->stop(), 0);
}
