#include "sources/poller.hpp"

#include <gtest/gtest.h>

#include "engine/controller.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "unit/sources/recording_actions.hpp"

namespace idp::sources {
namespace {

const std::string k_url = "https://example.com/app.git";

struct Rig {
  testing::InMemoryStore store;
  testing::FakeClock clock;
  testing::RecordingActions actions;
  std::unique_ptr<SeenHeads> seen = std::make_unique<SeenHeads>(store);
  std::unique_ptr<BranchQueue> queue = std::make_unique<BranchQueue>(actions, seen.get());
  std::map<std::string, std::string> heads;
  bool unreachable = false;
  WatchedRepo repo;
  std::unique_ptr<Poller> poller;

  Rig() {
    repo.url = k_url;
    repo.poll = true;
    make_poller();
    queue->start();
  }
  void make_poller() {
    poller = std::make_unique<Poller>(std::vector<WatchedRepo>{repo}, store, *queue, *seen, clock,
                                      [this](const std::string&) -> Expected<std::map<std::string, std::string>> {
                                        if (unreachable) {
                                          return make_error(ErrorCode::transient, "cannot list branches");
                                        }
                                        return heads;
                                      });
  }
  // One pass, then wait for the queued work to run; returns the calls it made.
  std::vector<testing::RecordingActions::Call> poll() {
    size_t before = actions.calls().size();
    auto n = poller->poll_once(repo, "poller");
    EXPECT_TRUE(n) << (n ? "" : n.error().message);
    EXPECT_TRUE(queue->wait_idle(5000));
    auto all = actions.calls();
    return {all.begin() + static_cast<long>(before), all.end()};
  }
  void add_env(const std::string& name, const std::string& branch, const std::string& commit) {
    core::Environment e;
    e.name = name;
    e.repo = k_url;
    e.branch = branch;
    e.commit = commit;
    e.source_key = engine::Controller::source_key(k_url, branch);
    ASSERT_TRUE(store.insert_environment(e, {}));
  }
};

TEST(PollerTest, NewTrackedBranchIsSyncedAtItsHeadOnce) {
  Rig r;
  r.heads = {{"main", "m1"}, {"feature/a", "a1"}};
  r.actions.set_head("feature/a", "a1");
  auto calls = r.poll();
  ASSERT_EQ(calls.size(), 1u); // main is the default branch: not tracked
  EXPECT_EQ(calls[0].op, "sync");
  EXPECT_EQ(calls[0].branch, "feature/a");
  EXPECT_EQ(calls[0].commit, ""); // resolved when it runs: never older than a webhook's
  EXPECT_EQ(calls[0].actor, "poller");
  EXPECT_TRUE(r.poll().empty()); // nothing moved
}

TEST(PollerTest, MovedHeadIsSyncedAgain) {
  Rig r;
  r.heads = {{"feature/a", "a1"}};
  r.actions.set_head("feature/a", "a1");
  r.poll();
  r.add_env("preview-a", "feature/a", "a1");
  r.heads["feature/a"] = "a2";
  r.actions.set_head("feature/a", "a2");
  auto calls = r.poll();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].op, "sync");
}

TEST(PollerTest, WhatAWebhookAlreadyDeliveredIsNotSyncedAgain) {
  Rig r;
  r.add_env("preview-a", "feature/a", "a1"); // a webhook got there first
  r.heads = {{"feature/a", "a1"}};
  EXPECT_TRUE(r.poll().empty());
}

TEST(PollerTest, GoneBranchWithAnEnvironmentIsRemoved) {
  Rig r;
  r.add_env("preview-a", "feature/a", "a1");
  r.add_env("preview-b", "feature/b", "b1");
  r.heads = {{"feature/b", "b1"}};
  auto calls = r.poll();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].op, "remove");
  EXPECT_EQ(calls[0].branch, "feature/a");
}

TEST(PollerTest, AnUnreachableRepositoryRemovesNothing) {
  Rig r;
  r.add_env("preview-a", "feature/a", "a1");
  r.unreachable = true;
  auto n = r.poller->poll_once(r.repo, "poller");
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::transient);
  ASSERT_TRUE(r.queue->wait_idle(5000));
  EXPECT_TRUE(r.actions.calls().empty());
}

TEST(PollerTest, ABranchWhosePrWasClosedIsNotRecreatedEvenAfterARestart) {
  Rig r;
  r.heads = {{"feature/a", "a1"}};
  // The PR was closed (webhook): removed while the branch still exists at a1.
  BranchWork closed;
  closed.op = BranchOp::remove;
  closed.repo = k_url;
  closed.branch = "feature/a";
  closed.head = "a1";
  r.queue->push(closed);
  ASSERT_TRUE(r.queue->wait_idle(5000));
  EXPECT_TRUE(r.poll().empty());
  // Restart: new SeenHeads and poller over the same store.
  r.seen = std::make_unique<SeenHeads>(r.store);
  r.queue = std::make_unique<BranchQueue>(r.actions, r.seen.get());
  r.queue->start();
  r.make_poller();
  EXPECT_TRUE(r.poll().empty());
  // A new push to the branch brings it back.
  r.heads["feature/a"] = "a2";
  auto calls = r.poll();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].op, "sync");
}

TEST(PollerTest, APushAcceptedButNotActedOnBeforeACrashIsFoundAtStartup) {
  Rig r;
  r.add_env("preview-a", "feature/a", "a1");
  r.heads = {{"feature/a", "a1"}};
  r.poll(); // a1 is known
  // The webhook for a2 was accepted, then the daemon died before its work ran: only git knows.
  r.heads["feature/a"] = "a2";
  r.seen = std::make_unique<SeenHeads>(r.store);
  r.queue = std::make_unique<BranchQueue>(r.actions, r.seen.get());
  r.queue->start();
  r.make_poller();
  size_t before = r.actions.calls().size();
  ASSERT_TRUE(r.poller->poll_once(r.repo, "startup"));
  ASSERT_TRUE(r.queue->wait_idle(5000));
  auto calls = r.actions.calls();
  ASSERT_EQ(calls.size(), before + 1);
  EXPECT_EQ(calls.back().op, "sync");
  EXPECT_EQ(calls.back().actor, "startup");
}

TEST(PollerTest, UntrackedBranchesAreLeftAlone) {
  Rig r;
  r.repo.include = {"feature/*"};
  r.make_poller();
  r.heads = {{"feature/a", "a1"}, {"experiment/x", "x1"}};
  auto calls = r.poll();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].branch, "feature/a");
}

} // namespace
} // namespace idp::sources
