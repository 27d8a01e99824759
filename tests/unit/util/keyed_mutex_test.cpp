#include "util/keyed_mutex.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace idp;

namespace {

// A flag a thread sets and another waits for (with a deadline, so a bug fails the test
// instead of hanging it).
struct KeyedMutexTestSignal {
  std::mutex mu;
  std::condition_variable cv;
  bool set = false;

  void raise() {
    std::lock_guard<std::mutex> g(mu);
    set = true;
    cv.notify_all();
  }
  bool wait() {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::seconds(30), [&] { return set; });
  }
};

// Polls (no fixed sleep) until pred holds, at most 30 s.
template <class Pred>
bool keyed_mutex_test_eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

} // namespace

TEST(KeyedMutexTest, DifferentKeysAreHeldAtTheSameTime) {
  util::KeyedMutex km;
  KeyedMutexTestSignal a_held, b_held;
  bool a_saw_b = false, b_saw_a = false;
  // Each thread holds its key until it has seen the other hold its own: this only
  // finishes when both are held at once.
  std::thread ta([&] {
    auto g = km.lock("a");
    a_held.raise();
    a_saw_b = b_held.wait();
  });
  std::thread tb([&] {
    auto g = km.lock("b");
    b_held.raise();
    b_saw_a = a_held.wait();
  });
  ta.join();
  tb.join();
  EXPECT_TRUE(a_saw_b);
  EXPECT_TRUE(b_saw_a);
}

TEST(KeyedMutexTest, TheSameKeyExcludes) {
  util::KeyedMutex km;
  std::optional<util::KeyedMutex::Guard> held = km.lock("env");
  EXPECT_FALSE(km.try_lock("env").has_value());
  EXPECT_TRUE(km.try_lock("other").has_value());

  std::atomic<bool> entered{false};
  std::thread waiter([&] {
    auto g = km.lock("env");
    entered = true;
  });
  // The waiter has asked for the key (counted) and cannot have it while we hold it.
  ASSERT_TRUE(keyed_mutex_test_eventually([&] { return km.users_for_test("env") == 2; }));
  EXPECT_FALSE(entered.load());
  held.reset();
  waiter.join();
  EXPECT_TRUE(entered.load());
}

TEST(KeyedMutexTest, SharedHoldersShareAndExcludeAWriter) {
  util::KeyedMutex km;
  auto r1 = km.lock_shared("tmpl");
  auto r2 = km.lock_shared("tmpl");
  EXPECT_EQ(km.users_for_test("tmpl"), 2u);
  EXPECT_FALSE(km.try_lock("tmpl").has_value());
  r1.release();
  EXPECT_FALSE(km.try_lock("tmpl").has_value());
  r2.release();
  EXPECT_TRUE(km.try_lock("tmpl").has_value());
}

TEST(KeyedMutexTest, EntriesAreFreedWhenUnused) {
  util::KeyedMutex km;
  {
    auto a = km.lock("a");
    auto b = km.lock_shared("b");
    EXPECT_EQ(km.size_for_test(), 2u);
    auto moved = std::move(a);
    EXPECT_EQ(km.size_for_test(), 2u) << "a moved guard still holds its key";
  }
  EXPECT_EQ(km.size_for_test(), 0u);
  EXPECT_TRUE(km.try_lock("x").has_value());
  EXPECT_EQ(km.size_for_test(), 0u) << "a try_lock's guard frees its key when dropped";

  // A failed try_lock leaves nothing behind either.
  auto held = km.lock("busy");
  EXPECT_FALSE(km.try_lock("busy").has_value());
  EXPECT_EQ(km.users_for_test("busy"), 1u);
  held.release();
  held.release(); // idempotent
  EXPECT_EQ(km.size_for_test(), 0u);

  // Many threads over a few keys: when all are done, no entry remains.
  std::vector<std::thread> threads;
  std::atomic<int> inside[3] = {0, 0, 0};
  std::atomic<bool> overlapped{false};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        int k = (t + i) % 3;
        auto g = km.lock("k" + std::to_string(k));
        if (inside[k].fetch_add(1) != 0) {
          overlapped = true;
        }
        inside[k].fetch_sub(1);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_FALSE(overlapped.load()) << "two holders of one key at once";
  EXPECT_EQ(km.size_for_test(), 0u);
}
