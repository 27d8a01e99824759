#include "drivers/local/uid_allocator.hpp"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "support/test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;

// Uids far above anything /etc/passwd holds on a test machine.
UidRange uid_test_range(uid_t first, uid_t last) { return UidRange{first, last}; }

TEST(UidRangeTest, ParsesFirstDashLast) {
  auto r = UidRange::parse("200000-265535");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->first, 200000u);
  EXPECT_EQ(r->last, 265535u);
  EXPECT_EQ(r->to_string(), "200000-265535");
  for (const char* bad : {"", "200000", "5-10", "300000-200000", "a-b", "200000-", "1000-99999999999"}) {
    auto e = UidRange::parse(bad);
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_EQ(e.error().code, ErrorCode::invalid_config);
    EXPECT_NE(e.error().message.find("expected a uid range like \"200000-265535\""), std::string::npos)
        << e.error().message;
  }
}

TEST(UidAllocatorTest, GivesEachEnvironmentItsOwnUidFromTheRange) {
  TempDir dir;
  UidAllocator a(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
  auto u1 = a.acquire("pr-1");
  auto u2 = a.acquire("pr-2");
  ASSERT_TRUE(u1 && u2);
  EXPECT_EQ(*u1, 3900000u);
  EXPECT_EQ(*u2, 3900001u);
  EXPECT_EQ(*a.acquire("pr-1"), 3900000u) << "the same environment keeps its uid";
  EXPECT_EQ(*a.find("pr-2"), std::optional<uid_t>(3900001u));
  EXPECT_EQ(*a.find("pr-3"), std::nullopt);
}

TEST(UidAllocatorTest, ARestartedDaemonReusesTheRecordedUids) {
  TempDir dir;
  {
    UidAllocator a(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
    ASSERT_TRUE(a.acquire("pr-1"));
    ASSERT_TRUE(a.acquire("pr-2"));
    ASSERT_TRUE(a.release("pr-1"));
  }
  UidAllocator b(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
  EXPECT_EQ(*b.acquire("pr-2"), 3900001u);
  EXPECT_EQ(*b.acquire("pr-9"), 3900000u) << "a released uid is free again";
  struct stat st {};
  ASSERT_EQ(::stat(dir.sub("uids.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(UidAllocatorTest, ExhaustionIsAClearErrorAndRecordsNothing) {
  TempDir dir;
  UidAllocator a(dir.sub("uids.json"), uid_test_range(3900000, 3900001));
  ASSERT_TRUE(a.acquire("pr-1"));
  ASSERT_TRUE(a.acquire("pr-2"));
  auto e = a.acquire("pr-3");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, ErrorCode::conflict);
  EXPECT_NE(e.error().message.find("no free uid for environment \"pr-3\""), std::string::npos) << e.error().message;
  EXPECT_NE(e.error().message.find("3900000-3900001"), std::string::npos) << e.error().message;
  EXPECT_NE(e.error().message.find("uid_range"), std::string::npos) << e.error().message;
  EXPECT_EQ(*a.find("pr-3"), std::nullopt);
  ASSERT_TRUE(a.release("pr-1"));
  EXPECT_EQ(*a.acquire("pr-3"), 3900000u);
}

TEST(UidAllocatorTest, RetainFreesTheUidsOfEnvironmentsThatAreGone) {
  TempDir dir;
  UidAllocator a(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
  ASSERT_TRUE(a.acquire("pr-1"));
  ASSERT_TRUE(a.acquire("pr-2"));
  ASSERT_TRUE(a.retain({"pr-2"}));
  UidAllocator b(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
  EXPECT_EQ(*b.find("pr-1"), std::nullopt);
  EXPECT_EQ(*b.find("pr-2"), std::optional<uid_t>(3900001u));
}

TEST(UidAllocatorTest, SkipsUidsThatHaveAPasswdEntry) {
  TempDir dir;
  // "nobody" is 65534 on Debian and most distributions; skip where it is not.
  if (::getpwuid(65534) == nullptr || ::getpwuid(65535) != nullptr) {
    GTEST_SKIP() << "uid 65534 is not \"nobody\" here";
  }
  UidAllocator a(dir.sub("uids.json"), uid_test_range(65534, 65535));
  auto u = a.acquire("pr-1");
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(*u, 65535u);
}

TEST(UidAllocatorTest, TwoHomesOnOneMachineNeverShareAUid) {
  TempDir dir;
  UidAllocator a(dir.sub("a/uids.json"), uid_test_range(3900000, 3900009), dir.sub("claims"));
  UidAllocator b(dir.sub("b/uids.json"), uid_test_range(3900000, 3900009), dir.sub("claims"));
  ASSERT_TRUE(util::ensure_dir(dir.sub("a")) && util::ensure_dir(dir.sub("b")));
  EXPECT_EQ(*a.acquire("pr-1"), 3900000u);
  EXPECT_EQ(*b.acquire("pr-1"), 3900001u) << "uid 3900000 is claimed by the other home";
  ASSERT_TRUE(a.release("pr-1"));
  EXPECT_FALSE(util::path_exists(dir.sub("claims/3900000")));
  EXPECT_TRUE(util::path_exists(dir.sub("claims/3900001")));
  EXPECT_EQ(*b.acquire("pr-2"), 3900000u);
  // A claim of a home that no longer exists is taken over.
  ASSERT_TRUE(util::write_file_atomic(dir.sub("claims/3900002"), dir.sub("gone/uids.json")));
  EXPECT_EQ(*a.acquire("pr-3"), 3900002u);
}

// Homes taking over the same stale claims at once: each uid goes to one of them (the
// take-over is done under the claim file's lock; a plain rewrite let two homes both win).
TEST(UidAllocatorTest, HomesRacingForStaleClaimsNeverShareAUid) {
  constexpr int k_homes = 8;
  for (int round = 0; round < 40; ++round) {
    TempDir dir;
    ASSERT_TRUE(util::ensure_dir(dir.sub("claims"), 0700));
    for (uid_t u = 3910000; u < 3910000 + k_homes; ++u) {
      ASSERT_TRUE(util::write_file_atomic(dir.sub("claims/" + std::to_string(u)), dir.sub("gone/uids.json")));
    }
    std::vector<std::unique_ptr<UidAllocator>> homes;
    for (int h = 0; h < k_homes; ++h) {
      std::string home = dir.sub("h" + std::to_string(h));
      ASSERT_TRUE(util::ensure_dir(home));
      homes.push_back(std::make_unique<UidAllocator>(
          home + "/uids.json", uid_test_range(3910000, 3910000 + k_homes - 1), dir.sub("claims")));
    }
    std::vector<uid_t> got(k_homes, 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int h = 0; h < k_homes; ++h) {
      threads.emplace_back([&, h] {
        ready.fetch_add(1);
        while (ready.load() < k_homes) {
          std::this_thread::yield(); // start together
        }
        auto uid = homes[h]->acquire("pr-1");
        got[h] = uid ? *uid : 0;
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    std::set<uid_t> distinct;
    for (int h = 0; h < k_homes; ++h) {
      ASSERT_NE(got[h], 0u) << "home " << h << " got no uid in round " << round;
      distinct.insert(got[h]);
      auto owner = util::read_file(dir.sub("claims/" + std::to_string(got[h])));
      ASSERT_TRUE(owner.has_value());
      EXPECT_EQ(*owner, dir.sub("h" + std::to_string(h) + "/uids.json")) << "round " << round;
    }
    EXPECT_EQ(distinct.size(), static_cast<size_t>(k_homes)) << "round " << round;
  }
}

TEST(UidAllocatorTest, AMalformedTableIsAnError) {
  TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("uids.json"), "[1,2]"));
  UidAllocator a(dir.sub("uids.json"), uid_test_range(3900000, 3900009));
  auto e = a.acquire("pr-1");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().code, ErrorCode::io_error);
}

} // namespace
} // namespace idp::drivers::local
