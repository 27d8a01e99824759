// The Terraform runtime through the whole product: `idp serve` with the terraform driver,
// `idp create --runtime terraform` on the tf-test template, logs, unlock, destroy.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;

TEST(TerraformDaemonTest, CreateLogsUnlockDestroyThroughTheServer) {
  if (!util::find_executable("tofu") && !util::find_executable("terraform")) {
    GTEST_SKIP() << "neither tofu nor terraform is installed";
  }
  TempDir tmp("idp-tf-daemon");
  (void)util::ensure_dir(tmp.sub("home"));
  GitRepo repo(tmp.sub("app"));
  repo.write_file(".idp/config.yml", "template: tf-test\nttl: 2h\n");
  repo.commit("tf-test app");
  repo.checkout_new_branch("feature/infra");
  DaemonProcess d(tmp.sub("home"));
  d.start();

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/infra", "--runtime", "terraform"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  EXPECT_EQ(created.out, "http://preview-infra.tf-test.invalid\n") << "the URL is the template's endpoint output";
  auto env = d.env("preview-infra");
  EXPECT_EQ(env["runtime"], "terraform");
  EXPECT_EQ(env["phase"], "ready");
  EXPECT_TRUE(env["outputs"]["id"].is_string()) << env.dump(2);
  ASSERT_TRUE(util::is_directory(d.home() + "/terraform/preview-infra"));
  // Telemetry (issue 14): the deploy's phases, terraform's own among them.
  std::vector<std::string> phases;
  for (const auto& p : env["last_deploy"]["phases"]) {
    phases.push_back(p["phase"]);
  }
  EXPECT_EQ(phases, (std::vector<std::string>{"queued", "fetch", "resolve", "prepare", "init", "apply", "output"}))
      << env.dump(2);
  auto status = d.cli({"status", "preview-infra"});
  EXPECT_NE(status.out.find(" init "), std::string::npos) << status.out;

  auto logs = d.cli({"logs", "preview-infra"});
  EXPECT_NE(logs.out.find("[terraform]"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("Apply complete!"), std::string::npos) << logs.out;

  auto unlock = d.cli({"unlock", "preview-infra", "--yes"});
  EXPECT_EQ(unlock.exit_code, 0) << unlock.err;
  EXPECT_NE(unlock.out.find("not locked"), std::string::npos) << unlock.out;

  auto destroyed = d.cli({"destroy", "preview-infra", "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err;
  // The progress names the phase once (the reconciler's message is the phase itself).
  EXPECT_EQ(destroyed.err.find("destroying: destroying"), std::string::npos) << destroyed.err;
  EXPECT_FALSE(util::path_exists(d.home() + "/terraform/preview-infra")) << "no state or work dir left";
  EXPECT_EQ(d.env("preview-infra")["phase"], "destroyed");
}
