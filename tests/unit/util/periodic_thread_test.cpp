#include "util/periodic_thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

using namespace idp;

namespace {

// Counts steps and lets the test wait for a number of them.
struct Steps {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;

  void hit() {
    std::lock_guard<std::mutex> g(mu);
    ++calls;
    cv.notify_all();
  }
  bool wait_for_calls(int n) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(30), [&] { return calls >= n; });
  }
};

} // namespace

TEST(PeriodicThreadTest, CallsTheStepAgainAfterTheWaitItReturns) {
  Steps steps;
  util::PeriodicThread t;
  EXPECT_TRUE(t.stopping()) << "not started yet";
  t.start([&] {
    steps.hit();
    return util::Millis{1};
  });
  EXPECT_FALSE(t.stopping());
  ASSERT_TRUE(steps.wait_for_calls(5));
  t.stop();
  EXPECT_TRUE(t.stopping());
  int after_stop = steps.calls;
  t.stop(); // twice is fine
  EXPECT_EQ(steps.calls, after_stop) << "no step runs after stop() returned";
}

TEST(PeriodicThreadTest, StopEndsALongWaitAndTheThreadCanStartAgain) {
  Steps steps;
  util::PeriodicThread t;
  auto hour_step = [&] {
    steps.hit();
    return util::Millis{3'600'000};
  };
  t.start(hour_step);
  ASSERT_TRUE(steps.wait_for_calls(1));
  t.start(hour_step); // already running: nothing happens
  t.stop();           // returns without waiting out the hour (else the test times out)
  EXPECT_EQ(steps.calls, 1);
  t.start(hour_step);
  ASSERT_TRUE(steps.wait_for_calls(2)) << "a stopped thread starts again";
}

TEST(PeriodicThreadTest, ALongStepSeesTheStop) {
  std::atomic<bool> saw_stop{false};
  Steps entered;
  util::PeriodicThread t;
  t.start([&] {
    entered.hit();
    while (!t.stopping()) {
      std::this_thread::yield();
    }
    saw_stop = true;
    return util::Millis{1};
  });
  ASSERT_TRUE(entered.wait_for_calls(1));
  t.stop();
  EXPECT_TRUE(saw_stop);
}
