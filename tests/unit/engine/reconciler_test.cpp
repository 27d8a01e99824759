#include "engine_fixture.hpp"
#include "util/fs.hpp"

using namespace idp;
using namespace idp::testing;
using core::Phase;

using ReconcilerTest = EngineTest;

TEST_F(ReconcilerTest, DeploysToReady) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->url, "http://preview-one.fake.test/");
  EXPECT_EQ(e->deployed_commit, env->commit);
  EXPECT_EQ(e->observed_generation, e->generation);
  auto revs = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(revs->size(), 1u);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::serving);
  EXPECT_EQ(m_driver.live().at(env->name), env->commit);
  // Every transition has an event with a reason.
  store::EventQuery q;
  q.env = env->name;
  std::vector<std::string> transitions;
  auto events = m_store.list_events(q);
  ASSERT_TRUE(events);
  for (const auto& ev : *events) {
    if (ev.action == "phase") {
      transitions.push_back(ev.from_phase + "->" + ev.to_phase);
      EXPECT_FALSE(ev.reason.empty());
      EXPECT_EQ(ev.actor, "engine");
    }
  }
  EXPECT_EQ(transitions, (std::vector<std::string>{"pending->provisioning", "provisioning->ready"}));
}

// A write names its environment: the loop reads that one, not the whole list (at 1,000
// environments a full pass on every write and every finished operation kept a core busy).
TEST_F(ReconcilerTest, AWriteLooksAtItsEnvironmentAloneNotTheWholeList) {
  m_options.resync_interval = 3'600'000; // no periodic full pass during the test
  std::string repo = make_repo();
  auto& c = controller(true);
  ASSERT_TRUE(wait_until([&] { return m_faulty.calls("list_environments") >= 1; }, 10000, 5)); // the start's pass
  const int lists = m_faulty.calls("list_environments");
  auto env = c.create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  ASSERT_TRUE(c.destroy(env->name, "cli:alice", "done"));
  ASSERT_TRUE(wait_phase(env->name, Phase::destroyed));
  EXPECT_EQ(m_faulty.calls("list_environments"), lists);
  EXPECT_GE(m_faulty.calls("get_environment"), 4); // create, ready, destroy request, destroyed
}

TEST_F(ReconcilerTest, RetriesTransientFailureWithBackoff) {
  std::string repo = make_repo();
  m_driver.fail_next_applies({Error(ErrorCode::transient, "port busy")});
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::failed));
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->attempts, 1);
  EXPECT_EQ(e->next_attempt_at, m_clock.now_ms() + 1000) << "first retry after backoff_base";
  EXPECT_NE(e->message.find("port busy"), std::string::npos);
  EXPECT_NE(e->message.find("retrying in"), std::string::npos);
  // Not retried before the backoff passes...
  EXPECT_FALSE(m_driver.wait_for("apply", env->name, 2, 200));
  // ...and retried after it.
  m_clock.advance(1001);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  EXPECT_EQ(m_store.get_environment(env->name)->attempts, 0);
}

TEST_F(ReconcilerTest, FailedRevisionRollsBackAndKeepsServing) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  std::string good = env->commit;
  m_driver.fail_next_applies({Error(ErrorCode::permanent, "health check on /health did not pass")});
  m_repo->write_file("BROKEN", "1");
  upd.commit = m_repo->commit("broken");
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 2, 10000));
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e->observed_generation == e->generation;
      },
      10000, 5));
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->phase, Phase::ready);
  EXPECT_EQ(e->deployed_commit, good);
  EXPECT_NE(e->message.find("still serving " + good.substr(0, 7)), std::string::npos) << e->message;
  auto revs = m_store.list_revisions(env->name, 10);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::failed);
  EXPECT_EQ((*revs)[1].status, core::RevisionStatus::serving);
  EXPECT_FALSE((*revs)[0].log_tail.empty());
  // A broken commit is not retried forever: only a new commit deploys again.
  EXPECT_FALSE(m_driver.wait_for("apply", env->name, 3, 300));
}

// The driver reports the revision failed before it returns; the engine records it in one
// write with the error and the app's last lines, before the phase: a reader (the dashboard, a
// test waiting for "failed") never sees a failed revision without its log tail.
TEST_F(ReconcilerTest, AFailedRevisionIsRecordedInOneWriteWithItsLogTail) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_driver.hold_failed_applies(true);
  m_driver.fail_next_applies({Error(ErrorCode::permanent, "the app exited with code 1")});
  m_repo->write_file("BROKEN", "1");
  upd.commit = m_repo->commit("broken");
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  ASSERT_TRUE(m_driver.wait_for("apply-failed", env->name, 1, 10000));
  auto held = m_store.list_revisions(env->name, 10);
  ASSERT_TRUE(held && !held->empty());
  EXPECT_EQ((*held)[0].commit, upd.commit);
  EXPECT_NE((*held)[0].status, core::RevisionStatus::failed) << "failed before the engine had its log tail";
  m_driver.hold_failed_applies(false);
  ASSERT_TRUE(wait_until(
      [&] { return m_store.get_environment(env->name)->message.find("failed") != std::string::npos; }, 10000, 5));
  auto revs = m_store.list_revisions(env->name, 10);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::failed);
  EXPECT_EQ((*revs)[0].message, "the app exited with code 1");
  EXPECT_FALSE((*revs)[0].log_tail.empty());
}

TEST_F(ReconcilerTest, FailedDestroyIsRetriedWithBackoffAndShown) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_driver.fail_next_destroys({Error(ErrorCode::transient, "route removal failed")});
  ASSERT_TRUE(controller().destroy(env->name, "reaper", "ttl expired"));
  ASSERT_TRUE(wait_until([&] { return m_store.get_environment(env->name)->attempts == 1; }, 10000, 5));
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->phase, Phase::destroying);
  EXPECT_NE(e->message.find("destroy failed (attempt 1)"), std::string::npos) << e->message;
  EXPECT_EQ(count_events(env->name, "destroy-failed"), 1u);
  EXPECT_FALSE(m_driver.wait_for("destroy", env->name, 2, 200)) << "no retry before the backoff";
  m_clock.advance(1001);
  ASSERT_TRUE(wait_phase(env->name, Phase::destroyed));
  EXPECT_TRUE(m_driver.live().empty());
}

TEST_F(ReconcilerTest, NewerCommitSupersedesInFlightDeploy) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  m_driver.hold_applies(true);
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 1, 10000));
  std::vector<std::string> commits;
  for (int i = 0; i < 3; ++i) {
    m_repo->write_file("N", std::to_string(i));
    upd.commit = m_repo->commit("push " + std::to_string(i));
    commits.push_back(upd.commit);
    ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  }
  m_driver.hold_applies(false);
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e->phase == Phase::ready && e->deployed_commit == commits.back();
      },
      10000, 5));
  EXPECT_EQ(m_driver.live().at(env->name), commits.back()) << "only the newest commit ends up deployed";
  // An intermediate commit may have started, but it was superseded and never served.
  auto revs = m_store.list_revisions(env->name, 20);
  ASSERT_TRUE(revs);
  for (const auto& r : *revs) {
    if (r.commit != commits.back()) {
      EXPECT_NE(r.status, core::RevisionStatus::serving) << r.commit;
    }
  }
  EXPECT_EQ((*revs)[0].commit, commits.back());
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::serving);
  size_t applies_of_middle = 0;
  for (const auto& c : m_driver.calls()) {
    applies_of_middle += (c.op == "apply" && (c.commit == commits[0] || c.commit == commits[1])) ? 1 : 0;
  }
  EXPECT_LE(applies_of_middle, 2u) << "each intermediate commit starts at most once";
}

TEST_F(ReconcilerTest, HealthTransitionsAndRestart) {
  m_options.unhealthy_threshold = 2;
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_options.health_interval = 0; // probe on every pass from now on
  m_reconciler->stop();
  m_reconciler = std::make_unique<engine::Reconciler>(m_store, m_drivers, m_templates, m_clock, m_options);
  m_reconciler->start();
  m_driver.set_health(env->name, drivers::Health::unhealthy, "GET /health: 500");
  ASSERT_TRUE(wait_phase(env->name, Phase::degraded));
  EXPECT_NE(m_store.get_environment(env->name)->message.find("500"), std::string::npos);
  m_driver.set_health(env->name, drivers::Health::healthy);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  size_t applies = m_driver.count("apply", env->name);
  m_driver.set_health(env->name, drivers::Health::not_running, "process exited");
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, applies + 1, 10000)) << "a dead process is restarted";
  m_driver.set_health(env->name, drivers::Health::healthy);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
}

TEST_F(ReconcilerTest, PushDuringDestroyRecreatesAfterDestroyFinishes) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_driver.fail_next_destroys({Error(ErrorCode::transient, "slow")});
  ASSERT_TRUE(controller().destroy(env->name, "webhook:delete", "deleted"));
  ASSERT_TRUE(wait_until([&] { return m_store.get_environment(env->name)->attempts == 1; }, 10000, 5))
      << "the first destroy attempt failed and is waiting for its retry";
  m_clock.advance(500); // before the retry is due
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  m_clock.advance(60'000);
  ASSERT_TRUE(m_driver.wait_for("destroy", env->name, 2, 10000)) << "the destroy still finishes";
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  auto e = m_store.get_environment(env->name);
  EXPECT_GT(e->created_at, env->created_at) << "created fresh";
  // destroy (finished) happened before the recreate's apply
  auto calls = m_driver.calls();
  size_t last_destroy = 0, last_apply = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].op == "destroy") {
      last_destroy = i;
    }
    if (calls[i].op == "apply") {
      last_apply = i;
    }
  }
  EXPECT_GT(last_apply, last_destroy);
}

TEST_F(ReconcilerTest, LeaseHeldByLiveOwnerBlocksWorkDeadOwnerIsBroken) {
  std::string repo = make_repo();
  auto env = controller(false).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  // Another live daemon holds the lease: nothing happens.
  ASSERT_TRUE(*m_store.try_acquire_lease(env->name, "other-host:1:1", m_clock.now_ms(), 600'000));
  engine::Reconciler rec(m_store, m_drivers, m_templates, m_clock, m_options);
  rec.start();
  EXPECT_FALSE(m_driver.wait_for("apply", env->name, 1, 300));
  rec.stop();
  // A lease of a dead process on this host is broken.
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  ASSERT_TRUE(m_store.break_lease(env->name));
  ASSERT_TRUE(*m_store.try_acquire_lease(env->name, std::string(host) + ":999999:1", m_clock.now_ms(), 600'000));
  engine::Reconciler rec2(m_store, m_drivers, m_templates, m_clock, m_options);
  rec2.start();
  EXPECT_TRUE(m_driver.wait_for("apply", env->name, 1, 10000));
  rec2.stop();
}

TEST_F(ReconcilerTest, ReaperDestroysExpiredWithReason) {
  std::string repo = make_repo();
  auto r = request(repo, "feature/one");
  r.ttl = "2s";
  auto env = controller(true).create(r, "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  engine::Reaper reaper(m_store, *m_controller, m_clock, 1000);
  EXPECT_EQ(reaper.sweep(), 0u);
  m_clock.advance(2001);
  EXPECT_EQ(reaper.sweep(), 1u);
  ASSERT_TRUE(wait_phase(env->name, Phase::destroyed));
  store::EventQuery q;
  q.env = env->name;
  bool found = false;
  auto events = m_store.list_events(q);
  ASSERT_TRUE(events);
  for (const auto& ev : *events) {
    if (ev.action == "destroy" && ev.actor == "reaper") {
      found = ev.reason.find("ttl expired at") != std::string::npos;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(reaper.sweep(), 0u) << "a destroyed environment is not reaped again";
}

TEST_F(ReconcilerTest, PushAfterADestroyRequestDestroysFirstThenRecreates) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  // The reconciler is not looking: destroy and push land before it acts on either.
  m_reconciler->stop();
  ASSERT_TRUE(controller().destroy(env->name, "webhook:pull_request", "PR closed"));
  m_repo->write_file("AFTER", "1");
  upd.commit = m_repo->commit("after close");
  m_clock.advance(1000);
  ASSERT_TRUE(controller().sync_branch(upd, "webhook:push", "push"));
  m_reconciler = std::make_unique<engine::Reconciler>(m_store, m_drivers, m_templates, m_clock, m_options);
  m_reconciler->start();
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e->phase == Phase::ready && e->deployed_commit == upd.commit;
      },
      10000, 5));
  auto calls = m_driver.calls();
  size_t destroy_at = 0, apply_at = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].op == "destroy") {
      destroy_at = i;
    }
    if (calls[i].op == "apply" && calls[i].commit == upd.commit) {
      apply_at = i;
    }
  }
  EXPECT_GT(destroy_at, 0u) << "the requested destroy happened";
  EXPECT_GT(apply_at, destroy_at) << "then the fresh environment";
  EXPECT_GT(m_store.get_environment(env->name)->created_at, env->created_at);
}

// --- Store failures: a failed write is retried, never dropped ---

TEST_F(ReconcilerTest, FailedReadyWriteIsRetried) {
  std::string repo = make_repo();
  // The write that records ready, URL and deployed commit fails three times.
  m_faulty.fail_updates_where([](const core::Environment& e) { return e.phase == Phase::ready; }, 3);
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  EXPECT_EQ(m_faulty.injected("update_environment"), 3);
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->url, "http://preview-one.fake.test/");
  EXPECT_EQ(e->deployed_commit, env->commit);
  EXPECT_EQ(e->observed_generation, e->generation);
  EXPECT_EQ(m_driver.count("apply", env->name), 1u) << "the write was retried; the deploy was not redone";
  auto revs = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(revs->size(), 1u);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::serving);
}

TEST_F(ReconcilerTest, FailedRevisionInsertNeverDeploysRevisionZero) {
  std::string repo = make_repo();
  m_faulty.fail_next("insert_revision", 2);
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  EXPECT_EQ(m_faulty.injected("insert_revision"), 2);
  auto revs = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(revs->size(), 1u);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::serving);
  size_t applies = 0;
  for (const auto& c : m_driver.calls()) {
    if (c.op == "apply") {
      ++applies;
      EXPECT_NE(c.revision_id, 0) << "apply under a revision that was never recorded";
      EXPECT_EQ(c.revision_id, (*revs)[0].number);
    }
  }
  EXPECT_EQ(applies, 1u);
}

TEST_F(ReconcilerTest, FailedWritesAroundADestroyAreRetried) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_faulty.fail_updates_where([](const core::Environment& e) { return e.phase == Phase::destroyed; }, 2);
  m_faulty.fail_next("update_revision", 2);
  ASSERT_TRUE(controller().destroy(env->name, "cli:alice", "done"));
  ASSERT_TRUE(wait_phase(env->name, Phase::destroyed));
  EXPECT_EQ(m_faulty.injected("update_environment"), 2);
  EXPECT_EQ(m_faulty.injected("update_revision"), 2);
  EXPECT_EQ(m_driver.count("destroy", env->name), 1u) << "the write was retried; the destroy was not redone";
  auto revs = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(revs->size(), 1u);
  EXPECT_EQ((*revs)[0].status, core::RevisionStatus::stopped);
}

// The write that asks for a deploy signals the cancel after it commits: a worker may have
// picked the new generation up in between. That signal must not cancel the deploy it asked
// for (it did, and the next deploy of the same commit went back to a template that never
// served: CI's KubernetesGitopsTest failure); a newer generation still does.
TEST_F(ReconcilerTest, ACancelForTheGenerationInFlightLetsItFinishAndANewerOneCancelsIt) {
  std::string repo = make_repo();
  engine::BranchUpdate upd{repo, "feature/one", "", false, "alice", std::nullopt, "", ""};
  auto env = controller(true).sync_branch(upd, "poll", "seen");
  ASSERT_TRUE(env);
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));

  // A push whose deploy will be held in the driver's apply: the environment as it left it.
  auto push_held = [&](const std::string& n) -> Expected<core::Environment> {
    m_driver.hold_applies(true);
    m_repo->write_file("N", n);
    upd.commit = m_repo->commit("push " + n);
    return controller().sync_branch(upd, "webhook:push", "push");
  };
  auto second = push_held("2");
  ASSERT_TRUE(second);
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 2, 10000));
  m_reconciler->cancel(env->name, second->generation); // the late signal of that same write
  m_reconciler->cancel(env->name, second->generation - 1);
  m_driver.hold_applies(false);
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment(env->name);
        return e->phase == Phase::ready && e->deployed_commit == upd.commit;
      },
      10000, 5));
  EXPECT_EQ(m_driver.count("apply-cancelled", env->name), 0u);
  EXPECT_EQ(m_driver.count("apply", env->name), 2u) << "deployed once, not superseded and deployed again";

  auto third = push_held("3");
  ASSERT_TRUE(third);
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 3, 10000));
  m_reconciler->cancel(env->name, third->generation + 1); // a newer write
  EXPECT_TRUE(m_driver.wait_for("apply-cancelled", env->name, 1, 10000));
  m_driver.hold_applies(false);
}

// --- Leases ---

TEST_F(ReconcilerTest, LostLeaseCancelsTheApplyAndLeavesTheEnvironmentToItsNewHolder) {
  m_options.lease_ttl = 150; // renewed every 50 ms
  std::string repo = make_repo();
  m_driver.hold_applies(true);
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 1, 10000));
  // `idp unlock`, then another daemon's worker takes the environment.
  ASSERT_TRUE(m_store.break_lease(env->name));
  ASSERT_TRUE(*m_store.try_acquire_lease(env->name, "other-host:1:1", m_clock.now_ms(), 600'000));
  EXPECT_TRUE(m_driver.wait_for("apply-cancelled", env->name, 1, 10000))
      << "the next renewal finds the lease lost and cancels the apply";
  m_driver.hold_applies(false);
  m_reconciler->stop();
  auto lease = m_store.get_lease(env->name);
  ASSERT_TRUE(lease && *lease);
  EXPECT_EQ((*lease)->owner, "other-host:1:1") << "the new holder's lease is left alone";
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->phase, Phase::provisioning) << "the worker wrote nothing after losing the lease";
  EXPECT_EQ(m_driver.count("apply", env->name), 1u);
}

TEST_F(ReconcilerTest, RenewalAfterTheWorkerReleasedDoesNotRecreateTheLease) {
  m_options.lease_ttl = 150; // renewed every 50 ms
  std::string repo = make_repo();
  m_driver.hold_applies(true);
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(env);
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 1, 10000));
  // The renewer's next lease call is held until the worker has finished and released the
  // lease: the renewal then comes from a stale list of in-flight work.
  std::atomic<bool> released_first{false};
  std::atomic<bool> hooked{false};
  m_faulty.before_next({"renew_lease", "try_acquire_lease"}, [&] {
    hooked = true;
    m_driver.hold_applies(false);
    released_first = wait_until(
        [&] {
          auto l = m_store.get_lease(env->name);
          return l && !*l;
        },
        10000, 5);
  });
  ASSERT_TRUE(wait_until([&] { return hooked.load(); }, 10000, 5));
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_reconciler->stop(); // joins the renewer: its held call has returned
  ASSERT_TRUE(released_first) << "the worker did not release its lease";
  auto lease = m_store.get_lease(env->name);
  ASSERT_TRUE(lease);
  EXPECT_FALSE(lease->has_value()) << "a renewal re-created the released lease (owner "
                                   << (lease->has_value() ? (*lease)->owner : "") << ")";
}

// Issue 16 point 8: an app the driver stopped with the server (Health::stopped) starts
// again as the same revision: no new revision, no degraded, an audit event says so.
TEST_F(ReconcilerTest, AppStoppedWithTheServerResumesTheSameRevision) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  auto revs = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(revs->size(), 1u);
  int64_t rev_number = (*revs)[0].number;
  m_options.health_interval = 0;
  m_reconciler->stop();
  m_reconciler = std::make_unique<engine::Reconciler>(m_store, m_drivers, m_templates, m_clock, m_options);
  size_t applies = m_driver.count("apply", env->name);
  m_driver.set_health(env->name, drivers::Health::stopped, "stopped with the server");
  m_reconciler->start();
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, applies + 1, 10000)) << "the stopped app is started again";
  ASSERT_TRUE(wait_until([&] { return count_events(env->name, "resumed") == 1; }, 10000, 5));
  auto calls = m_driver.calls();
  int64_t applied_rev = 0;
  for (const auto& c : calls) {
    if (c.op == "apply") {
      applied_rev = c.revision_id;
    }
  }
  EXPECT_EQ(applied_rev, rev_number) << "the same revision";
  auto after = m_store.list_revisions(env->name, 10);
  ASSERT_EQ(after->size(), 1u) << "no new revision";
  EXPECT_EQ((*after)[0].status, core::RevisionStatus::serving);
  auto e = m_store.get_environment(env->name);
  EXPECT_EQ(e->phase, Phase::ready);
  EXPECT_EQ(e->message, "");
  store::EventQuery q;
  q.env = env->name;
  auto events = m_store.list_events(q);
  ASSERT_TRUE(events);
  for (const auto& ev : *events) {
    EXPECT_NE(ev.to_phase, "degraded") << ev.reason;
  }
}

// A resume that fails is a crash from then on: degraded with the reason.
TEST_F(ReconcilerTest, FailedResumeIsDegradedWithTheReason) {
  std::string repo = make_repo();
  auto env = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  m_reconciler->stop();
  m_reconciler = std::make_unique<engine::Reconciler>(m_store, m_drivers, m_templates, m_clock, m_options);
  m_driver.set_health(env->name, drivers::Health::stopped, "stopped with the server");
  m_driver.fail_next_applies({Error(ErrorCode::permanent, "the app exited with code 1")});
  m_clock.advance(60'000); // the next probe is due
  m_reconciler->start();
  ASSERT_TRUE(wait_phase(env->name, Phase::degraded));
  auto e = m_store.get_environment(env->name);
  EXPECT_NE(e->message.find("did not start again after the server restart: the app exited with code 1"),
            std::string::npos)
      << e->message;
}

// Issue 16: revision numbers count per environment: two environments' first deploys are
// both revision 1 (in the store, the events and what the driver is given).
TEST_F(ReconcilerTest, RevisionsAreNumberedPerEnvironment) {
  std::string repo = make_repo();
  auto one = controller(true).create(request(repo, "feature/one"), "cli:alice");
  ASSERT_TRUE(one);
  ASSERT_TRUE(wait_phase(one->name, Phase::ready));
  m_repo->checkout_new_branch("feature/two");
  auto two = controller().create(request(repo, "feature/two"), "cli:alice");
  ASSERT_TRUE(two);
  ASSERT_TRUE(wait_phase(two->name, Phase::ready));
  for (const auto& name : {one->name, two->name}) {
    auto revs = m_store.list_revisions(name, 10);
    ASSERT_EQ(revs->size(), 1u);
    EXPECT_EQ((*revs)[0].number, 1) << name;
    store::EventQuery q;
    q.env = name;
    bool named = false;
    auto events = m_store.list_events(q);
    ASSERT_TRUE(events);
    for (const auto& ev : *events) {
      named = named || ev.reason.find("revision 1 (") != std::string::npos;
    }
    EXPECT_TRUE(named) << name;
  }
  for (const auto& c : m_driver.calls()) {
    if (c.op == "apply") {
      EXPECT_EQ(c.revision_id, 1) << c.env;
    }
  }
}

// Drivers without a checkout (kubernetes) get the seed's SQL at the deployed commit.
TEST_F(ReconcilerTest, ADatabaseTemplateHandsTheSeedAtTheCommitToTheDriver) {
  std::string dir = m_tmp.sub("db-app");
  GitRepo repo = make_example_repo(dir, "api-database", "feature/seed");
  std::string config = util::read_file(dir + "/.idp/config.yml").value();
  repo.write_file(".idp/config.yml", config + "database:\n  seed: db/seed.sql\n");
  repo.write_file("db/seed.sql", "CREATE TABLE seeded (id int);\n");
  repo.commit("seed");
  auto env = controller(true).create(request(dir, "feature/seed"), "cli:alice");
  ASSERT_TRUE(env) << env.error().full_message();
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  nlohmann::json values;
  for (const auto& c : m_driver.calls()) {
    if (c.op == "apply" && c.env == env->name) {
      values = c.template_values;
    }
  }
  EXPECT_EQ(values.value("database_seed", ""), "CREATE TABLE seeded (id int);\n");

  // A seed the commit does not have reaches the driver as absent (the driver says so).
  repo.remove_file("db/seed.sql");
  repo.commit("no seed");
  auto again = controller(true).redeploy(env->name, "", "cli:alice");
  ASSERT_TRUE(again) << again.error().full_message();
  ASSERT_TRUE(m_driver.wait_for("apply", env->name, 2, 10000));
  ASSERT_TRUE(wait_phase(env->name, Phase::ready));
  for (const auto& c : m_driver.calls()) {
    if (c.op == "apply" && c.env == env->name) {
      values = c.template_values;
    }
  }
  EXPECT_FALSE(values.contains("database_seed")) << values.dump();
}

// Capacity (issue 12, must show 4): beyond a repository's limit a new environment is queued,
// with its place in the queue, not refused; it starts when one of the running ones goes.
TEST_F(ReconcilerTest, BeyondARepositorysLimitANewEnvironmentIsQueuedAndStartsWhenOneIsDestroyed) {
  m_options.limits.per_repo = 2;
  std::string repo = make_repo();
  auto make = [&](const std::string& name) {
    auto r = request(repo, "feature/one");
    r.name = name;
    auto e = controller(true).create(r, "cli:alice");
    EXPECT_TRUE(e) << (e ? "" : e.error().message);
  };
  make("first");
  make("second");
  ASSERT_TRUE(wait_phase("first", Phase::ready));
  ASSERT_TRUE(wait_phase("second", Phase::ready));
  make("third");
  m_clock.advance(1000); // the queue is in order of creation
  make("fourth");
  auto queued = [&](const std::string& name, const std::string& place) {
    return wait_until(
        [&] {
          auto e = m_store.get_environment(name);
          return e && util::starts_with(e->message, "queued (" + place + "): the repository's limit of 2");
        },
        10000, 5);
  };
  ASSERT_TRUE(queued("third", "1 of 2")) << m_store.get_environment("third")->message;
  ASSERT_TRUE(queued("fourth", "2 of 2")) << m_store.get_environment("fourth")->message;
  EXPECT_EQ(m_store.get_environment("third")->phase, Phase::pending);
  EXPECT_EQ(count_events("third", "queue"), 1u) << "one event, however many passes look at it";

  ASSERT_TRUE(controller().destroy("first", "cli:alice", "room for the next"));
  ASSERT_TRUE(wait_phase("third", Phase::ready)) << m_store.get_environment("third")->message;
  ASSERT_TRUE(queued("fourth", "1 of 1")) << "the fourth moves up, still waiting";
  EXPECT_EQ(m_store.get_environment("fourth")->phase, Phase::pending);
  ASSERT_TRUE(controller().destroy("second", "cli:alice", "room"));
  ASSERT_TRUE(wait_phase("fourth", Phase::ready));
}

// Capacity with limits.on_full: evict_lru (issue 12, must show 4): the 4th environment of a
// repository limited to 3 starts at once, and the least recently requested of the three
// is put to sleep to make room, with the reason; asleep, it holds no room.
TEST_F(ReconcilerTest, EvictLruSleepsTheLeastRecentlyRequestedToMakeRoom) {
  m_options.limits.per_repo = 3;
  m_options.limits.evict_lru = true;
  std::string repo = make_repo();
  auto make = [&](const std::string& name) {
    auto r = request(repo, "feature/one");
    r.name = name;
    auto e = controller(true).create(r, "cli:alice");
    EXPECT_TRUE(e) << (e ? "" : e.error().message);
  };
  for (const char* name : {"first", "second", "third"}) {
    make(name);
    ASSERT_TRUE(wait_phase(name, Phase::ready));
  }
  m_clock.advance(120'000);
  util::Millis now = m_clock.now_ms();
  m_driver.set_last_request("first", now - 1'000);
  m_driver.set_last_request("second", now - 60'000); // the least recently requested
  m_driver.set_last_request("third", now - 5'000);
  make("fourth");
  ASSERT_TRUE(wait_phase("fourth", Phase::ready)) << m_store.get_environment("fourth")->message;
  ASSERT_TRUE(wait_until(
      [&] {
        auto e = m_store.get_environment("second");
        return e && e->sleep && e->sleep->state == core::Sleep::State::asleep;
      },
      10'000));
  auto second = m_store.get_environment("second");
  EXPECT_EQ(second->sleep->by, "limits");
  EXPECT_NE(second->sleep->reason.find("the repository's limit of 3 environments"), std::string::npos)
      << second->sleep->reason;
  EXPECT_NE(second->sleep->reason.find("\"fourth\""), std::string::npos);
  EXPECT_EQ(m_driver.count("sleep", "second"), 1u);
  EXPECT_EQ(m_driver.count("sleep"), 1u) << "only the one needed";
  for (const char* awake : {"first", "third", "fourth"}) {
    EXPECT_FALSE(m_store.get_environment(awake)->sleep) << awake;
  }
  EXPECT_EQ(count_events("second", "sleep-requested"), 1u);
}
