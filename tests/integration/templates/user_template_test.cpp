// Templates anyone can add: a template directory dropped on IDP_TEMPLATES_PATH while the
// daemon runs is listed, validates configs with its own field rules and deploys, with no
// rebuild and no restart.
#include <gtest/gtest.h>

#include <cstdlib>

#include "templates_test_support.hpp"
#include "util/fs.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

TEST_F(TemplatesTest, TemplateAddedAtRunTimeIsUsableWithoutRestart) {
  std::string dir = tmp.sub("team-templates");
  ASSERT_TRUE(util::ensure_dir(dir));
  ::setenv("IDP_TEMPLATES_PATH", dir.c_str(), 1); // the daemon inherits it
  auto d = make_daemon();
  ::unsetenv("IDP_TEMPLATES_PATH");
  pid_t daemon_pid = d->pid();

  auto before = d->cli({"templates", "list", "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.out.find("team-api"), std::string::npos);

  // A team's template: a web service whose port must be in the team's range.
  ASSERT_TRUE(util::ensure_dir(dir + "/team-api"));
  ASSERT_TRUE(util::write_file_atomic(dir + "/team-api/template.json", R"json({
    "name": "team-api",
    "description": "The payments team's HTTP service (ports 3000-3999)",
    "components": ["web"],
    "runtimes": ["local"],
    "fields": {
      "container_port": {"type": "integer", "required": true, "minimum": 3000, "maximum": 3999,
                         "description": "port in the team's range"},
      "health_check_path": {"type": "string", "default": "/", "pattern": "^/health",
                            "description": "must be a /health endpoint"}
    },
    "outputs": {"endpoint": "URL of the environment"},
    "estimated_cost": "free locally"
  })json"));

  auto list = d->cli({"templates", "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json all = json::parse(list.out, nullptr, false);
  ASSERT_TRUE(all.is_array()) << list.out;
  bool listed = false;
  for (const auto& t : all) {
    if (t["name"] == "team-api") {
      listed = true;
      EXPECT_EQ(t["builtin"], false);
      EXPECT_EQ(t["components"], json::array({"web"}));
    }
  }
  EXPECT_TRUE(listed) << list.out;
  auto show = d->cli({"templates", "show", "team-api"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("container_port"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("port in the team's range"), std::string::npos) << show.out;

  // Its own field rule is enforced...
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "feature/team");
  repo.write_file(".idp/config.yml", "template: team-api\ncontainer_port: 80\nhealth_check_path: /health\n"
                                     "local:\n  start: \"node server.js\"\n");
  repo.commit("team template, wrong port");
  auto refused = d->cli({"create", "--repo", repo.path(), "--branch", "feature/team"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("container_port"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("3000"), std::string::npos) << refused.err;

  // ...and a config that follows it deploys.
  repo.write_file(".idp/config.yml", "template: team-api\ncontainer_port: 3000\nhealth_check_path: /health\n"
                                     "local:\n  start: \"node server.js\"\n");
  repo.commit("team template");
  // The refused config left a failed environment tracking the branch: redeploy it.
  auto redeployed = d->cli({"redeploy", "preview-team", "--timeout", "120s"});
  ASSERT_EQ(redeployed.exit_code, 0) << redeployed.err << d->log();
  EXPECT_EQ(http(*d, "preview-team", "GET", "/health").status, 200);
  json st = status(*d, "preview-team");
  EXPECT_EQ(st["template"], "team-api");
  EXPECT_EQ(st["phase"], "ready");
  EXPECT_EQ(d->pid(), daemon_pid) << "no restart";
  ASSERT_EQ(d->cli({"destroy", "preview-team", "--yes"}).exit_code, 0);
  EXPECT_EQ(d->stop(), 0);
}
