#include "util/failpoint.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "util/periodic_thread.hpp"

using namespace idp;
using util::FailAction;

namespace {

// Every test leaves no failpoint armed for the next one.
struct FailpointsOff {
  ~FailpointsOff() { util::set_failpoints({}); }
};

void arm(const std::string& spec) {
  auto parsed = util::parse_failpoints(spec);
  ASSERT_TRUE(parsed) << parsed.error().message;
  util::set_failpoints(*parsed);
}

} // namespace

TEST(FailpointTest, ParsesEveryActionAndCount) {
  auto p = util::parse_failpoints(" a=error, b=throw*1,c=delay(25) ,d=abort*2,e.f_g=error*0");
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->size(), 5u);
  EXPECT_EQ((*p)[0].name, "a");
  EXPECT_EQ((*p)[0].action, FailAction::error);
  EXPECT_EQ((*p)[0].count, -1);
  EXPECT_EQ((*p)[1].action, FailAction::throw_exception);
  EXPECT_EQ((*p)[1].count, 1);
  EXPECT_EQ((*p)[2].action, FailAction::delay);
  EXPECT_EQ((*p)[2].delay_ms, 25);
  EXPECT_EQ((*p)[3].action, FailAction::abort);
  EXPECT_EQ((*p)[3].count, 2);
  EXPECT_EQ((*p)[4].name, "e.f_g");
  EXPECT_EQ((*p)[4].count, 0);
  auto empty = util::parse_failpoints("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(FailpointTest, RejectsMalformedEntriesNamingThem) {
  for (std::string bad :
       {"a", "=error", "a=boom", "a=delay(x)", "a=delay(5", "a=error*", "a=error*-1", "a=error*x", "a=delay(-3)"}) {
    auto p = util::parse_failpoints("ok=error," + bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.error().code, ErrorCode::invalid_config);
    EXPECT_NE(p.error().message.find("IDP_FAILPOINTS"), std::string::npos) << p.error().message;
    EXPECT_NE(p.error().message.find(bad), std::string::npos) << p.error().message;
  }
}

TEST(FailpointTest, NothingFiresWhenNothingIsArmed) {
  FailpointsOff off;
  util::set_failpoints({});
  EXPECT_FALSE(IDP_FAILPOINT("x"));
  EXPECT_EQ(util::failpoint_hits("x"), 0);
}

TEST(FailpointTest, ErrorFiresOnlyForItsNameAndCountLimitsIt) {
  FailpointsOff off;
  arm("x=error*2,always=error");
  EXPECT_FALSE(IDP_FAILPOINT("y"));
  EXPECT_TRUE(IDP_FAILPOINT("x"));
  EXPECT_TRUE(IDP_FAILPOINT("x"));
  EXPECT_FALSE(IDP_FAILPOINT("x")) << "*2 fires twice only";
  EXPECT_EQ(util::failpoint_hits("x"), 2);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(IDP_FAILPOINT("always"));
  }
}

TEST(FailpointTest, ThrowThrowsAFailpointError) {
  FailpointsOff off;
  arm("x=throw*1");
  EXPECT_THROW((void)IDP_FAILPOINT("x"), util::FailpointError);
  EXPECT_NO_THROW((void)IDP_FAILPOINT("x"));
}

TEST(FailpointTest, DelayGoesOnWithoutFailing) {
  FailpointsOff off;
  arm("x=delay(1)");
  EXPECT_FALSE(IDP_FAILPOINT("x"));
  EXPECT_EQ(util::failpoint_hits("x"), 1);
}

TEST(FailpointDeathTest, AbortEndsTheProcess) {
  FailpointsOff off;
  EXPECT_DEATH(
      {
        arm("x=abort");
        (void)IDP_FAILPOINT("x");
      },
      "failpoint x fired");
}

TEST(FailpointTest, ReadsIdpFailpointsFromTheEnvironment) {
  FailpointsOff off;
  ::setenv("IDP_FAILPOINTS", "from.env=error*1", 1);
  ASSERT_TRUE(util::init_failpoints_from_env());
  EXPECT_TRUE(IDP_FAILPOINT("from.env"));
  ::setenv("IDP_FAILPOINTS", "from.env=nonsense", 1);
  EXPECT_FALSE(util::init_failpoints_from_env());
  ::unsetenv("IDP_FAILPOINTS");
  ASSERT_TRUE(util::init_failpoints_from_env());
  EXPECT_FALSE(IDP_FAILPOINT("from.env"));
}

TEST(GuardedStepTest, LogsAThrowAndReturnsFalse) {
  FailpointsOff off;
  EXPECT_TRUE(util::guarded_step("t", [] {}));
  EXPECT_FALSE(util::guarded_step("t", [] { throw std::runtime_error("boom"); }));
  EXPECT_FALSE(util::guarded_step("t", [] { throw 42; }));
  arm("thread.t=throw*1,thread.e=error*1");
  bool ran = false;
  EXPECT_FALSE(util::guarded_step("t", [&] { ran = true; })) << "the thread's failpoint throws before the body";
  EXPECT_FALSE(ran);
  EXPECT_FALSE(util::guarded_step("e", [&] { ran = true; })) << "error throws too: a loop has no error path";
  EXPECT_TRUE(util::guarded_step("t", [&] { ran = true; }));
  EXPECT_TRUE(ran);
}

TEST(GuardedStepTest, ThreadMainRunsTheBodyAgainAfterAThrow) {
  int runs = 0;
  util::thread_main(
      "t",
      [&] {
        if (++runs < 3) {
          throw std::runtime_error("not yet");
        }
      },
      1);
  EXPECT_EQ(runs, 3);
}

TEST(PeriodicThreadSurvivalTest, AStepThatThrowsIsCalledAgain) {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  util::PeriodicThread t;
  t.start(
      [&]() -> util::Millis {
        int n;
        {
          std::lock_guard<std::mutex> g(mu);
          n = ++calls;
        }
        cv.notify_all();
        if (n == 1) {
          throw std::runtime_error("first step fails");
        }
        return 1;
      },
      "survivor");
  std::unique_lock<std::mutex> lk(mu);
  EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return calls >= 3; }));
  lk.unlock();
  t.stop();
}
