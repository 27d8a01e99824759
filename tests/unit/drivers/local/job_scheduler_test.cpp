#include "drivers/local/job_scheduler.hpp"

#include <csignal>
#include <gtest/gtest.h>
#include <mutex>
#include <thread>

#include "drivers/common/log_files.hpp"
#include "fakes/fake_clock.hpp"
#include "local_test_support.hpp"
#include "util/fs.hpp"
#include "util/proc.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::FakeClock;
using idp::testing::TempDir;
using idp::testing::wait_until;

constexpr util::Millis k_minute = 60'000;
constexpr util::Millis k_t0 = 1'767'225'600'000; // 2026-01-01T00:00:00Z

core::Schedule parse(const std::string& expr) {
  auto s = core::Schedule::parse(expr);
  EXPECT_TRUE(s.has_value()) << expr;
  return *s;
}

TEST(DueTimesTest, RateIsDueOneIntervalAfterTheLastTime) {
  auto s = parse("rate(5 minutes)");
  ScheduleClock c{k_t0, 1};
  EXPECT_FALSE(due_times(s, c, k_t0, k_t0 + 5 * k_minute - 1).due);
  auto d = due_times(s, c, k_t0, k_t0 + 5 * k_minute);
  ASSERT_TRUE(d.due);
  EXPECT_EQ(*d.due, k_t0 + 5 * k_minute);
  EXPECT_EQ(d.missed, 0);
}

TEST(DueTimesTest, SeveralDueTimesCollapseIntoTheLatest) {
  auto s = parse("rate(1 minute)");
  ScheduleClock c{k_t0, 1};
  auto d = due_times(s, c, k_t0, k_t0 + 10 * k_minute + 30'000);
  ASSERT_TRUE(d.due);
  EXPECT_EQ(*d.due, k_t0 + 10 * k_minute);
  EXPECT_EQ(d.missed, 9);
  EXPECT_EQ(d.first_missed, k_t0 + k_minute);
}

TEST(DueTimesTest, CronWalksToTheLatestMatchingMinute) {
  auto s = parse("cron(0/15 * * * ? *)");
  ScheduleClock c{k_t0, 1};
  EXPECT_FALSE(due_times(s, c, k_t0, k_t0 + 14 * k_minute).due);
  auto d = due_times(s, c, k_t0, k_t0 + 15 * k_minute);
  ASSERT_TRUE(d.due);
  EXPECT_EQ(*d.due, k_t0 + 15 * k_minute);
  d = due_times(s, c, k_t0, k_t0 + 50 * k_minute);
  ASSERT_TRUE(d.due);
  EXPECT_EQ(*d.due, k_t0 + 45 * k_minute);
  EXPECT_EQ(d.missed, 2);
  EXPECT_EQ(d.first_missed, k_t0 + 15 * k_minute);
}

TEST(DueTimesTest, TimeScaleMakesScheduleTimeRunFaster) {
  auto s = parse("rate(1 minute)");
  ScheduleClock c{k_t0, 60}; // a schedule minute per real second
  EXPECT_FALSE(due_times(s, c, k_t0, k_t0 + 999).due);
  auto d = due_times(s, c, k_t0, k_t0 + 1000);
  ASSERT_TRUE(d.due);
  EXPECT_EQ(c.to_real(*d.due), k_t0 + 1000);
  EXPECT_EQ(c.to_schedule(k_t0 + 2000), k_t0 + 2 * k_minute);
}

// A scheduler on a fake clock with an in-memory recorder; the test binary is the shim.
class JobSchedulerTest : public ::testing::Test {
protected:
  TempDir dir{"idp-sched"};
  FakeClock clock{k_t0};
  std::mutex mu;
  std::map<int64_t, core::JobRun> runs;
  std::unique_ptr<JobScheduler> scheduler;
  int64_t grace_ms = 2000;

  void SetUp() override { make_scheduler(); }
  void TearDown() override {
    if (scheduler) {
      scheduler->remove("jobs", "test over");
    }
  }

  void make_scheduler(int64_t scale = 1) {
    JobScheduler::Options o;
    o.self_exe = testing::self_exe();
    o.home_id = "home-a";
    o.clock = &clock;
    o.time_scale = scale;
    o.stop_grace_ms = grace_ms;
    o.job_runs.insert = [this](const core::JobRun& r) -> Expected<int64_t> {
      std::lock_guard<std::mutex> g(mu);
      int64_t id = static_cast<int64_t>(runs.size()) + 1;
      runs[id] = r;
      runs[id].id = id;
      return id;
    };
    o.job_runs.update = [this](const core::JobRun& r) -> Expected<void> {
      std::lock_guard<std::mutex> g(mu);
      runs[r.id] = r;
      return {};
    };
    o.job_runs.list = [this](const std::string& env, size_t limit) -> Expected<std::vector<core::JobRun>> {
      std::lock_guard<std::mutex> g(mu);
      std::vector<core::JobRun> out;
      for (auto it = runs.rbegin(); it != runs.rend() && out.size() < limit; ++it) {
        if (it->second.env == env) {
          out.push_back(it->second);
        }
      }
      return out;
    };
    scheduler = std::make_unique<JobScheduler>(o);
  }

  JobScheduler::Job job(std::vector<std::string> argv, const std::string& expr = "rate(1 minute)") {
    JobScheduler::Job j;
    j.env = "jobs";
    j.expression = expr;
    j.argv = std::move(argv);
    j.cwd = dir.path();
    j.env_dir = dir.sub("envs/jobs");
    j.log_dir = dir.sub("envs/jobs/logs");
    j.environment = [] {
      return Expected<std::map<std::string, std::string>>(
          std::map<std::string, std::string>{{"PATH", "/usr/local/bin:/usr/bin:/bin"}});
    };
    EXPECT_TRUE(util::ensure_dir(j.env_dir).has_value());
    return j;
  }

  core::JobRun run(int64_t id) {
    std::lock_guard<std::mutex> g(mu);
    return runs.count(id) ? runs[id] : core::JobRun{};
  }
  size_t run_count() {
    std::lock_guard<std::mutex> g(mu);
    return runs.size();
  }
  std::string log_text() {
    LogQuery q;
    auto chunk = common::LogReader(dir.sub("envs/jobs/logs")).read(q);
    std::string out;
    for (const auto& l : chunk->lines) {
      out += l.stream + ": " + l.text + "\n";
    }
    return out;
  }
};

TEST_F(JobSchedulerTest, RunDueWhileThePreviousOneRunsIsRecordedAsSkipped) {
  ASSERT_TRUE(scheduler->set(job({"sleep", "30"})).has_value());
  scheduler->tick();
  EXPECT_EQ(run_count(), 0u) << "nothing is due before the first interval";
  clock.advance(k_minute);
  scheduler->tick();
  ASSERT_EQ(run_count(), 1u);
  EXPECT_EQ(run(1).status, "running");
  EXPECT_EQ(run(1).scheduled_at, k_t0 + k_minute);
  clock.advance(k_minute);
  scheduler->tick();
  clock.advance(k_minute);
  scheduler->tick();
  ASSERT_EQ(run_count(), 3u);
  for (int64_t id : {2, 3}) {
    EXPECT_EQ(run(id).status, "skipped");
    EXPECT_NE(run(id).message.find("run 1"), std::string::npos) << run(id).message;
    EXPECT_NE(run(id).message.find("still running"), std::string::npos) << run(id).message;
  }
  EXPECT_EQ(scheduler->status("jobs")["running"]["id"], 1);
  scheduler->remove("jobs", "stopped by the test");
  EXPECT_EQ(run(1).status, "failed");
  EXPECT_EQ(run(1).message, "stopped by the test");
  EXPECT_NE(log_text().find("skipped: run 1"), std::string::npos) << log_text();
}

// Issue 16: the job sees in IDP_JOB_RUN the run id `idp status` lists.
TEST_F(JobSchedulerTest, JobRunVariableIsTheRecordedRunId) {
  ASSERT_TRUE(scheduler->set(job({"sh", "-c", "echo run=$IDP_JOB_RUN"})).has_value());
  for (int64_t id : {1, 2}) {
    clock.advance(k_minute);
    scheduler->tick();
    ASSERT_TRUE(wait_until(
        [&] {
          scheduler->tick();
          return run(id).status == "succeeded";
        },
        10000))
        << log_text();
  }
  std::string log = log_text();
  EXPECT_NE(log.find("stdout: run=1\n"), std::string::npos) << log;
  EXPECT_NE(log.find("stdout: run=2\n"), std::string::npos) << log;
}

TEST_F(JobSchedulerTest, FinishedRunRecordsItsExitCodeAndOutput) {
  ASSERT_TRUE(scheduler->set(job({"sh", "-c", "echo hello from the job; exit 3"})).has_value());
  clock.advance(k_minute);
  scheduler->tick();
  ASSERT_EQ(run_count(), 1u);
  ASSERT_TRUE(wait_until(
      [&] {
        scheduler->tick();
        return run(1).status != "running";
      },
      10000));
  EXPECT_EQ(run(1).status, "failed");
  EXPECT_EQ(run(1).exit_code, 3);
  EXPECT_GT(run(1).finished_at, 0);
  EXPECT_EQ(run(1).message, "exited with code 3");
  std::string log = log_text();
  EXPECT_NE(log.find("stdout: hello from the job"), std::string::npos) << log;
  EXPECT_NE(log.find("job run 1 failed: exited with code 3"), std::string::npos) << log;
  clock.advance(k_minute);
  scheduler->tick();
  EXPECT_EQ(run(2).status, "running") << "the next time runs normally";
}

TEST_F(JobSchedulerTest, TimesMissedWhileDownCollapseIntoOneRun) {
  ASSERT_TRUE(scheduler->set(job({"true"})).has_value());
  clock.advance(10 * k_minute + 1000);
  scheduler->tick();
  ASSERT_EQ(run_count(), 2u);
  EXPECT_EQ(run(1).status, "skipped");
  EXPECT_NE(run(1).message.find("9 run(s)"), std::string::npos) << run(1).message;
  EXPECT_EQ(run(2).scheduled_at, k_t0 + 10 * k_minute);
  EXPECT_TRUE(wait_until(
      [&] {
        scheduler->tick();
        return run(2).status == "succeeded";
      },
      10000));
  EXPECT_EQ(run(2).exit_code, 0);
}

TEST_F(JobSchedulerTest, RestartedSchedulerRecordsARunThatEndedWhileItWasDown) {
  ASSERT_TRUE(scheduler->set(job({"sh", "-c", "sleep 1; exit 7"})).has_value());
  clock.advance(k_minute);
  scheduler->tick();
  ASSERT_EQ(run(1).status, "running");
  scheduler.reset(); // the daemon goes away; the run goes on under its shim
  make_scheduler();
  ASSERT_TRUE(scheduler->set(job({"sh", "-c", "sleep 1; exit 7"})).has_value());
  EXPECT_EQ(scheduler->status("jobs")["running"]["id"], 1) << "resumed from schedule.json";
  ASSERT_TRUE(wait_until(
      [&] {
        scheduler->tick();
        return run(1).status != "running";
      },
      10000));
  EXPECT_EQ(run(1).exit_code, 7);
  clock.advance(k_minute);
  scheduler->tick();
  EXPECT_EQ(run_count(), 2u) << "the anchor survived: the next time is one interval later";
}

TEST_F(JobSchedulerTest, RunTheStoreHadButScheduleJsonLackedIsSettledNotDuplicated) {
  // The daemon was killed after the store recorded run 2 as running and before
  // schedule.json got its id (and before any shim started); run 1 is an older row a crash
  // left "running" that schedule.json no longer mentions.
  const util::Millis due = k_t0 + k_minute;
  {
    std::lock_guard<std::mutex> g(mu);
    runs[1] = core::JobRun{1, "jobs", k_t0, k_t0, 0, -1, "running", ""};
    runs[2] = core::JobRun{2, "jobs", due, due, 0, -1, "running", ""};
  }
  JobScheduler::Job j = job({"true"});
  nlohmann::json state = {{"anchor", k_t0},
                          {"expression", j.expression},
                          {"last", due},
                          {"local_seq", 0},
                          {"running",
                           {{"id", 0},
                            {"scheduled_at", due},
                            {"started_at", due},
                            {"dir", j.env_dir + "/runs/" + std::to_string(due)},
                            {"shim_pid", 0},
                            {"shim_start_time", 0}}},
                          {"unrecorded", nlohmann::json::array()}};
  ASSERT_TRUE(util::write_file_atomic(j.env_dir + "/schedule.json", state.dump()).has_value());
  clock.advance(k_minute + 1000);
  ASSERT_TRUE(scheduler->set(j).has_value());
  EXPECT_EQ(scheduler->status("jobs")["running"]["id"], 2) << "the resumed run adopted the store's row";
  scheduler->tick();
  EXPECT_EQ(run_count(), 2u) << "no second row for the same run";
  EXPECT_EQ(run(2).status, "failed");
  EXPECT_EQ(run(2).message, "the server stopped while starting this run");
  EXPECT_EQ(run(1).status, "failed") << "a row nothing would ever finish is settled";
  EXPECT_GT(run(1).finished_at, 0);
}

// A run whose shim the daemon never recorded (it died just after starting it) is found by
// its processes' markers. Another idp home on the machine has a run with the same id in an
// environment of the same name: its process must not keep this home's run "running".
TEST_F(JobSchedulerTest, CrashedRunIsNotKeptRunningByAnotherHomesProcess) {
  JobScheduler::Job j = job({"true"});
  const util::Millis due = k_t0 + k_minute;
  {
    std::lock_guard<std::mutex> g(mu);
    runs[1] = core::JobRun{1, "jobs", due, due, 0, -1, "running", ""};
  }
  auto marked_sleeper = [&](const std::string& home_id) {
    util::Command c;
    c.argv = {"sleep", "60"};
    c.clear_env = true;
    c.env = {{"PATH", "/usr/bin:/bin"}, {"IDP_JOB_RUN", "1"}, {"IDP_ENVIRONMENT", "jobs"}, {"IDP_HOME_ID", home_id}};
    util::SpawnOptions so;
    so.detach = true;
    auto pid = util::spawn(c, so);
    EXPECT_TRUE(pid.has_value());
    return pid.value_or(0);
  };
  const pid_t ours = marked_sleeper("home-a");
  const pid_t theirs = marked_sleeper("home-b");
  ASSERT_GT(ours, 0);
  ASSERT_GT(theirs, 0);
  nlohmann::json state = {{"anchor", k_t0},
                          {"expression", j.expression},
                          {"last", due},
                          {"local_seq", 0},
                          {"running",
                           {{"id", 1},
                            {"scheduled_at", due},
                            {"started_at", due},
                            {"dir", j.env_dir + "/runs/" + std::to_string(due)},
                            {"shim_pid", 0},
                            {"shim_start_time", 0}}},
                          {"unrecorded", nlohmann::json::array()}};
  ASSERT_TRUE(util::write_file_atomic(j.env_dir + "/schedule.json", state.dump()).has_value());
  clock.advance(k_minute + 1000);
  ASSERT_TRUE(scheduler->set(j).has_value());
  scheduler->tick();
  EXPECT_EQ(run(1).status, "running") << "this home's process of run 1 still runs";
  ::kill(ours, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return !util::process_alive(ours); }, 10000));
  scheduler->tick();
  EXPECT_EQ(run(1).status, "failed") << "only another home's process carries run 1's marker now";
  EXPECT_EQ(run(1).message, "the server stopped while starting this run");
  EXPECT_TRUE(util::process_alive(theirs)) << "another home's process is left alone";
  ::kill(theirs, SIGKILL);
}

TEST_F(JobSchedulerTest, ScaledClockRunsAMinuteScheduleEverySecond) {
  make_scheduler(60);
  ASSERT_TRUE(scheduler->set(job({"true"})).has_value());
  clock.advance(1000);
  scheduler->tick();
  ASSERT_EQ(run_count(), 1u);
  EXPECT_EQ(run(1).scheduled_at, k_t0 + 1000) << "recorded in real time";
}

TEST_F(JobSchedulerTest, BadExpressionIsInvalidConfig) {
  auto r = scheduler->set(job({"true"}, "rate(0 minutes)"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
}

TEST_F(JobSchedulerTest, EnvironmentErrorFailsTheRunWithoutStartingIt) {
  auto j = job({"true"});
  j.environment = [] {
    return Expected<std::map<std::string, std::string>>(
        make_error(ErrorCode::permanent, "secret \"TOKEN\": variable \"X\" is not set"));
  };
  ASSERT_TRUE(scheduler->set(j).has_value());
  clock.advance(k_minute);
  scheduler->tick();
  EXPECT_EQ(run(1).status, "failed");
  EXPECT_NE(run(1).message.find("TOKEN"), std::string::npos);
}

// A mutex guards memory, never I/O: while remove() stops a run that ignores TERM (a long
// grace before KILL), status(), which observe() uses, answers at once.
TEST_F(JobSchedulerTest, StatusAnswersWhileARunIsBeingStopped) {
  grace_ms = 60000;
  make_scheduler();
  std::string pid_file = dir.path() + "/job.pid";
  std::string term_file = dir.path() + "/got-term";
  ASSERT_TRUE(
      scheduler
          ->set(job({"sh", "-c",
                     "echo $$ > " + pid_file + "; trap 'touch " + term_file + "' TERM; while :; do sleep 0.1; done"}))
          .has_value());
  clock.advance(k_minute);
  scheduler->tick();
  ASSERT_EQ(run_count(), 1u);
  ASSERT_TRUE(wait_until([&] { return util::read_file(pid_file).has_value(); }, 20000));
  pid_t pid = static_cast<pid_t>(std::stol(*util::read_file(pid_file)));
  std::thread remover([&] { scheduler->remove("jobs", "stopped by the test"); });
  ASSERT_TRUE(wait_until([&] { return util::read_file(term_file).has_value(); }, 20000));
  EXPECT_TRUE(scheduler->status("jobs").is_null());
  EXPECT_FALSE(scheduler->has("jobs"));
  // Had status() waited for the scheduler's lock, the run would have been killed by now.
  EXPECT_TRUE(util::process_alive(pid));
  ::kill(pid, SIGKILL);
  remover.join();
  EXPECT_EQ(run(1).status, "failed");
}

} // namespace
} // namespace idp::drivers::local
