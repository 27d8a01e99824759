// Push a branch → an environment with its own URL; push again → the new commit is served and
// the expiry moves out; delete the branch → torn down. By polling and by signed webhooks.
#include <gtest/gtest.h>
#include <map>

#include "fakes/fake_github.hpp"
#include "integration/gitops/gitops_test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

util::Millis expires_of(const json& env) {
  return util::parse_iso8601(env["expires_at"].get<std::string>()).value_or(0);
}

// The API shows times to the second: make sure the next sync happens in a later second.
void next_second() {
  int64_t now_s = util::SystemClock().now_ms() / 1000;
  wait_until([&] { return util::SystemClock().now_ms() / 1000 > now_s; }, 2000, 10);
}

size_t count_events(const json& events, const std::string& action, const std::string& needle = "") {
  size_t n = 0;
  for (const auto& e : events) {
    if (e["action"] == action && e["reason"].get<std::string>().find(needle) != std::string::npos) {
      n += 1;
    }
  }
  return n;
}

} // namespace

TEST(GitopsLifecycleTest, PollingCreatesRedeploysAndDestroys) {
  GitopsRig rig("idp-gitops-poll", {.poll = true, .webhooks = false});
  rig.start();
  std::string c1 = rig.commit_version("feature/poll", "v1");
  std::string name = rig.wait_env("feature/poll", 30000);
  ASSERT_EQ(name, "preview-poll") << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  json root = rig.app_root(name);
  ASSERT_TRUE(root.is_object());
  EXPECT_EQ(root["version"], "v1");
  util::Millis expires1 = expires_of(rig.daemon->env(name));

  next_second();
  std::string c2 = rig.commit_version("feature/poll", "v2");
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->env(name).dump(2);
  EXPECT_EQ(rig.app_root(name)["version"], "v2") << "the new commit is served";
  EXPECT_GT(expires_of(rig.daemon->env(name)), expires1) << "a push moves the expiry out";
  json events = rig.events(name);
  EXPECT_EQ(count_events(events, "create"), 1u);
  EXPECT_EQ(count_events(events, "deploy", short_sha(c2)), 1u);
  for (const auto& e : events) {
    if (e["action"] == "create" || e["action"] == "deploy") {
      EXPECT_EQ(e["actor"], "poller") << e.dump();
    }
  }
  auto pids = rig.env_processes(name);
  EXPECT_FALSE(pids.empty());

  rig.delete_branch("feature/poll");
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 60000)) << rig.daemon->env(name).dump(2);
  EXPECT_TRUE(rig.env_processes(name).empty()) << "no process left";
  for (pid_t p : pids) {
    EXPECT_FALSE(util::process_alive(p));
  }
  EXPECT_EQ(rig.daemon->get_via_router(name, "/").first, 404) << "the URL no longer reaches the app";
  EXPECT_EQ(count_events(rig.events(name), "destroy", "branch deleted"), 1u);
}

TEST(GitopsLifecycleTest, SignedWebhooksCreateRedeployAndDestroy) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-hook", {.poll = false});
  rig.start();
  std::string c1 = rig.commit_version("feature/hook", "v1");
  auto [s1, b1] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/hook", k_zero_commit, c1));
  ASSERT_EQ(s1, 202) << b1.dump();
  EXPECT_EQ(b1["status"], "queued");
  std::string name = rig.wait_env("feature/hook", 30000);
  ASSERT_EQ(name, "preview-hook") << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  EXPECT_EQ(rig.app_root(name)["version"], "v1");
  json env = rig.daemon->env(name);
  EXPECT_EQ(env["owner"], "Codertocat") << "the sender of the (example) push";
  util::Millis expires1 = expires_of(env);

  // The PR is opened: the same commit, now with its number (no redeploy).
  auto [s2, b2] =
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "opened", 42, "feature/hook", c1));
  ASSERT_EQ(s2, 202) << b2.dump();
  ASSERT_TRUE(wait_until([&] { return rig.daemon->env(name)["pr_number"] == 42; }, 30000));
  EXPECT_EQ(rig.revisions(name).size(), 1u);

  next_second();
  std::string c2 = rig.commit_version("feature/hook", "v2");
  auto [s3, b3] =
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "synchronize", 42, "feature/hook", c2));
  ASSERT_EQ(s3, 202) << b3.dump();
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->env(name).dump(2);
  EXPECT_EQ(rig.app_root(name)["version"], "v2");
  EXPECT_GT(expires_of(rig.daemon->env(name)), expires1);

  // A redelivery of the same delivery id changes nothing.
  json again = push_payload(rig.payload_repo(), "feature/hook", c1, c2);
  EXPECT_EQ(rig.webhook("push", again, std::nullopt, "delivery-1").first, 202);
  auto [s4, b4] = rig.webhook("push", again, std::nullopt, "delivery-1");
  EXPECT_EQ(s4, 200);
  EXPECT_EQ(b4["status"], "duplicate");

  auto pids = rig.env_processes(name);
  rig.delete_branch("feature/hook");
  auto [s5, b5] = rig.webhook("push", push_deleted_payload(rig.payload_repo(), "feature/hook", c2));
  ASSERT_EQ(s5, 202) << b5.dump();
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 60000)) << rig.daemon->env(name).dump(2);
  EXPECT_TRUE(rig.env_processes(name).empty());
  for (pid_t p : pids) {
    EXPECT_FALSE(util::process_alive(p));
  }
  EXPECT_EQ(rig.daemon->get_via_router(name, "/").first, 404);

  // /metrics counts the branch work the deliveries queued (issue 14), at the default log
  // level too: the push, the pull request's two, the redelivery's first copy, the removal.
  std::map<std::string, double> samples;
  auto scrape = [&] {
    util::HttpRequest r;
    r.url = rig.daemon->api_url() + "/metrics";
    r.headers = {rig.daemon->admin_auth_header()};
    auto resp = util::http_request(r);
    samples = resp && resp->status == 200 ? prometheus_samples(resp->body) : std::map<std::string, double>{};
    return samples["idp_branch_work_total{outcome=\"done\"}"] >= 1 && samples["idp_branch_work_received_total"] >= 5;
  };
  EXPECT_TRUE(wait_until(scrape, 30000)) << samples["idp_branch_work_received_total"];
  EXPECT_EQ(samples["idp_branch_work_total{outcome=\"failed\"}"], 0) << rig.daemon->log();
}

TEST(GitopsLifecycleTest, MissingOrWrongSignatureChangesNothing) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-401", {.poll = false});
  rig.start();
  std::string c1 = rig.commit_version("feature/unsigned", "v1");
  json push = push_payload(rig.payload_repo(), "feature/unsigned", k_zero_commit, c1);
  auto [missing, mb] = rig.webhook("push", push, std::string(""));
  EXPECT_EQ(missing, 401) << mb.dump();
  EXPECT_EQ(mb["error"], "unauthorized");
  auto [wrong, wb] = rig.webhook("push", push, std::string("guessed"));
  EXPECT_EQ(wrong, 401) << wb.dump();
  auto [tamper, tb] = rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "closed", 1, "main", c1),
                                  std::string("guessed"));
  EXPECT_EQ(tamper, 401);
  // A valid request proves the server is listening and acting: only unsigned ones were refused.
  auto [ping, pb] = rig.webhook("ping", ping_payload(rig.payload_repo()));
  EXPECT_EQ(ping, 200);
  EXPECT_EQ(pb["status"], "pong");
  EXPECT_TRUE(rig.env_of("feature/unsigned", true).is_null()) << "no environment";
  EXPECT_TRUE(rig.all_events().empty()) << "no event: " << rig.all_events().dump();
  EXPECT_EQ(rig.daemon->log().find(rig.secret), std::string::npos) << "the secret is never logged";
}

TEST(GitopsLifecycleTest, OversizedWebhookIs413Json) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-413", {.poll = false});
  rig.start();
  json push = push_payload(rig.payload_repo(), "feature/big", k_zero_commit, std::string(40, 'a'));
  push["padding"] = std::string(2 * 1024 * 1024, 'x');
  auto [status, body] = rig.webhook("push", push);
  EXPECT_EQ(status, 413);
  ASSERT_TRUE(body.is_object()) << body.dump();
  EXPECT_EQ(body["error"], "too_large");
  EXPECT_TRUE(rig.all_events().empty());
}

// A webhook answered 202, then the daemon dies before acting on it: the startup sync
// (git ls-remote of every watched repository) finds the push.
TEST(GitopsLifecycleTest, APushAcceptedJustBeforeACrashIsNotLost) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-crash", {.poll = false});
  rig.start();
  std::string c1 = rig.commit_version("feature/crash", "v1");
  {
    // Stall the daemon's git fetches so the accepted work cannot run before the crash.
    (void)util::ensure_dir(rig.tmp.sub("home") + "/git");
    auto lock = util::FileLock::acquire(rig.mirror_lock_path());
    ASSERT_TRUE(lock);
    auto [status, body] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/crash", k_zero_commit, c1));
    ASSERT_EQ(status, 202) << body.dump();
    rig.daemon->kill9();
  }
  rig.daemon->start(); // webhooks only (poll: false): nothing but the startup sync can find it
  std::string name = rig.wait_env("feature/crash", 30000);
  ASSERT_EQ(name, "preview-crash") << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->env(name).dump(2);
  json events = rig.events(name);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["actor"], "startup");
  // And a restart with nothing new does not touch it.
  size_t before = rig.events(name).size();
  rig.restart();
  EXPECT_TRUE(rig.wait_ready_at(name, c1, 30000));
  json after = rig.events(name);
  for (size_t i = before; i < after.size(); ++i) {
    EXPECT_NE(after[i]["actor"], "startup") << "the startup sync repeats nothing: " << after[i].dump();
  }
}

TEST(GitopsLifecycleTest, DashboardMarkdownListsTheEnvironments) {
  GitopsRig rig("idp-gitops-dash", {.poll = true, .webhooks = false, .extra_flags = {"--reaper-interval", "45s"}});
  rig.start();
  std::string c1 = rig.commit_version("feature/dash", "v1");
  std::string name = rig.wait_env("feature/dash", 30000);
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000));
  std::string file = rig.tmp.sub("ENVIRONMENTS.md");
  auto r = rig.daemon->cli({"dashboard", "--markdown", file, "--reaper-interval", "45s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto md = util::read_file(file);
  ASSERT_TRUE(md);
  EXPECT_NE(md->find("**1 active environment(s)**"), std::string::npos) << *md;
  EXPECT_NE(md->find("| `preview-dash` | `api-service` |"), std::string::npos) << *md;
  EXPECT_NE(md->find("runs every 45 seconds"), std::string::npos) << *md;
  auto out = rig.daemon->cli({"dashboard", "--markdown"});
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_NE(out.out.find("# Active Preview Environments"), std::string::npos);
  auto url = rig.daemon->cli({"dashboard"}); // without --markdown: the web dashboard's URL
  EXPECT_EQ(url.exit_code, 0) << url.err;
  EXPECT_NE(url.out.find(rig.daemon->api_url()), std::string::npos) << url.out;
}

// With a github_token, GitHub hears about every deploy: commit statuses with the URL and
// one PR comment edited in place (against a local fake of the GitHub REST API).
TEST(GitopsLifecycleTest, GithubIsToldAboutDeploys) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  FakeGitHub github;
  const std::string token = "ghp_integration0123456789TOKEN";
  GitopsRig rig("idp-gitops-notify", {.poll = false, .github_api_url = github.url(), .github_token = token});
  rig.start();
  std::string c1 = rig.commit_version("feature/notify", "v1");
  ASSERT_EQ(
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "opened", 12, "feature/notify", c1)).first,
      202);
  std::string name = rig.wait_env("feature/notify", 30000);
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->log();
  std::string url = rig.daemon->env(name)["url"];
  auto status_states = [&](const std::string& sha) {
    std::vector<std::string> states;
    for (const auto& r : github.requests("POST", "/repos/idp-tests/app/statuses/" + sha)) {
      states.push_back(json::parse(r.body)["state"]);
    }
    return states;
  };
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = status_states(c1);
        return !s.empty() && s.back() == "success";
      },
      30000))
      << rig.daemon->log();
  auto posts = github.requests("POST", "/repos/idp-tests/app/statuses/" + c1);
  for (const auto& p : posts) { // "pending" only when the notifier looked while it deployed
    std::string state = json::parse(p.body)["state"];
    EXPECT_TRUE(state == "pending" || state == "success") << state;
  }
  EXPECT_EQ(json::parse(posts.back().body)["target_url"], url);
  EXPECT_EQ(posts.back().headers.at("authorization"), "Bearer " + token);
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = github.comments(12);
        return c.size() == 1 && c[0].body.find(url) != std::string::npos;
      },
      30000));

  std::string c2 = rig.commit_version("feature/notify", "v2");
  ASSERT_EQ(
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "synchronize", 12, "feature/notify", c2))
          .first,
      202);
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000));
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = status_states(c2);
        auto c = github.comments(12);
        return !s.empty() && s.back() == "success" && c.size() == 1 &&
               c[0].body.find("`" + short_sha(c2) + "`") != std::string::npos;
      },
      30000))
      << "one comment, edited in place";
  EXPECT_EQ(github.requests("POST", "/repos/idp-tests/app/issues/12/comments").size(), 1u);
  EXPECT_FALSE(github.requests("PATCH", "/repos/idp-tests/app/issues/comments/").empty());
  EXPECT_EQ(rig.daemon->log().find(token), std::string::npos) << "the token is never logged";
}
