// ConnectionPool: a stream takes its connection's thread out of the request threads (a
// replacement starts), at most max_streams at once; requests keep their threads.
#include "api/connection_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

using idp::api::ConnectionPool;
using idp::testing::wait_until;

TEST(ConnectionPoolTest, StreamsLeaveTheRequestThreadsAndAreCapped) {
  ConnectionPool pool("test_pool", 2, 3);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::vector<ConnectionPool::Claim> claims;
  std::vector<ConnectionPool::Claim> second_claims;
  // Five connections that each want a stream; those that get one hold their thread until released.
  for (int i = 0; i < 5; ++i) {
    pool.enqueue([&] {
      ConnectionPool::Claim c = ConnectionPool::claim_stream();
      std::unique_lock<std::mutex> lk(mu);
      claims.push_back(c);
      if (c == ConnectionPool::Claim::claimed) {
        second_claims.push_back(ConnectionPool::claim_stream());
      }
      cv.notify_all();
      if (c == ConnectionPool::Claim::claimed) {
        cv.wait(lk, [&] { return release; });
      }
    });
  }
  {
    std::unique_lock<std::mutex> lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return claims.size() == 5; }));
    EXPECT_EQ(std::count(claims.begin(), claims.end(), ConnectionPool::Claim::claimed), 3);
    EXPECT_EQ(std::count(claims.begin(), claims.end(), ConnectionPool::Claim::full), 2);
    EXPECT_EQ(second_claims, std::vector<ConnectionPool::Claim>(3, ConnectionPool::Claim::held))
        << "a connection that streams already holds its slot";
  }
  EXPECT_EQ(pool.streams(), 3u);

  // Every stream slot taken, yet requests are served.
  std::atomic<int> served{0};
  for (int i = 0; i < 20; ++i) {
    pool.enqueue([&] { served += 1; });
  }
  EXPECT_TRUE(wait_until([&] { return served.load() == 20; }, 30000)) << served.load();

  // Streams that end free their slots.
  {
    std::lock_guard<std::mutex> g(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(wait_until([&] { return pool.streams() == 0; }, 30000)) << pool.streams();
  std::atomic<bool> claimed_again{false};
  pool.enqueue([&] { claimed_again = ConnectionPool::claim_stream() == ConnectionPool::Claim::claimed; });
  EXPECT_TRUE(wait_until([&] { return claimed_again.load(); }, 30000));
  pool.shutdown();
  EXPECT_EQ(pool.streams(), 0u);
}

TEST(ConnectionPoolTest, AStreamOutsideAPoolIsRefused) {
  EXPECT_EQ(ConnectionPool::claim_stream(), ConnectionPool::Claim::not_pooled);
}
