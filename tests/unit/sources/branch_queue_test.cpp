#include "sources/branch_queue.hpp"

#include <gtest/gtest.h>

#include "fakes/in_memory_store.hpp"
#include "sources/seen_heads.hpp"
#include "unit/sources/recording_actions.hpp"

namespace idp::sources {
namespace {

const std::string k_repo = "https://example.com/app.git";

BranchWork sync(const std::string& branch, const std::string& commit) {
  BranchWork w;
  w.op = BranchOp::sync;
  w.repo = k_repo;
  w.branch = branch;
  w.commit = commit;
  w.head = commit;
  w.actor = "test";
  return w;
}

BranchWork remove(const std::string& branch, const std::string& head = "") {
  BranchWork w;
  w.op = BranchOp::remove;
  w.repo = k_repo;
  w.branch = branch;
  w.head = head;
  w.actor = "test";
  return w;
}

TEST(BranchQueueTest, SyncsQueuedBehindARunningSyncCoalesceIntoTheNewest) {
  testing::RecordingActions actions;
  BranchQueue q(actions, nullptr);
  q.start();
  actions.hold(true);
  EXPECT_EQ(q.push(sync("b", "c1")), BranchQueue::Pushed::queued);
  ASSERT_TRUE(actions.wait_calls(1, 5000)); // c1 is running (held)
  EXPECT_EQ(q.push(sync("b", "c2")), BranchQueue::Pushed::queued);
  EXPECT_EQ(q.push(sync("b", "c3")), BranchQueue::Pushed::coalesced);
  EXPECT_EQ(q.push(sync("b", "c4")), BranchQueue::Pushed::coalesced);
  actions.hold(false);
  ASSERT_TRUE(q.wait_idle(5000));
  auto calls = actions.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].commit, "c1");
  EXPECT_EQ(calls[1].commit, "c4"); // c2 and c3 were never synced
  EXPECT_EQ(q.stats().coalesced, 2u);
}

TEST(BranchQueueTest, RemovalsMergeAndDropAPendingSync) {
  testing::RecordingActions actions;
  BranchQueue q(actions, nullptr);
  q.push(sync("b", "c1"));
  EXPECT_EQ(q.push(remove("b", "c1")), BranchQueue::Pushed::coalesced); // PR closed: the sync is moot
  EXPECT_EQ(q.push(remove("b")), BranchQueue::Pushed::coalesced);       // and the branch deleted
  auto pending = q.pending_for_test(k_repo, "b");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].op, BranchOp::remove);
  q.start();
  ASSERT_TRUE(q.wait_idle(5000));
  auto calls = actions.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].op, "remove");
}

TEST(BranchQueueTest, ASyncAfterARemovalRunsAfterIt) {
  testing::RecordingActions actions;
  BranchQueue q(actions, nullptr);
  q.push(remove("b"));
  EXPECT_EQ(q.push(sync("b", "c2")), BranchQueue::Pushed::queued); // deleted and pushed again: a fresh env
  EXPECT_EQ(q.push(sync("b", "c3")), BranchQueue::Pushed::coalesced);
  q.start();
  ASSERT_TRUE(q.wait_idle(5000));
  auto calls = actions.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].op, "remove");
  EXPECT_EQ(calls[1].op, "sync");
  EXPECT_EQ(calls[1].commit, "c3");
}

TEST(BranchQueueTest, OneBranchAtATimeOthersInParallel) {
  testing::RecordingActions actions;
  BranchQueue::Options o;
  o.workers = 2;
  BranchQueue q(actions, nullptr, o);
  q.start();
  actions.hold(true);
  q.push(sync("a", "a1"));
  ASSERT_TRUE(actions.wait_calls(1, 5000));
  q.push(remove("a"));     // must wait for a1
  q.push(sync("b", "b1")); // another branch: the second worker takes it
  ASSERT_TRUE(actions.wait_calls(2, 5000));
  auto calls = actions.calls();
  EXPECT_EQ(calls[1].branch, "b");
  actions.hold(false);
  ASSERT_TRUE(q.wait_idle(5000));
  calls = actions.calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[2].op, "remove");
  EXPECT_EQ(calls[2].branch, "a");
}

TEST(BranchQueueTest, TransientFailuresAreRetriedAndRecordedInSeenHeads) {
  testing::InMemoryStore store;
  SeenHeads seen(store);
  testing::RecordingActions actions;
  actions.fail_next({Error(ErrorCode::transient, "cannot fetch")});
  BranchQueue::Options o;
  o.retry_base = 10;
  BranchQueue q(actions, &seen, o);
  q.start();
  q.push(sync("b", "c1"));
  ASSERT_TRUE(actions.wait_calls(2, 5000));
  ASSERT_TRUE(q.wait_idle(5000));
  EXPECT_EQ(q.stats().retried, 1u);
  EXPECT_EQ(q.stats().done, 1u);
  EXPECT_EQ(seen.get(k_repo, "b"), "c1");
  // Persisted: a new instance (a restarted daemon) knows it too.
  SeenHeads again(store);
  EXPECT_EQ(again.get(k_repo, "b"), "c1");
}

TEST(BranchQueueTest, ARejectedConfigIsRememberedSoPollingDoesNotRepeatIt) {
  testing::InMemoryStore store;
  SeenHeads seen(store);
  testing::RecordingActions actions;
  actions.fail_next({Error(ErrorCode::invalid_config, ".idp/config.yml:1:1: bad")});
  BranchQueue q(actions, &seen);
  q.start();
  BranchWork w = sync("b", "");
  w.head = "c9"; // what ls-remote saw
  q.push(w);
  ASSERT_TRUE(q.wait_idle(5000));
  EXPECT_EQ(actions.calls().size(), 1u);
  EXPECT_EQ(q.stats().failed, 1u);
  EXPECT_EQ(q.stats().rejected, 1u);
  EXPECT_EQ(seen.get(k_repo, "b"), "c9");
  // /metrics tells a rejection (the branch's fault) from a failure.
  std::string text = q.metrics_text();
  EXPECT_NE(text.find("idp_branch_work_total{outcome=\"rejected\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("idp_branch_work_total{outcome=\"failed\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("idp_branch_work_received_total 1\n"), std::string::npos) << text;
}

TEST(BranchQueueTest, RemovingADeletedBranchForgetsItsHead) {
  testing::InMemoryStore store;
  SeenHeads seen(store);
  seen.set(k_repo, "b", "c1");
  seen.set(k_repo, "kept", "k1");
  testing::RecordingActions actions;
  BranchQueue q(actions, &seen);
  q.start();
  q.push(remove("b"));          // branch deleted
  q.push(remove("kept", "k2")); // PR closed, branch still at k2
  ASSERT_TRUE(q.wait_idle(5000));
  EXPECT_FALSE(seen.get(k_repo, "b"));
  EXPECT_EQ(seen.get(k_repo, "kept"), "k2");
}

} // namespace
} // namespace idp::sources
