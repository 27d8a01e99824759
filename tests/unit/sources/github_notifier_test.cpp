#include "sources/github_notifier.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "fakes/fake_clock.hpp"
#include "fakes/fake_github.hpp"
#include "fakes/in_memory_store.hpp"

namespace idp::sources {
namespace {

using nlohmann::json;

const std::string k_token = "ghp_TESTTOKEN0123456789abcdefXYZ";
const std::string k_notified_repo = "https://github.com/idp-tests/app.git";
const std::string k_commit1 = "1111111111111111111111111111111111111111";
const std::string k_commit2 = "2222222222222222222222222222222222222222";

struct NotifierRig {
  testing::FakeGitHub github;
  testing::InMemoryStore store;
  testing::FakeClock clock;
  WatchedRepo repo;
  std::unique_ptr<GithubNotifier> notifier;
  std::ostringstream log;

  NotifierRig() {
    repo.url = k_notified_repo;
    repo.github_token = k_token;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
    spdlog::set_level(spdlog::level::debug);
    make();
  }
  ~NotifierRig() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("default")); }
  void make() {
    GithubNotifier::Options o;
    o.api_url = github.url();
    o.retry_base = 1000;
    notifier = std::make_unique<GithubNotifier>(std::vector<WatchedRepo>{repo}, store, clock, o);
  }

  core::Environment env(const std::optional<int>& pr = std::nullopt) {
    core::Environment e;
    e.name = "preview-login";
    e.repo = k_notified_repo;
    e.branch = "feature/login";
    e.template_name = "api-service";
    e.commit = k_commit1;
    e.pr_number = pr;
    e.created_at = clock.now_ms();
    e.expires_at = clock.now_ms() + 7LL * 86400 * 1000;
    e.source_key = k_notified_repo + "\nfeature/login";
    return e;
  }
  void event(const std::string& action) {
    core::Event ev;
    ev.env = "preview-login";
    ev.at = clock.now_ms();
    ev.actor = "test";
    ev.action = action;
    ASSERT_TRUE(store.append_event(ev));
  }
  int64_t revision(const std::string& commit, core::RevisionStatus st, const std::string& message = "") {
    core::Revision r;
    r.env = "preview-login";
    r.commit = commit;
    r.status = st;
    r.message = message;
    r.created_at = clock.now_ms();
    return *store.insert_revision(r);
  }
  void set_revision(int64_t id, core::RevisionStatus st, const std::string& message = "") {
    auto r = *store.get_revision(id);
    r.status = st;
    r.message = message;
    ASSERT_TRUE(store.update_revision(r));
  }
  void update(const std::function<void(core::Environment&)>& f) {
    ASSERT_TRUE(store.update_environment("preview-login",
                                         [&](core::Environment& e, std::vector<core::Event>&) -> Expected<void> {
                                           f(e);
                                           return {};
                                         }));
  }
};

void expect_github_headers(const testing::FakeGitHub::Request& r) {
  EXPECT_EQ(r.headers.at("authorization"), "Bearer " + k_token);
  EXPECT_EQ(r.headers.at("accept"), "application/vnd.github+json");
  EXPECT_EQ(r.headers.at("x-github-api-version"), "2022-11-28");
  EXPECT_FALSE(r.headers.at("user-agent").empty()); // GitHub refuses requests without one
}

TEST(GithubNotifierTest, CommitStatusesFollowTheRevisionPendingThenSuccessWithTheUrl) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(), {}));
  int64_t rev = r.revision(k_commit1, core::RevisionStatus::building);
  r.event("create");
  EXPECT_EQ(r.notifier->run_once(), 1u);
  auto statuses = r.github.requests("POST", "/repos/idp-tests/app/statuses/");
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].path, "/repos/idp-tests/app/statuses/" + k_commit1);
  expect_github_headers(statuses[0]);
  EXPECT_EQ(statuses[0].headers.at("content-type"), "application/json");
  json body = json::parse(statuses[0].body);
  EXPECT_EQ(body["state"], "pending");
  EXPECT_EQ(body["context"], "mini-idp/preview");
  EXPECT_FALSE(body.contains("target_url")); // no URL yet

  r.set_revision(rev, core::RevisionStatus::serving);
  r.update([](core::Environment& e) {
    e.url = "http://preview-login.preview.localhost:8080/";
    e.phase = core::Phase::ready;
  });
  r.event("phase");
  r.notifier->run_once();
  statuses = r.github.requests("POST", "/repos/idp-tests/app/statuses/");
  ASSERT_EQ(statuses.size(), 2u);
  body = json::parse(statuses[1].body);
  EXPECT_EQ(body["state"], "success");
  EXPECT_EQ(body["target_url"], "http://preview-login.preview.localhost:8080/");
  EXPECT_LE(body["description"].get<std::string>().size(), 140u);

  r.event("extend"); // nothing new to say: no request
  r.notifier->run_once();
  EXPECT_EQ(r.github.requests("POST", "/repos/idp-tests/app/statuses/").size(), 2u);
}

TEST(GithubNotifierTest, FailedAndSupersededRevisionsAreReported) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(), {}));
  int64_t first = r.revision(k_commit1, core::RevisionStatus::starting);
  r.event("create");
  r.notifier->run_once();
  r.set_revision(first, core::RevisionStatus::superseded, "superseded before it finished");
  int64_t second = r.revision(k_commit2, core::RevisionStatus::failed, "health check /health: HTTP 500\nmore detail");
  (void)second;
  r.event("phase");
  r.notifier->run_once();
  auto statuses = r.github.requests("POST", "/repos/idp-tests/app/statuses/");
  ASSERT_EQ(statuses.size(), 3u);
  json superseded = json::parse(statuses[1].body);
  EXPECT_EQ(statuses[1].path, "/repos/idp-tests/app/statuses/" + k_commit1);
  EXPECT_EQ(superseded["state"], "error");
  json failed = json::parse(statuses[2].body);
  EXPECT_EQ(statuses[2].path, "/repos/idp-tests/app/statuses/" + k_commit2);
  EXPECT_EQ(failed["state"], "failure");
  EXPECT_NE(failed["description"].get<std::string>().find("HTTP 500"), std::string::npos);
}

TEST(GithubNotifierTest, OnePrCommentCreatedOnceThenEditedInPlace) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.event("create");
  r.notifier->run_once();
  auto posts = r.github.requests("POST", "/repos/idp-tests/app/issues/42/comments");
  ASSERT_EQ(posts.size(), 1u);
  expect_github_headers(posts[0]);
  std::string body = json::parse(posts[0].body)["body"];
  EXPECT_NE(body.find(k_comment_marker), std::string::npos);
  EXPECT_NE(body.find("| **Environment** | `preview-login` |"), std::string::npos);
  EXPECT_NE(body.find("| **URL** | pending |"), std::string::npos);

  r.update([](core::Environment& e) {
    e.url = "http://preview-login.preview.localhost:8080/";
    e.phase = core::Phase::ready;
    e.deployed_commit = e.commit;
  });
  r.event("phase");
  r.notifier->run_once();
  EXPECT_EQ(r.github.requests("POST", "/repos/idp-tests/app/issues/42/comments").size(), 1u);
  auto patches = r.github.requests("PATCH", "/repos/idp-tests/app/issues/comments/");
  ASSERT_EQ(patches.size(), 1u);
  expect_github_headers(patches[0]);
  auto comments = r.github.comments(42);
  ASSERT_EQ(comments.size(), 1u);
  EXPECT_EQ(patches[0].path, "/repos/idp-tests/app/issues/comments/" + std::to_string(comments[0].id));
  EXPECT_NE(comments[0].body.find("http://preview-login.preview.localhost:8080/"), std::string::npos);
  EXPECT_NE(comments[0].body.find("| **Phase** | ready |"), std::string::npos);
}

// A create a budget refused (issue 12): a failure status naming the budget and the PR
// comment saying why, retried after a failure; the environment a
// later push creates edits that same comment. Repositories without a token: nothing.
TEST(GithubNotifierTest, ARefusedCreateGetsAFailureStatusAndThePrCommentEditedLater) {
  NotifierRig r;
  RefusedCreate refused;
  refused.repo = k_notified_repo;
  refused.branch = "feature/login";
  refused.commit = k_commit1;
  refused.pr_number = 42;
  refused.reason = "budget \"payments\" is exhausted: 212.00 USD spent of 200.00 USD this month, 240.00 USD "
                   "projected; no new environment until next month, a higher limit, or fewer running";
  RefusedCreate elsewhere = refused;
  elsewhere.repo = "https://github.com/idp-tests/other.git";
  r.notifier->refused(elsewhere);
  r.notifier->refused(refused);
  r.github.fail_next(1, 502); // the status: retried after the backoff
  EXPECT_EQ(r.notifier->run_once(), 0u);
  r.clock.advance(1000);
  EXPECT_EQ(r.notifier->run_once(), 1u);
  auto statuses = r.github.requests("POST", "/repos/idp-tests/app/statuses/");
  ASSERT_EQ(statuses.size(), 2u) << "failed once, then sent";
  EXPECT_EQ(statuses[1].path, "/repos/idp-tests/app/statuses/" + k_commit1);
  auto status = json::parse(statuses[1].body);
  EXPECT_EQ(status["state"], "failure");
  EXPECT_EQ(status["description"], "not deployed: budget \"payments\" is exhausted: 212.00 USD spent of 200.00 USD "
                                   "this month, 240.00 USD projected");
  auto comments = r.github.comments(42);
  ASSERT_EQ(comments.size(), 1u);
  EXPECT_NE(comments[0].body.find(k_comment_marker), std::string::npos);
  EXPECT_NE(comments[0].body.find("Preview Environment not created"), std::string::npos) << comments[0].body;
  EXPECT_NE(comments[0].body.find("| **Refused** | budget \"payments\" is exhausted: 212.00 USD spent of 200.00 USD"),
            std::string::npos)
      << comments[0].body;
  EXPECT_TRUE(r.github.requests("POST", "/repos/idp-tests/other/").empty());
  EXPECT_EQ(r.notifier->run_once(), 0u) << "told once";

  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.event("create");
  r.notifier->run_once();
  comments = r.github.comments(42);
  ASSERT_EQ(comments.size(), 1u);
  EXPECT_NE(comments[0].body.find("Preview Environment created"), std::string::npos) << comments[0].body;
  EXPECT_EQ(r.github.requests("POST", "/repos/idp-tests/app/issues/42/comments").size(), 1u);

  auto posted = r.notifier->post_comment(k_notified_repo, 42, "a budget alert");
  ASSERT_TRUE(posted.has_value());
  EXPECT_TRUE(*posted);
  EXPECT_EQ(r.github.comments(42).size(), 2u) << "post_comment adds a comment of its own";
  auto other = r.notifier->post_comment("https://github.com/idp-tests/other.git", 7, "x");
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(*other);
}

TEST(GithubNotifierTest, FindsItsCommentOnALaterPageAfterARestart) {
  NotifierRig r;
  for (int i = 0; i < 150; ++i) {
    r.github.add_comment(42, "LGTM " + std::to_string(i));
  }
  int64_t ours = r.github.add_comment(42, std::string(k_comment_marker) + "\nold body");
  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.event("create");
  r.notifier->run_once();
  EXPECT_TRUE(r.github.requests("POST", "/repos/idp-tests/app/issues/42/comments").empty());
  auto lists = r.github.requests("GET", "/repos/idp-tests/app/issues/42/comments");
  ASSERT_EQ(lists.size(), 2u); // pages 1 and 2 of 100
  EXPECT_EQ(lists[0].query, "per_page=100&page=1");
  EXPECT_EQ(lists[1].query, "per_page=100&page=2");
  auto patches = r.github.requests("PATCH", "/repos/idp-tests/app/issues/comments/");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].path, "/repos/idp-tests/app/issues/comments/" + std::to_string(ours));
}

TEST(GithubNotifierTest, ADeletedCommentIsCreatedAgain) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.event("create");
  r.notifier->run_once();
  r.github.delete_comment(r.github.comments(42).at(0).id);
  r.update([](core::Environment& e) { e.phase = core::Phase::ready; });
  r.event("phase");
  r.notifier->run_once();
  EXPECT_EQ(r.github.comments(42).size(), 1u);
  EXPECT_EQ(r.github.requests("POST", "/repos/idp-tests/app/issues/42/comments").size(), 2u);
}

TEST(GithubNotifierTest, FailuresAreRetriedWithBackoffAndNeverLeakTheToken) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(), {}));
  r.revision(k_commit1, core::RevisionStatus::building);
  r.event("create");
  r.github.fail_next(2, 502);
  EXPECT_EQ(r.notifier->run_once(), 0u);
  EXPECT_EQ(r.github.requests().size(), 1u);
  EXPECT_EQ(r.notifier->run_once(), 0u); // backing off: no request before the delay
  EXPECT_EQ(r.github.requests().size(), 1u);
  r.clock.advance(1000);
  EXPECT_EQ(r.notifier->run_once(), 0u); // second failure; next delay 2s
  r.clock.advance(1000);
  r.notifier->run_once();
  EXPECT_EQ(r.github.requests().size(), 2u);
  r.clock.advance(1000);
  EXPECT_EQ(r.notifier->run_once(), 1u);
  EXPECT_EQ(r.github.requests().size(), 3u);
  spdlog::default_logger()->flush();
  EXPECT_NE(r.log.str().find("HTTP 502"), std::string::npos);
  EXPECT_EQ(r.log.str().find(k_token), std::string::npos);
}

TEST(GithubNotifierTest, ARestartResumesAfterTheCursorWithoutRenotifying) {
  NotifierRig r;
  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.revision(k_commit1, core::RevisionStatus::serving);
  r.event("create");
  r.notifier->run_once();
  size_t sent = r.github.requests().size();
  ASSERT_GT(sent, 0u);
  r.make(); // a new daemon over the same store
  r.notifier->run_once();
  EXPECT_EQ(r.github.requests().size(), sent);
}

TEST(GithubNotifierTest, EnvironmentsOfRepositoriesWithoutATokenAreNotReported) {
  NotifierRig r;
  r.repo.github_token = "";
  r.make();
  EXPECT_FALSE(r.notifier->enabled());
  ASSERT_TRUE(r.store.insert_environment(r.env(42), {}));
  r.event("create");
  r.notifier->run_once();
  EXPECT_TRUE(r.github.requests().empty());
}

TEST(GithubNotifierTest, CommentLayoutGolden) {
  core::Environment e;
  e.name = "preview-login";
  e.template_name = "api-service";
  e.commit = k_commit2;
  e.deployed_commit = k_commit1;
  e.generation = 2;
  e.phase = core::Phase::updating;
  e.url = "http://preview-login.preview.localhost:8080/";
  e.expires_at = 1'767'830'400'000; // 2026-01-08T00:00:00Z
  EXPECT_EQ(render_pr_comment(e), "<!-- mini-idp:preview -->\n"
                                  "🔄 **Preview Environment updated (TTL extended)**\n"
                                  "\n"
                                  "| | |\n"
                                  "|---|---|\n"
                                  "| **Environment** | `preview-login` |\n"
                                  "| **URL** | http://preview-login.preview.localhost:8080/ |\n"
                                  "| **Template** | `api-service` |\n"
                                  "| **Commit** | `2222222` (serving `1111111`) |\n"
                                  "| **Phase** | updating |\n"
                                  "| **Expires** | 2026-01-08T00:00:00Z |\n"
                                  "\n"
                                  "> This environment is automatically destroyed when this PR is merged or the branch "
                                  "is deleted.\n"
                                  "> TTL is extended on every push.\n");

  // Ready, with its deploy's telemetry: where the time went, in a row of its own.
  e.phase = core::Phase::ready;
  e.deployed_commit = k_commit2;
  e.outputs_json = R"({"pid": 7, "deploy": {"revision": 2, "outcome": "ready", "total_ms": 2100,
                       "phases": [{"phase": "queued", "ms": 5}, {"phase": "healthy", "ms": 2095}]}})";
  std::string ready = render_pr_comment(e);
  EXPECT_NE(ready.find("| **Phase** | ready |\n"
                       "| **Last deploy** | ready 2.1 s after the change: queued 5 ms \u00b7 healthy 2.1 s |\n"),
            std::string::npos)
      << ready;

  // Frozen for QA (issue 12): who, until when, why, and how many pushes wait.
  e.freeze = core::Freeze{"cli:qa",
                          "sign-off | round 2",
                          1,
                          util::parse_iso8601("2026-01-05T00:00:00Z").value_or(0),
                          {k_commit1, k_commit2}};
  std::string frozen = render_pr_comment(e);
  EXPECT_NE(frozen.find("| **Frozen** | by cli:qa until 2026-01-05T00:00:00Z: sign-off \\| round 2; 2 newer commits "
                        "waiting |\n"),
            std::string::npos)
      << frozen;

  // Asleep (issue 12, idle sleep): the phase says so.
  e.sleep = core::Sleep{core::Sleep::State::asleep, "idle", "no request for 30m", 1};
  std::string sleeping = render_pr_comment(e);
  EXPECT_NE(sleeping.find("| **Phase** | ready (sleeping: its next request wakes it) |\n"), std::string::npos)
      << sleeping;
  e.sleep.reset();

  // What it cost so far (issue 12): from its usage at the server's rates.
  store::UsageHour u;
  u.env = e.name;
  u.hour = util::parse_iso8601("2026-01-04T10:00:00Z").value_or(0);
  u.running_ms = 3'600'000;
  u.reserved_cpu_ms = 1024.0 * 3'600'000;
  u.reserved_memory_mb_ms = 2048.0 * 3'600'000;
  engine::CostRates rates;
  rates.cpu_hour = 0.04;
  rates.memory_gb_hour = 0.005;
  rates.currency = "EUR";
  std::string line = pr_comment_cost_line({u}, rates, u.hour + 3'600'000);
  EXPECT_EQ(line, "0.0500 EUR so far \u00b7 about 1.2000 EUR/day");
  EXPECT_NE(render_pr_comment(e, line).find("| **Cost** | 0.0500 EUR so far \u00b7 about 1.2000 EUR/day |\n"),
            std::string::npos);
  EXPECT_EQ(pr_comment_cost_line({}, rates, u.hour), "") << "nothing sampled yet: no line";
  EXPECT_EQ(render_pr_comment(e).find("**Cost**"), std::string::npos);
}

} // namespace
} // namespace idp::sources
