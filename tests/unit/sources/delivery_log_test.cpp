#include "sources/delivery_log.hpp"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "contract/store_contract.hpp" // IDP_ASSERT_OK / IDP_ASSERT_OK_ASSIGN
#include "fakes/failing_store.hpp"
#include "fakes/in_memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "support/test_support.hpp"
#include "util/time.hpp"

namespace idp::sources {
namespace {

bool in_store(store::StateStore& store, const std::string& key) {
  auto r = store.any_delivery_recorded({key});
  return r && *r;
}

TEST(DeliveryLogTest, ADeliveryIsNewOnceWhetherItsKeysWaitOrAreStored) {
  testing::InMemoryStore store;
  DeliveryLog log(store);
  IDP_ASSERT_OK_ASSIGN(bool first, log.record({"id-1", "body:a"}, 1000));
  EXPECT_TRUE(first);
  // Whether or not the writer has stored them yet, the same body under a new id is a copy.
  IDP_ASSERT_OK_ASSIGN(bool replay, log.record({"id-2", "body:a"}, 1001));
  EXPECT_FALSE(replay);
  IDP_ASSERT_OK(log.flush());
  EXPECT_TRUE(in_store(store, "id-1"));
  EXPECT_TRUE(in_store(store, "body:a"));
  EXPECT_FALSE(in_store(store, "id-2")) << "a refused delivery records none of its keys";
  IDP_ASSERT_OK_ASSIGN(bool redelivery, log.record({"id-1", "body:b"}, 1002));
  EXPECT_FALSE(redelivery) << "found in the store";
  IDP_ASSERT_OK_ASSIGN(bool other, log.record({"id-2", "body:b"}, 1003));
  EXPECT_TRUE(other);
  IDP_ASSERT_OK(log.flush());
  EXPECT_TRUE(in_store(store, "body:b"));
}

TEST(DeliveryLogTest, AnotherLogOverTheSameStoreKnowsWhatTheFirstTook) {
  testing::InMemoryStore store;
  {
    DeliveryLog log(store);
    IDP_ASSERT_OK_ASSIGN(bool first, log.record({"id-1", "body:a"}, 1000));
    EXPECT_TRUE(first);
  } // the destructor writes what waits
  EXPECT_TRUE(in_store(store, "id-1"));
  DeliveryLog after_restart(store);
  IDP_ASSERT_OK_ASSIGN(bool again, after_restart.record({"id-9", "body:a"}, 2000));
  EXPECT_FALSE(again);
}

TEST(DeliveryLogTest, WhileTheStoreRefusesWritesDeliveriesAreRefusedAndNothingTakenIsLost) {
  testing::InMemoryStore inner;
  testing::FailingStore store(inner);
  DeliveryLog log(store);
  store.fail_next("insert_delivery_keys", 1'000'000);
  IDP_ASSERT_OK_ASSIGN(bool first, log.record({"id-1", "body:a"}, 1000));
  EXPECT_TRUE(first);
  auto flushed = log.flush();
  ASSERT_FALSE(flushed) << "the first write failed";
  auto refused = log.record({"id-2", "body:b"}, 1001);
  ASSERT_FALSE(refused) << "a delivery taken now could not be recorded: the receiver answers 503";
  EXPECT_EQ(refused.error().code, ErrorCode::io_error);
  IDP_ASSERT_OK_ASSIGN(bool copy_check, store.any_delivery_recorded({"id-1"}));
  EXPECT_FALSE(copy_check);
  // The writer retries with a backoff until the write lands.
  store.fail_next("insert_delivery_keys", 0);
  const int64_t deadline = util::steady_ms() + 30000;
  while (!log.flush() && util::steady_ms() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  IDP_ASSERT_OK(log.flush());
  EXPECT_GE(store.injected("insert_delivery_keys"), 1);
  EXPECT_TRUE(in_store(inner, "id-1"));
  EXPECT_TRUE(in_store(inner, "body:a"));
  IDP_ASSERT_OK_ASSIGN(bool after, log.record({"id-2", "body:b"}, 1002));
  EXPECT_TRUE(after);
  IDP_ASSERT_OK_ASSIGN(bool copy, log.record({"id-3", "body:a"}, 1003));
  EXPECT_FALSE(copy);
}

TEST(DeliveryLogTest, AtShutdownWhatWaitsAfterAFailedWriteGetsALastAttempt) {
  testing::InMemoryStore inner;
  testing::FailingStore store(inner);
  {
    DeliveryLog log(store);
    store.fail_next("insert_delivery_keys", 1);
    IDP_ASSERT_OK(log.record({"id-1", "body:a"}, 1000));
    ASSERT_FALSE(log.flush()) << "the first write failed; the writer now backs off";
  }
  EXPECT_TRUE(in_store(inner, "id-1"));
  EXPECT_TRUE(in_store(inner, "body:a"));
}

// Webhooks arrive concurrently: the same body sent by eight senders at once is taken
// exactly once, every other copy is a duplicate, and the losers record none of their keys.
// On a file database, where the keys go through the store's own connection for them.
TEST(DeliveryLogTest, ConcurrentCopiesOfOneBodyAreTakenExactlyOnce) {
  testing::TempDir dir("idp-delivery-log");
  IDP_ASSERT_OK_ASSIGN(auto store, store::sqlite::SqliteStore::open(dir.sub("state.db")));
  constexpr int k_threads = 8;
  constexpr int k_bodies = 60;
  std::atomic<int> errors{0};
  std::vector<std::atomic<int>> per_body(k_bodies);
  {
    DeliveryLog log(*store);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < k_bodies; ++i) {
          auto r =
              log.record({"id-" + std::to_string(t) + "-" + std::to_string(i), "body:" + std::to_string(i)}, 1000 + i);
          if (!r) {
            errors += 1;
          } else if (*r) {
            per_body[static_cast<size_t>(i)] += 1;
          }
        }
      });
    }
    for (auto& th : threads) {
      th.join();
    }
    IDP_ASSERT_OK(log.flush());
  }
  EXPECT_EQ(errors.load(), 0);
  int stored_ids = 0;
  for (int i = 0; i < k_bodies; ++i) {
    EXPECT_EQ(per_body[static_cast<size_t>(i)].load(), 1) << "body " << i;
    EXPECT_TRUE(in_store(*store, "body:" + std::to_string(i)));
    for (int t = 0; t < k_threads; ++t) {
      stored_ids += in_store(*store, "id-" + std::to_string(t) + "-" + std::to_string(i)) ? 1 : 0;
    }
  }
  EXPECT_EQ(stored_ids, k_bodies) << "one delivery id per body: the winner's";
}

} // namespace
} // namespace idp::sources
