// The Terraform driver with the real terraform/tofu binary on the tf-test template
// (terraform_data only: offline, no provider). The S3-backend tests use s3rver and
// dynalite from npm, whose DynamoDB lock item survives a killed terraform.

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "drivers/terraform/terraform_driver.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::terraform {
namespace {

using idp::testing::TempDir;

std::string tf_binary() {
  if (auto p = util::find_executable("tofu")) {
    return *p;
  }
  if (auto p = util::find_executable("terraform")) {
    return *p;
  }
  return "";
}

#define IDP_REQUIRE_TERRAFORM()                                                                                        \
  do {                                                                                                                 \
    if (tf_binary().empty()) {                                                                                         \
      GTEST_SKIP() << "neither tofu nor terraform is on PATH";                                                         \
    }                                                                                                                  \
  } while (false)

class TestProgress final : public Progress {
public:
  void step(std::string_view what) override { steps.emplace_back(what); }
  void revision_status(core::RevisionStatus, std::string_view) override {}
  bool cancelled() const override { return cancel.load(); }
  const std::atomic<bool>* cancel_flag() const override { return &cancel; }
  std::atomic<bool> cancel{false};
  std::vector<std::string> steps;
};

DeploySpec tf_test_spec(const std::string& name, bool fail = false) {
  DeploySpec s;
  s.env.name = name;
  s.env.template_name = "tf-test";
  s.env.runtime = "terraform";
  s.env.owner = "alice@example.com";
  s.env.commit = "0123456789abcdef0123456789abcdef01234567";
  s.env.created_at = 1767225600000; // 2026-01-01T00:00:00Z
  s.env.expires_at = s.env.created_at + 7LL * 86400 * 1000;
  s.env.config_json = core::to_json(s.config).dump();
  s.template_values = {{"fail", fail}};
  return s;
}

std::unique_ptr<TerraformDriver> make_driver(const std::string& home,
                                             nlohmann::json options = nlohmann::json::object()) {
  DriverContext ctx;
  ctx.home = home;
  options["templates_dir"] = IDP_TF_TEMPLATES_DIR;
  options["binary"] = tf_binary();
  auto opts = TerraformOptions::parse(options);
  EXPECT_TRUE(opts.has_value()) << opts.error().message;
  return std::make_unique<TerraformDriver>(ctx, *opts);
}

std::string log_text(TerraformDriver& d, const core::Environment& env) {
  auto chunk = d.read_logs(env, {});
  std::string text;
  if (chunk) {
    for (const auto& l : chunk->lines) {
      text += l.stream + "\t" + l.text + "\n";
    }
  }
  return text;
}

// A terraform apply on the environment's own working directory that stops at its
// confirmation prompt, holding the state lock until killed or told "no".
class LockHolder {
public:
  LockHolder(TerraformDriver& d, const std::string& env, const std::map<std::string, std::string>& extra_env = {}) {
    std::string work = d.work_dir(env);
    m_out = work + "/../" + env + "-holder.out";
    int in[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    int out = ::open(m_out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    util::Command cmd;
    cmd.argv = {tf_binary(), "-chdir=" + work + "/src", "apply", "-no-color", "-lock-timeout=0s",
                "-var-file=" + work + "/terraform.tfvars.json",
                // A change, so that terraform asks for confirmation (holding the lock).
                "-var=expires_at=2030-01-01T00:00:00Z", "-var=fail=false"};
    cmd.env = extra_env;
    cmd.env["TF_DATA_DIR"] = work + "/data";
    util::SpawnOptions so;
    so.stdin_fd = in[0];
    so.stdout_fd = out;
    so.stderr_fd = out;
    so.detach = false;
    auto pid = util::spawn(cmd, so);
    EXPECT_TRUE(pid.has_value()) << pid.error().message;
    m_pid = pid ? *pid : 0;
    ::close(in[0]);
    ::close(out);
    m_stdin = in[1];
  }
  ~LockHolder() { kill9(); }

  // True once terraform asks for confirmation (it holds the lock by then).
  bool wait_holding(int timeout_ms) {
    return idp::testing::wait_until([&] { return output().find("Enter a value") != std::string::npos; }, timeout_ms,
                                    50);
  }
  std::string output() const { return util::read_file(m_out).value_or(""); }
  void kill9() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      util::wait_child(m_pid, 10000);
      m_pid = 0;
    }
    if (m_stdin >= 0) {
      ::close(m_stdin);
      m_stdin = -1;
    }
  }
  // Answers the prompt with "no": terraform cancels and releases the lock.
  void decline() {
    if (m_stdin >= 0) {
      ssize_t w = ::write(m_stdin, "no\n", 3);
      (void)w;
    }
    if (m_pid > 0) {
      util::wait_child(m_pid, 30000);
      m_pid = 0;
    }
  }

private:
  pid_t m_pid = 0;
  int m_stdin = -1;
  std::string m_out;
};

TEST(TerraformDriverTest, AppliesRecordsOutputsAndDestroysEverything) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  auto d = make_driver(tmp.sub("home"));
  ASSERT_TRUE(d->start({}).has_value());
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-basic");
  int64_t t0 = util::steady_ms();
  auto r = d->apply(spec, progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  std::printf("apply took %lld ms\n", static_cast<long long>(util::steady_ms() - t0));
  EXPECT_EQ(r->url, "http://tf-basic.tf-test.invalid");
  EXPECT_TRUE(r->outputs.contains("id"));
  EXPECT_EQ(r->outputs.value("expires_at", ""), "2026-01-08T00:00:00Z");
  EXPECT_EQ(r->outputs.value("endpoint", ""), r->url);

  // Only declared variables, the original created_at, no write into the repository.
  auto vars = nlohmann::json::parse(util::read_file(d->work_dir("tf-basic") + "/terraform.tfvars.json").value_or("{}"));
  EXPECT_EQ(vars.value("created_at", ""), "2026-01-01T00:00:00Z");
  EXPECT_EQ(vars.value("environment_name", ""), "tf-basic");
  EXPECT_FALSE(vars.contains("cpu"));
  EXPECT_FALSE(vars.contains("container_image"));
  EXPECT_FALSE(util::path_exists(std::string(IDP_TF_TEMPLATES_DIR) + "/tf-test/terraform/.terraform"));
  EXPECT_FALSE(util::path_exists(std::string(IDP_TF_TEMPLATES_DIR) + "/tf-test/terraform/terraform.tfstate"));

  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  std::string log = log_text(*d, spec.env);
  EXPECT_NE(log.find("terraform\tApply complete!"), std::string::npos) << log;

  // Idempotent: the same URL and id, nothing replaced.
  auto again = d->apply(spec, progress);
  ASSERT_TRUE(again.has_value()) << again.error().full_message();
  EXPECT_EQ(again->outputs["id"], r->outputs["id"]);

  t0 = util::steady_ms();
  auto destroyed = d->destroy(spec.env, progress);
  ASSERT_TRUE(destroyed.has_value()) << destroyed.error().full_message();
  std::printf("destroy took %lld ms\n", static_cast<long long>(util::steady_ms() - t0));
  EXPECT_FALSE(util::path_exists(d->work_dir("tf-basic")));
  obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::not_running);
  EXPECT_TRUE(d->destroy(spec.env, progress).has_value()); // idempotent
}

// Terraform and its providers get an allowlisted environment: the daemon's tokens and
// keys never reach them; AWS variables, PATH and the operator's env_allow names do.
TEST(TerraformDriverTest, TerraformSeesOnlyTheAllowlistedEnvironment) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf-env");
  // The binary is a wrapper that records the environment it was started with.
  std::string wrapper = tmp.sub("terraform-wrapper");
  ASSERT_TRUE(util::write_file_atomic(
                  wrapper, "#!/bin/sh\nenv > '" + tmp.sub("seen-env") + "'\nexec '" + tf_binary() + "' \"$@\"\n", 0755)
                  .has_value());
  ::setenv("IDP_GITHUB_TOKEN", "ghp_must_not_leak", 1);
  ::setenv("IDP_TEST_OPERATOR_VAR", "allowed-by-env_allow", 1);
  ::setenv("AWS_REGION", "eu-west-1", 1);
  auto opts = TerraformOptions::parse(
      {{"templates_dir", IDP_TF_TEMPLATES_DIR}, {"binary", wrapper}, {"env_allow", "IDP_TEST_OPERATOR_VAR"}});
  ASSERT_TRUE(opts.has_value()) << opts.error().message;
  DriverContext ctx;
  ctx.home = tmp.sub("home");
  TerraformDriver wrapped(ctx, *opts);
  ASSERT_TRUE(wrapped.start({}).has_value());
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-env");
  auto r = wrapped.apply(spec, progress);
  ::unsetenv("IDP_GITHUB_TOKEN");
  ::unsetenv("IDP_TEST_OPERATOR_VAR");
  ::unsetenv("AWS_REGION");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  std::string seen = util::read_file(tmp.sub("seen-env")).value_or("");
  ASSERT_NE(seen.find("TF_DATA_DIR="), std::string::npos) << seen;
  EXPECT_EQ(seen.find("ghp_must_not_leak"), std::string::npos) << seen;
  EXPECT_NE(seen.find("IDP_TEST_OPERATOR_VAR=allowed-by-env_allow"), std::string::npos) << seen;
  EXPECT_NE(seen.find("AWS_REGION=eu-west-1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\nHOME=" + wrapped.work_dir("tf-env") + "\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\nPATH="), std::string::npos) << seen;
  ASSERT_TRUE(wrapped.destroy(spec.env, progress).has_value());
}

// A secret ARN outside the operator's prefixes fails before terraform runs.
TEST(TerraformDriverTest, SecretArnOutsideTheAllowedPrefixesIsRefusedBeforeTerraformRuns) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf-arn");
  auto d = make_driver(tmp.sub("home"),
                       {{"secret_arn_prefixes", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/"}});
  ASSERT_TRUE(d->start({}).has_value());
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-arn");
  spec.config.secrets["STOLEN"] = "arn:aws:secretsmanager:eu-west-1:999999999999:secret:prod/db";
  auto planned = d->plan(spec);
  ASSERT_FALSE(planned.has_value());
  EXPECT_EQ(planned.error().code, ErrorCode::invalid_config);
  auto r = d->apply(spec, progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("\"STOLEN\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("secret:previews/"), std::string::npos) << r.error().message;
  EXPECT_FALSE(util::path_exists(d->work_dir("tf-arn") + "/data/terraform.tfstate"));
  // Inside the prefix it applies.
  spec.config.secrets["STOLEN"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/db";
  auto ok = d->apply(spec, progress);
  ASSERT_TRUE(ok.has_value()) << ok.error().full_message();
  ASSERT_TRUE(d->destroy(spec.env, progress).has_value());
}

TEST(TerraformDriverTest, SeveralEnvironmentsApplyAtOnce) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  auto d = make_driver(tmp.sub("home"));
  std::vector<std::thread> threads;
  std::vector<std::string> errors(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      TestProgress p;
      auto r = d->apply(tf_test_spec("tf-par-" + std::to_string(i)), p);
      if (!r) {
        errors[i] = r.error().full_message();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(errors[i], "") << i;
    auto obs = d->observe(tf_test_spec("tf-par-" + std::to_string(i)).env);
    ASSERT_TRUE(obs.has_value());
    EXPECT_EQ(obs->health, Health::healthy);
    TestProgress p;
    EXPECT_TRUE(d->destroy(tf_test_spec("tf-par-" + std::to_string(i)).env, p).has_value());
  }
}

TEST(TerraformDriverTest, FailedFirstApplyStillUnlocksAndDestroys) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  auto d = make_driver(tmp.sub("home"));
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-fail", true);
  auto r = d->apply(spec, progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent) << r.error().full_message();
  EXPECT_NE(r.error().message.find("apply failed on purpose"), std::string::npos) << r.error().message;
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::unhealthy) << obs->detail; // one resource, no successful apply

  auto u = d->unlock(spec.env);
  ASSERT_TRUE(u.has_value()) << u.error().full_message();
  EXPECT_NE(u->find("not locked"), std::string::npos) << *u;
  auto destroyed = d->destroy(spec.env, progress);
  ASSERT_TRUE(destroyed.has_value()) << destroyed.error().full_message();
  EXPECT_FALSE(util::path_exists(d->work_dir("tf-fail")));
}

TEST(TerraformDriverTest, LiveLockMakesApplyWaitThenFailWithConflict) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  auto d = make_driver(tmp.sub("home"), {{"lock_timeout_ms", 2000}});
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-live-lock");
  ASSERT_TRUE(d->apply(spec, progress).has_value());

  LockHolder holder(*d, "tf-live-lock");
  ASSERT_TRUE(holder.wait_holding(30000)) << holder.output();
  std::string info = util::read_file(d->work_dir("tf-live-lock") + "/state/.terraform.tfstate.lock.info").value_or("");
  std::string id = nlohmann::json::parse(info, nullptr, false).value("ID", "");
  ASSERT_FALSE(id.empty()) << info;

  int64_t t0 = util::steady_ms();
  auto r = d->apply(spec, progress);
  int64_t waited = util::steady_ms() - t0;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::conflict) << r.error().full_message();
  EXPECT_NE(r.error().message.find(id), std::string::npos) << r.error().message;
  EXPECT_GE(waited, 2000) << "apply must wait up to the lock timeout";

  // A local-state lock belongs to a live process: unlock says so instead of breaking it.
  auto u = d->unlock(spec.env);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, ErrorCode::conflict);
  EXPECT_NE(u.error().message.find(id), std::string::npos);

  holder.decline();
  auto again = d->apply(spec, progress);
  EXPECT_TRUE(again.has_value()) << again.error().full_message();
}

TEST(TerraformDriverTest, CancelStopsTerraformGracefully) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  auto d = make_driver(tmp.sub("home"), {{"lock_timeout_ms", 60000}});
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-cancel");
  ASSERT_TRUE(d->apply(spec, progress).has_value());
  LockHolder holder(*d, "tf-cancel");
  ASSERT_TRUE(holder.wait_holding(30000)) << holder.output();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    progress.cancel = true;
  });
  auto r = d->apply(spec, progress); // waits for the lock until cancelled
  canceller.join();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::cancelled) << r.error().full_message(); // not lock_timeout_ms's expiry
  holder.decline();
}

// The template directory the daemon's catalog resolved travels in the spec: the driver
// needs no lookup of its own (here its templates_dir is empty: without the spec's
// directory nothing is found), and destroy, which has no spec, uses the directory pinned
// at the apply.
TEST(TerraformDriverTest, TemplateDirOfTheSpecIsUsedAndPinnedForDestroy) {
  IDP_REQUIRE_TERRAFORM();
  TempDir tmp("idp-tf");
  std::string mine = tmp.sub("catalog/tf-test");
  std::filesystem::create_directories(mine);
  std::filesystem::copy(std::string(IDP_TF_TEMPLATES_DIR) + "/tf-test", mine, std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(mine + "/terraform/tests");
  std::string main_tf = util::read_file(mine + "/terraform/main.tf").value_or("");
  ASSERT_TRUE(util::write_file_atomic(mine + "/terraform/main.tf",
                                      main_tf + "\noutput \"flavour\" {\n  value = \"the catalog's\"\n}\n"));
  std::filesystem::create_directories(tmp.sub("empty"));
  DriverContext ctx;
  ctx.home = tmp.sub("home");
  auto opts =
      TerraformOptions::parse({{"templates_dir", tmp.sub("empty")}, {"templates_path", ""}, {"binary", tf_binary()}});
  ASSERT_TRUE(opts.has_value()) << opts.error().message;
  TerraformDriver d(ctx, *opts);
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-catalog");
  spec.template_dir = mine;
  auto planned = d.plan(spec);
  ASSERT_TRUE(planned.has_value()) << planned.error().full_message();
  auto r = d.apply(spec, progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->outputs.value("flavour", ""), "the catalog's") << r->outputs.dump();
  auto settings = nlohmann::json::parse(util::read_file(d.work_dir("tf-catalog") + "/settings.json").value_or("{}"));
  EXPECT_EQ(settings.value("template_dir", ""), util::absolute_path(mine));

  auto destroyed = d.destroy(spec.env, progress);
  ASSERT_TRUE(destroyed.has_value()) << destroyed.error().full_message();
  EXPECT_FALSE(util::path_exists(d.work_dir("tf-catalog")));

  // A spec naming a directory without a terraform/ module is a clear config error.
  DeploySpec bad = tf_test_spec("tf-catalog-bad");
  bad.template_dir = tmp.sub("catalog/nothing");
  auto refused = d.plan(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_config);
  EXPECT_NE(refused.error().message.find("has no terraform/ module"), std::string::npos) << refused.error().message;
}

// `idp unlock` initialises a working directory that is not yet initialised: never while an
// operation of the driver holds the environment (its init may be writing there). A fake
// terraform blocks in its first init, as a slow provider download would.
TEST(TerraformDriverTest, UnlockRefusesWhileAnOperationPreparesTheWorkDir) {
  TempDir tmp("idp-tf");
  std::string marks = tmp.sub("marks");
  std::filesystem::create_directories(marks);
  std::string fake = tmp.sub("fake-terraform");
  ASSERT_TRUE(
      util::write_file_atomic(fake,
                              "#!/bin/sh\n"
                              "case \"$*\" in\n"
                              "  *' init'*)\n"
                              "    echo 'Error acquiring the state lock'; echo 'Lock Info:'; echo '  ID: fake-lock-1'\n"
                              "    if [ ! -e '" +
                                  marks +
                                  "/in-init' ]; then\n"
                                  "      : > '" +
                                  marks +
                                  "/in-init'\n"
                                  "      while [ ! -e '" +
                                  marks +
                                  "/release' ]; do sleep 0.05; done\n"
                                  "    fi\n"
                                  "    exit 1 ;;\n"
                                  "  *force-unlock*) : > '" +
                                  marks +
                                  "/force-unlocked'; exit 0 ;;\n"
                                  "  *) exit 0 ;;\n"
                                  "esac\n",
                              0755));
  DriverContext ctx;
  ctx.home = tmp.sub("home");
  auto opts = TerraformOptions::parse({{"templates_dir", IDP_TF_TEMPLATES_DIR},
                                       {"binary", fake},
                                       {"backend", "s3"},
                                       {"state_bucket", "tfstate"},
                                       {"state_region", "us-east-1"}});
  ASSERT_TRUE(opts.has_value()) << opts.error().message;
  TerraformDriver d(ctx, *opts);
  DeploySpec spec = tf_test_spec("tf-busy");
  TestProgress progress;
  std::thread apply([&] { (void)d.apply(spec, progress); });
  // Whatever fails below, the fake init ends and the thread is joined.
  struct Release {
    std::string mark;
    std::thread& t;
    ~Release() {
      (void)util::write_file_atomic(mark, "");
      if (t.joinable()) {
        t.join();
      }
    }
  } release{marks + "/release", apply};
  // Blocked in init, and its lock error read into the log (the lines reach the log through
  // a pipe: they may come after the mark).
  ASSERT_TRUE(idp::testing::wait_until(
      [&] {
        return util::path_exists(marks + "/in-init") && log_text(d, spec.env).find("fake-lock-1") != std::string::npos;
      },
      30000));

  auto u = d.unlock(spec.env);
  ASSERT_FALSE(u.has_value()) << *u;
  EXPECT_EQ(u.error().code, ErrorCode::conflict);
  EXPECT_NE(u.error().message.find("an operation of this server"), std::string::npos) << u.error().message;
  EXPECT_FALSE(util::path_exists(marks + "/force-unlocked"));

  ASSERT_TRUE(util::write_file_atomic(marks + "/release", ""));
  apply.join();
  // Once the operation ended, unlock proceeds (init, then force-unlock of the lock in the log).
  auto after = d.unlock(spec.env);
  EXPECT_TRUE(util::path_exists(marks + "/force-unlocked") || !after.has_value());
}

// --- S3 backend against s3rver + dynalite ---

class Emulators {
public:
  // Installs s3rver and dynalite into IDP_TF_EMULATORS_DIR (once, under a file lock).
  static std::string install() {
    std::string dir = IDP_TF_EMULATORS_DIR;
    if (!util::ensure_dir(dir)) {
      return "cannot create " + dir;
    }
    auto lock = util::FileLock::acquire(dir + "/.install.lock");
    if (util::path_exists(dir + "/node_modules/.bin/s3rver") &&
        util::path_exists(dir + "/node_modules/.bin/dynalite")) {
      return "";
    }
    if (!util::find_executable("npm")) {
      return "npm is not installed";
    }
    util::Command cmd;
    cmd.argv = {"npm",       "install",      "--prefix",      dir, "--no-audit", "--no-fund",
                "--no-save", "s3rver@3.7.1", "dynalite@4.0.0"};
    util::RunOptions ro;
    ro.timeout_ms = 300000;
    ro.merge_stderr = true;
    auto r = util::run(cmd, ro);
    if (!r || !r->ok()) {
      return "npm install s3rver dynalite failed: " + (r ? util::tail_lines(r->out, 5) : r.error().message);
    }
    return "";
  }

  explicit Emulators(const std::string& data_dir) {
    std::string bin = std::string(IDP_TF_EMULATORS_DIR) + "/node_modules/.bin/";
    s3_port = util::find_free_port().value_or(0);
    ddb_port = util::find_free_port().value_or(0);
    util::ensure_dir(data_dir + "/s3");
    util::SpawnOptions so;
    so.detach = false;
    int out = ::open((data_dir + "/emulators.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    so.stdout_fd = out;
    so.stderr_fd = out;
    util::Command s3;
    s3.argv = {bin + "s3rver",   "--silent",           "-a",     "127.0.0.1", "-p", std::to_string(s3_port), "-d",
               data_dir + "/s3", "--configure-bucket", "tfstate"};
    util::Command ddb;
    ddb.argv = {bin + "dynalite", "--port", std::to_string(ddb_port)};
    if (auto p = util::spawn(s3, so)) {
      m_pids.push_back(*p);
    }
    if (auto p = util::spawn(ddb, so)) {
      m_pids.push_back(*p);
    }
    ::close(out);
    log_path = data_dir + "/emulators.log";
    ok = m_pids.size() == 2 &&
         idp::testing::wait_until([&] { return dynamodb("ListTables", nlohmann::json::object()).status == 200; }, 20000,
                                  100) &&
         idp::testing::wait_until([&] { return s3_get("/tfstate").status == 200; }, 20000, 100);
    if (ok) {
      auto created =
          dynamodb("CreateTable", {{"TableName", "locks"},
                                   {"AttributeDefinitions", {{{"AttributeName", "LockID"}, {"AttributeType", "S"}}}},
                                   {"KeySchema", {{{"AttributeName", "LockID"}, {"KeyType", "HASH"}}}},
                                   {"BillingMode", "PAY_PER_REQUEST"}});
      ok = created.status == 200 && idp::testing::wait_until(
                                        [&] {
                                          auto r = dynamodb("DescribeTable", {{"TableName", "locks"}});
                                          return r.body.find("\"ACTIVE\"") != std::string::npos;
                                        },
                                        20000, 100);
    }
  }
  ~Emulators() {
    for (pid_t p : m_pids) {
      ::kill(p, SIGKILL);
      util::wait_child(p, 5000);
    }
  }

  util::HttpResponse dynamodb(const std::string& op, const nlohmann::json& body) const {
    util::HttpRequest req;
    req.method = "POST";
    req.url = "http://127.0.0.1:" + std::to_string(ddb_port) + "/";
    req.headers = {{"X-Amz-Target", "DynamoDB_20120810." + op}, {"Content-Type", "application/x-amz-json-1.0"}};
    req.body = body.dump();
    req.aws_sigv4 = "aws:amz:us-east-1:dynamodb";
    req.userpwd = "S3RVER:S3RVER";
    return util::http_request(req).value_or(util::HttpResponse{});
  }
  // Anonymous reads (s3rver allows them).
  util::HttpResponse s3_get(const std::string& path) const {
    util::HttpRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(s3_port) + path;
    return util::http_request(req).value_or(util::HttpResponse{});
  }
  nlohmann::json options() const {
    return {{"backend", "s3"},
            {"state_bucket", "tfstate"},
            {"state_region", "us-east-1"},
            {"dynamodb_table", "locks"},
            {"s3_endpoint", "http://127.0.0.1:" + std::to_string(s3_port)},
            {"dynamodb_endpoint", "http://127.0.0.1:" + std::to_string(ddb_port)},
            {"lock_timeout_ms", 1000}};
  }

  bool ok = false;
  std::string log_path;
  int s3_port = 0;
  int ddb_port = 0;

private:
  std::vector<pid_t> m_pids;
};

class TerraformS3Test : public ::testing::Test {
protected:
  void SetUp() override {
    if (tf_binary().empty()) {
      GTEST_SKIP() << "neither tofu nor terraform is on PATH";
    }
    std::string why = Emulators::install();
    if (!why.empty()) {
      GTEST_SKIP() << "s3rver/dynalite unavailable: " << why;
    }
    // s3rver's fixed credentials; the driver and terraform read the standard variables.
    ::setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    m_emu = std::make_unique<Emulators>(m_tmp.sub("emu"));
    ASSERT_TRUE(m_emu->ok) << "the emulators did not come up: dynamodb ListTables "
                           << m_emu->dynamodb("ListTables", nlohmann::json::object()).status << ", s3 "
                           << m_emu->s3_get("/tfstate").status << "\n"
                           << util::read_file(m_emu->log_path).value_or("");
  }
  void TearDown() override { m_emu.reset(); }

  TempDir m_tmp{"idp-tf-s3"};
  std::unique_ptr<Emulators> m_emu;
};

TEST_F(TerraformS3Test, KilledApplyLeavesALockThatUnlockBreaks) {
  auto d = make_driver(m_tmp.sub("home"), m_emu->options());
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-s3-lock");
  int64_t t0 = util::steady_ms();
  auto first = d->apply(spec, progress);
  ASSERT_TRUE(first.has_value()) << first.error().full_message();
  std::printf("s3 apply took %lld ms\n", static_cast<long long>(util::steady_ms() - t0));
  const std::string key = "environments/tf-s3-lock/default/terraform.tfstate";
  EXPECT_EQ(m_emu->s3_get("/tfstate/" + key).status, 200);

  {
    LockHolder holder(*d, "tf-s3-lock");
    ASSERT_TRUE(holder.wait_holding(30000)) << holder.output();
    holder.kill9(); // SIGKILL: the DynamoDB lock item stays
  }
  auto item = m_emu->dynamodb("GetItem", {{"TableName", "locks"}, {"Key", {{"LockID", {{"S", "tfstate/" + key}}}}}});
  ASSERT_NE(item.body.find("\"Info\""), std::string::npos) << item.body;

  auto blocked = d->apply(spec, progress);
  ASSERT_FALSE(blocked.has_value());
  EXPECT_EQ(blocked.error().code, ErrorCode::conflict) << blocked.error().full_message();
  std::string id = parse_lock_id(log_text(*d, spec.env));
  ASSERT_FALSE(id.empty());
  EXPECT_NE(blocked.error().message.find(id), std::string::npos);

  auto u = d->unlock(spec.env);
  ASSERT_TRUE(u.has_value()) << u.error().full_message();
  EXPECT_NE(u->find("broke state lock"), std::string::npos) << *u;
  EXPECT_NE(u->find(id), std::string::npos) << *u << " / id from the log: " << id;

  auto after = d->apply(spec, progress);
  ASSERT_TRUE(after.has_value()) << after.error().full_message();
  auto again = d->unlock(spec.env);
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->find("not locked"), std::string::npos) << *again;

  ASSERT_TRUE(d->destroy(spec.env, progress).has_value());
  EXPECT_EQ(m_emu->s3_get("/tfstate/" + key).status, 404);
  auto digest =
      m_emu->dynamodb("GetItem", {{"TableName", "locks"}, {"Key", {{"LockID", {{"S", "tfstate/" + key + "-md5"}}}}}});
  EXPECT_EQ(digest.body.find("\"Item\""), std::string::npos) << digest.body;
  EXPECT_FALSE(util::path_exists(d->work_dir("tf-s3-lock")));
  // The same name again: no stale digest in the way.
  ASSERT_TRUE(d->apply(spec, progress).has_value());
  ASSERT_TRUE(d->destroy(spec.env, progress).has_value());
}

TEST_F(TerraformS3Test, UnlockWorksForAnEnvironmentWhoseFirstApplyFailed) {
  auto d = make_driver(m_tmp.sub("home"), m_emu->options());
  TestProgress progress;
  DeploySpec spec = tf_test_spec("tf-s3-first", true);
  auto failed = d->apply(spec, progress);
  ASSERT_FALSE(failed.has_value());
  {
    LockHolder holder(*d, "tf-s3-first");
    ASSERT_TRUE(holder.wait_holding(30000)) << holder.output();
    holder.kill9();
  }
  auto u = d->unlock(spec.env); // no outputs, no successful apply: still found and broken
  ASSERT_TRUE(u.has_value()) << u.error().full_message();
  EXPECT_NE(u->find("broke state lock"), std::string::npos) << *u;
  ASSERT_TRUE(d->destroy(spec.env, progress).has_value());
}

} // namespace
} // namespace idp::drivers::terraform
