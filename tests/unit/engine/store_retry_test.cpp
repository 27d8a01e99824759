#include "engine/store_retry.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace idp;
using engine::StoreRetry;

TEST(StoreRetryTest, RetriesAStoreFailureUntilItSucceeds) {
  StoreRetry retry(1, 4);
  int calls = 0;
  auto r = retry.run<int>("test: write", [&]() -> Expected<int> {
    if (++calls < 5) {
      return make_error(calls % 2 == 0 ? ErrorCode::transient : ErrorCode::io_error, "database is locked");
    }
    return 42;
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(calls, 5);
}

TEST(StoreRetryTest, AResultThatIsNotAStoreFailureIsReturnedAtOnce) {
  StoreRetry retry(1, 4);
  int calls = 0;
  auto r = retry.run<void>("test: write", [&]() -> Expected<void> {
    ++calls;
    return make_error(ErrorCode::conflict, "superseded");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::conflict);
  EXPECT_EQ(calls, 1);
}

TEST(StoreRetryTest, GivesUpWhenToldOrStopped) {
  StoreRetry retry(1, 4);
  int calls = 0;
  auto failing = [&]() -> Expected<void> {
    ++calls;
    return make_error(ErrorCode::io_error, "disk I/O error");
  };
  auto given_up = retry.run<void>("test: write", failing, [&] { return calls >= 3; });
  ASSERT_FALSE(given_up);
  EXPECT_EQ(calls, 3);

  // stop() ends a retry that waits a long time.
  StoreRetry slow(60'000, 60'000);
  calls = 0;
  std::thread stopper([&] {
    // Stopping before the first attempt or during the wait both end the loop.
    slow.stop();
  });
  auto stopped = slow.run<void>("test: write", failing);
  stopper.join();
  ASSERT_FALSE(stopped);
  EXPECT_GE(calls, 1);
  EXPECT_LE(calls, 2);
}
