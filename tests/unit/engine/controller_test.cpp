#include "engine_fixture.hpp"

#include <condition_variable>
#include <future>
#include <mutex>

#include "util/strings.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using core::Phase;

using ControllerTest = EngineTest;

TEST_F(ControllerTest, CreateRecordsDesiredStateAndEvent) {
  std::string repo = make_repo();
  auto env = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env) << env.error().message;
  EXPECT_EQ(env->name, "preview-one");
  EXPECT_EQ(env->phase, Phase::pending);
  EXPECT_EQ(env->desired, core::Desired::present);
  EXPECT_EQ(env->commit, m_repo->head());
  EXPECT_EQ(env->created_at, m_clock.now_ms());
  EXPECT_EQ(env->expires_at, m_clock.now_ms() + 7LL * 86400 * 1000) << "the example's ttl is 7d";
  EXPECT_EQ(env->template_name, "api-service");
  EXPECT_EQ(env->owner, "alice");
  EXPECT_EQ(count_events("preview-one", "create"), 1u);
  EXPECT_EQ(m_driver.count("plan"), 1u) << "the driver validated the config before anything was recorded";
}

TEST_F(ControllerTest, BadInputCreatesNothing) {
  std::string repo = make_repo();
  struct Case {
    engine::CreateRequest req;
    ErrorCode code;
    std::string msg;
  };
  auto req = [&](std::string branch, std::string name = "", std::string ttl = "", std::string repo_path = "") {
    auto r = request(repo_path.empty() ? repo : repo_path, branch);
    r.name = name;
    r.ttl = ttl;
    return r;
  };
  std::vector<Case> cases = {
      {req("bad branch"), ErrorCode::invalid_argument, "invalid branch name"},
      {req("a..b"), ErrorCode::invalid_argument, "invalid branch name"},
      {req("-rf"), ErrorCode::invalid_argument, "invalid branch name"},
      {req(""), ErrorCode::invalid_argument, "branch is required"},
      {req("feature/one", "Bad_Name"), ErrorCode::invalid_argument, "environment name"},
      {req("feature/one", "", "2 days"), ErrorCode::invalid_argument, "expected a duration"},
      {req("feature/one", "", "1w1d"), ErrorCode::invalid_argument, "expected a duration"},
      {req("feature/one", "", "60d"), ErrorCode::invalid_argument, "longer than the maximum"},
      {req("no-such-branch"), ErrorCode::invalid_config, "not found"},
      {req("feature/one", "", "", "--upload-pack=touch pwned"), ErrorCode::invalid_argument, "invalid repo"},
      {req("feature/one", "", "", m_tmp.sub("missing-repo")), ErrorCode::transient,
       "git clone " + m_tmp.sub("missing-repo") + " failed: fatal: "},
  };
  for (const auto& c : cases) {
    auto r = controller().create(c.req, "cli:alice");
    ASSERT_FALSE(r) << c.msg;
    EXPECT_EQ(r.error().code, c.code) << r.error().message;
    EXPECT_NE(r.error().message.find(c.msg), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(m_store.list_environments(true)->empty());
}

TEST_F(ControllerTest, InvalidRepoConfigIsRejectedWithPositions) {
  std::string repo = make_repo();
  m_repo->write_file(".idp/config.yml", "template: api-service\nttl: forever\nlocal:\n  start: node server.js\n");
  m_repo->commit("bad ttl");
  auto r = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find(".idp/config.yml:2:6: key \"ttl\""), std::string::npos) << r.error().message;
  EXPECT_TRUE(m_store.list_environments(true)->empty());
}

TEST_F(ControllerTest, TemplateFieldsAreEnforced) {
  std::string repo = make_repo();
  m_repo->write_file(".idp/config.yml", "template: scheduled-worker\nlocal:\n  start: node job.js\n");
  m_repo->commit("worker without schedule");
  auto r = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("key \"schedule_expression\": required by template \"scheduled-worker\""),
            std::string::npos)
      << r.error().message;
  m_repo->write_file(".idp/config.yml",
                     "template: api-service\nschedule_expression: rate(1 hour)\nlocal:\n  start: x\n");
  m_repo->commit("service with schedule");
  r = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(".idp/config.yml:2:22: key \"schedule_expression\": not accepted by template"),
            std::string::npos)
      << r.error().message;
  m_repo->write_file(".idp/config.yml", "template: api-servce\n");
  m_repo->commit("typo");
  r = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("did you mean \"api-service\""), std::string::npos) << r.error().message;
  EXPECT_TRUE(m_store.list_environments(true)->empty());
}

TEST_F(ControllerTest, DriverPlanFailureCreatesNothing) {
  std::string repo = make_repo();
  m_driver.fail_plans(Error(ErrorCode::invalid_config, "key \"local.start\" is required for the local runtime"));
  auto r = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_TRUE(m_store.list_environments(true)->empty());
}

TEST_F(ControllerTest, CollidingBranchesGetDistinctNames) {
  std::string repo = make_repo("app", "feature/foo");
  m_repo->checkout_new_branch("foo");
  m_repo->checkout_new_branch("Foo");
  auto a = controller().create(request(repo, "feature/foo"), "cli:alice");
  auto b = controller().create(request(repo, "foo"), "cli:alice");
  auto c = controller().create(request(repo, "Foo"), "cli:alice");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->name, "preview-foo");
  EXPECT_NE(b->name, a->name);
  EXPECT_NE(c->name, a->name);
  EXPECT_NE(c->name, b->name);
  EXPECT_EQ(b->name.rfind("preview-foo-", 0), 0u) << b->name;
  // The same branch again is the same environment: refused, not duplicated.
  auto again = controller().create(request(repo, "foo"), "cli:alice");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::already_exists);
  EXPECT_EQ(m_store.list_environments(false)->size(), 3u);
}

TEST_F(ControllerTest, SameBranchOfTwoReposGetsDistinctNames) {
  std::string repo1 = make_repo("app1", "feature/login");
  auto other = make_example_repo(m_tmp.sub("app2"), "api-service", "feature/login");
  auto a = controller().create(request(repo1, "feature/login"), "cli:alice");
  auto b = controller().create(request(other.path(), "feature/login"), "cli:bob");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->name, b->name);
}

TEST_F(ControllerTest, ExtendMovesExpiryFromMaxOfNowAndExpiry) {
  std::string repo = make_repo();
  auto env = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  util::Millis before = env->expires_at;
  auto ext = controller().extend(env->name, "1d", "cli:alice");
  ASSERT_TRUE(ext) << ext.error().message;
  EXPECT_EQ(ext->expires_at, before + 86400LL * 1000);
  EXPECT_EQ(ext->created_at, env->created_at) << "created_at stays: it is the truth, with expires_at";
  // An expired environment is extended from now.
  m_clock.set(ext->expires_at + 3600 * 1000);
  auto ext2 = controller().extend(env->name, "2h", "cli:alice");
  ASSERT_TRUE(ext2);
  EXPECT_EQ(ext2->expires_at, m_clock.now_ms() + 2 * 3600 * 1000);
  // Beyond the policy's maximum lifetime.
  auto too_long = controller().extend(env->name, "40d", "cli:alice");
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("beyond the maximum"), std::string::npos);
  EXPECT_FALSE(controller().extend(env->name, "soon", "cli:alice"));
  EXPECT_EQ(controller().extend("nope", "1d", "cli:alice").error().code, ErrorCode::not_found);
  EXPECT_EQ(count_events(env->name, "extend"), 2u);
}

TEST_F(ControllerTest, DestroyIsIdempotent) {
  std::string repo = make_repo();
  auto env = controller().create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(controller().destroy(env->name, "cli:alice", "done"));
  ASSERT_TRUE(controller().destroy(env->name, "webhook:delete", "branch deleted"));
  EXPECT_EQ(count_events(env->name, "destroy"), 1u);
  EXPECT_EQ(m_store.get_environment(env->name)->desired, core::Desired::absent);
  EXPECT_EQ(controller().destroy("nope", "x", "y").error().code, ErrorCode::not_found);
  auto ext = controller().extend(env->name, "1d", "cli:alice");
  ASSERT_FALSE(ext);
  EXPECT_EQ(ext.error().code, ErrorCode::conflict);
}

TEST_F(ControllerTest, SyncBranchSameCommitOnlyExtends) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto a = controller().sync_branch(upd, "poll", "branch seen");
  ASSERT_TRUE(a) << a.error().message;
  m_clock.advance(3600 * 1000);
  auto b = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->generation, a->generation) << "the same commit is not deployed twice";
  EXPECT_EQ(b->expires_at, a->expires_at + 3600 * 1000) << "but its expiry moves out";
  m_repo->write_file("NEW", "x");
  upd.commit = m_repo->commit("second");
  auto c = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->generation, a->generation + 1);
  EXPECT_EQ(c->commit, upd.commit);
  EXPECT_EQ(c->created_at, a->created_at) << "a push does not reset created_at (seed #3)";
}

TEST_F(ControllerTest, SyncDuringDestroyAsksForAFreshEnvironment) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto a = controller().sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(a);
  ASSERT_TRUE(controller().destroy(a->name, "webhook:delete", "deleted"));
  auto b = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, a->name);
  EXPECT_EQ(b->desired, core::Desired::absent) << "the destroy still happens first";
  EXPECT_TRUE(b->recreate);
  // A removal after that drops the recreate.
  ASSERT_TRUE(controller().destroy(a->name, "webhook:delete", "deleted again"));
  EXPECT_FALSE(m_store.get_environment(a->name)->recreate);
}

TEST_F(ControllerTest, RejectedConfigThatCannotBeRecordedFailsWithTheStoreError) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto a = controller().sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(a);
  m_repo->write_file(".idp/config.yml", "template: api-service\nttl: forever\nlocal:\n  start: node server.js\n");
  upd.commit = m_repo->commit("bad ttl");
  // The branch's owner learns of a rejected config only through the recorded message: when
  // it cannot be written, the sync fails with the store's (transient) error, which the
  // branch queue retries, instead of pretending the rejection was recorded.
  m_faulty.fail_next("update_environment", 1, ErrorCode::transient);
  auto failed = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::transient) << failed.error().message;
  EXPECT_EQ(count_events(a->name, "reject"), 0u);
  auto retried = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_FALSE(retried);
  EXPECT_EQ(retried.error().code, ErrorCode::invalid_config);
  EXPECT_EQ(count_events(a->name, "reject"), 1u);
  EXPECT_NE(m_store.get_environment(a->name)->message.find("is invalid"), std::string::npos);
}

namespace {

// A RepoResolver whose fetches (resolve_branch, resolve_commit) wait while held, like a git
// remote that hangs: a test sees a caller inside the fetch and lets it go.
class HangingFetchResolver final : public engine::RepoResolver {
public:
  using engine::RepoResolver::RepoResolver;
  void hold() {
    std::lock_guard<std::mutex> g(m_mu);
    m_held = true;
  }
  void release() {
    {
      std::lock_guard<std::mutex> g(m_mu);
      m_held = false;
    }
    m_cv.notify_all();
  }
  // Callers waiting inside a fetch now.
  int inside() const {
    std::lock_guard<std::mutex> g(m_mu);
    return m_inside;
  }
  Expected<std::string> resolve_branch(const std::string& repo, const std::string& branch) override {
    wait_while_held();
    return engine::RepoResolver::resolve_branch(repo, branch);
  }
  Expected<std::string> resolve_commit(const std::string& repo, const std::string& commit) override {
    wait_while_held();
    return engine::RepoResolver::resolve_commit(repo, commit);
  }

private:
  void wait_while_held() {
    std::unique_lock<std::mutex> lk(m_mu);
    ++m_inside;
    m_cv.wait(lk, [this] { return !m_held; });
    --m_inside;
  }
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  bool m_held = false;
  int m_inside = 0;
};

// Releases the resolver when a test ends early, so nothing waits forever on a held fetch.
struct HangingFetchReleaseOnExit {
  HangingFetchResolver& r;
  ~HangingFetchReleaseOnExit() { r.release(); }
};

} // namespace

// A redeploy answers once the new generation is stored, like an API create: the fetch (git
// on the network, here one that hangs) is a worker's. It was once done on the caller's
// thread, which for the API is an HTTP worker held for as long as git took.
TEST_F(ControllerTest, RedeployAnswersWhileItsFetchHangsAndAWorkerDeploysIt) {
  std::string repo = make_repo();
  HangingFetchResolver hanging(m_tmp.sub("git-hanging"));
  std::future<Expected<core::Environment>> answer;
  HangingFetchReleaseOnExit guard{hanging}; // destroyed first: a held fetch ends before `answer` is joined
  m_resolver = &hanging;
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env) << env.error().message;
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  const std::string first = env->commit;
  m_repo->write_file("NEWS", "v2\n");
  const std::string second = m_repo->commit("v2");

  hanging.hold();
  answer = std::async(std::launch::async, [&] { return controller().redeploy(env->name, "", "cli:alice"); });
  bool answered = answer.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  ASSERT_TRUE(answered) << "the redeploy waited for the fetch";
  // The worker is inside the fetch now, and stays there until released.
  ASSERT_TRUE(wait_until([&] { return hanging.inside() == 1; }, 20000, 5));
  auto redeployed = answer.get();
  ASSERT_TRUE(redeployed) << redeployed.error().message;
  EXPECT_EQ(redeployed->generation, env->generation + 1);
  EXPECT_EQ(redeployed->commit, "") << "resolved by the worker";
  EXPECT_EQ(redeployed->redeploy_ref, std::optional<std::string>(""));
  EXPECT_NE(redeployed->message.find("waiting for a worker to fetch the head of branch"), std::string::npos)
      << redeployed->message;
  // Meanwhile the engine keeps answering, and the environment keeps serving.
  ASSERT_TRUE(controller().extend(env->name, "1h", "cli:bob"));
  auto during = m_store.get_environment(env->name);
  EXPECT_EQ(during->phase, Phase::ready);
  EXPECT_EQ(during->deployed_commit, first);
  EXPECT_EQ(m_driver.live().at(env->name), first);

  hanging.release();
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e && e->phase == Phase::ready && e->observed_generation == redeployed->generation;
      },
      20000, 5));
  auto after = m_store.get_environment(env->name);
  EXPECT_EQ(after->commit, second);
  EXPECT_EQ(after->deployed_commit, second);
  EXPECT_EQ(after->redeploy_ref, std::nullopt);
  EXPECT_EQ(m_driver.live().at(env->name), second);
  EXPECT_EQ(count_events(env->name, "redeploy"), 1u);
}

// What a worker cannot resolve is recorded on the environment, which keeps serving what it
// served; a malformed sha is refused at once with nothing recorded.
TEST_F(ControllerTest, RedeployOfAMissingCommitKeepsServingAndSaysWhy) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env) << env.error().message;
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));

  auto bad = controller().redeploy(env->name, "not-a-sha", "cli:alice");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(m_store.get_environment(env->name)->generation, env->generation) << "nothing recorded";
  EXPECT_EQ(controller().redeploy("nope", "", "cli:alice").error().code, ErrorCode::not_found);

  auto missing = controller().redeploy(env->name, "0123456789abcdef", "cli:alice");
  ASSERT_TRUE(missing) << missing.error().message;
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e && e->observed_generation == missing->generation;
      },
      20000, 5));
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->phase, Phase::ready);
  EXPECT_EQ(e->commit, env->commit) << "the serving commit is the desired one again";
  EXPECT_EQ(e->deployed_commit, env->commit);
  EXPECT_EQ(e->redeploy_ref, std::nullopt);
  EXPECT_NE(e->message.find("redeploy failed: commit \"0123456789abcdef\" is not in"), std::string::npos) << e->message;
  EXPECT_NE(e->message.find("still serving " + util::short_commit(env->commit)), std::string::npos) << e->message;
  EXPECT_EQ(count_events(env->name, "reject"), 1u);
  EXPECT_EQ(m_driver.live().at(env->name), env->commit);

  // Back at an older commit by a short sha: the worker resolves it and deploys it.
  const std::string first = env->commit;
  m_repo->write_file("NEWS", "v2\n");
  m_repo->commit("v2");
  auto head = controller().redeploy(env->name, "", "cli:alice");
  ASSERT_TRUE(head);
  ASSERT_TRUE(wait_until([&] { return m_store.get_environment(env->name)->observed_generation == head->generation; },
                         20000, 5));
  EXPECT_NE(m_store.get_environment(env->name)->deployed_commit, first);
  auto back = controller().redeploy(env->name, first.substr(0, 8), "cli:alice");
  ASSERT_TRUE(back);
  ASSERT_TRUE(wait_until([&] { return m_store.get_environment(env->name)->observed_generation == back->generation; },
                         20000, 5));
  EXPECT_EQ(m_store.get_environment(env->name)->deployed_commit, first);
  EXPECT_EQ(m_store.get_environment(env->name)->phase, Phase::ready);
}

// QA freeze (issue 12, must show 6): pushes during a freeze are held (expiry still moves
// out), a redelivery is held once, a redeploy is refused; unfreeze deploys the newest.
TEST_F(ControllerTest, AFrozenEnvironmentHoldsPushesAndUnfreezeDeploysTheNewest) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto a = controller().sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(a) << a.error().message;
  auto frozen = controller().freeze(a->name, 0, "QA sign-off", "cli:qa");
  ASSERT_TRUE(frozen) << frozen.error().message;
  ASSERT_TRUE(frozen->freeze);
  EXPECT_EQ(frozen->freeze->by, "cli:qa");
  EXPECT_EQ(frozen->freeze->until, 0);

  m_repo->write_file("A", "1");
  const std::string c2 = upd.commit = m_repo->commit("second");
  m_clock.advance(3600 * 1000);
  auto b = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->generation, a->generation) << "held, not deployed";
  EXPECT_EQ(b->commit, a->commit);
  EXPECT_EQ(b->expires_at, a->expires_at + 3600 * 1000) << "the push still moves the expiry out";
  ASSERT_TRUE(b->freeze);
  EXPECT_EQ(b->freeze->waiting, std::vector<std::string>{c2});
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "redelivered"));
  m_repo->write_file("B", "2");
  const std::string c3 = upd.commit = m_repo->commit("third");
  auto c = controller().sync_branch(upd, "webhook:push", "push");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->freeze->waiting, (std::vector<std::string>{c2, c3}));
  EXPECT_EQ(count_events(a->name, "hold"), 2u) << "the redelivery is held once";
  auto redeploy = controller().redeploy(a->name, "", "cli:alice");
  ASSERT_FALSE(redeploy);
  EXPECT_EQ(redeploy.error().code, ErrorCode::conflict);
  EXPECT_NE(redeploy.error().message.find("frozen by cli:qa (QA sign-off)"), std::string::npos);

  auto u = controller().unfreeze(a->name, "cli:qa", "unfrozen");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_FALSE(u->freeze);
  EXPECT_EQ(u->generation, a->generation + 1);
  EXPECT_EQ(u->redeploy_ref, c3) << "the newest held commit";
  EXPECT_EQ(count_events(a->name, "unfreeze"), 1u);
  auto again = controller().unfreeze(a->name, "cli:qa", "unfrozen");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->generation, u->generation) << "unfreezing what is not frozen changes nothing";
  auto destroyed = controller().destroy(a->name, "cli:alice", "done");
  ASSERT_TRUE(destroyed);
  EXPECT_EQ(controller().freeze(a->name, 0, "", "cli:qa").error().code, ErrorCode::conflict);
}

// A freeze with an end: the reaper ends it and deploys what was held.
TEST_F(ControllerTest, AFreezeWithAnEndIsEndedByTheReaper) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto a = controller().sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(a);
  EXPECT_EQ(controller().freeze(a->name, m_clock.now_ms(), "", "cli:qa").error().code, ErrorCode::invalid_argument)
      << "a freeze that ends now";
  ASSERT_TRUE(controller().freeze(a->name, m_clock.now_ms() + 3600 * 1000, "", "cli:qa"));
  m_repo->write_file("A", "1");
  const std::string c2 = upd.commit = m_repo->commit("second");
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  engine::Reaper reaper(m_store, *m_controller, m_clock, 1000);
  reaper.sweep();
  EXPECT_TRUE(m_store.get_environment(a->name)->freeze) << "not ended yet";
  m_clock.advance(3600 * 1000);
  reaper.sweep();
  auto e = m_store.get_environment(a->name);
  EXPECT_FALSE(e->freeze);
  EXPECT_EQ(e->redeploy_ref, c2);
  EXPECT_EQ(e->generation, a->generation + 1);
}
