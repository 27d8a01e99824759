// scheduled-worker on the local runtime: runs on its schedule (with a shortened clock),
// records every run with its exit code, never runs twice at once, logs the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "templates_test_support.hpp"
#include "util/fs.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

TEST_F(TemplatesTest, ScheduledWorkerRunsRecordsExitCodesAndSkipsOverlaps) {
  // One schedule minute per real second: rate(1 minute) runs every second.
  auto d = make_daemon({{"schedule_time_scale", 60}});
  GitRepo repo = make_example_repo(tmp.sub("app"), "scheduled-worker", "feature/jobs");
  // Each run takes 2.5 s, longer than the interval, and exits with 3.
  repo.write_file(".idp/config.yml", "template: scheduled-worker\n"
                                     "schedule_expression: rate(1 minute)\n"
                                     "environment:\n"
                                     "  JOB_SLEEP_MS: \"2500\"\n"
                                     "  JOB_EXIT_CODE: \"3\"\n"
                                     "local:\n"
                                     "  start: \"node job.js\"\n");
  repo.commit("every minute");
  auto validated = d->cli({"config", "validate", repo.path() + "/.idp/config.yml"});
  EXPECT_EQ(validated.exit_code, 0) << validated.out << validated.err;
  auto created = d->cli({"create", "--repo", repo.path(), "--branch", "feature/jobs"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d->log();
  const std::string env = "preview-jobs";
  json url = d->env(env)["url"];
  EXPECT_TRUE(url.is_null() || url == "") << "a job has no URL: " << url;

  auto runs = [&] { return status(*d, env)["job_runs"]; };
  auto count = [](const json& rs, const std::string& st) {
    return std::count_if(rs.begin(), rs.end(), [&](const json& r) { return r["status"] == st; });
  };
  ASSERT_TRUE(wait_until(
      [&] {
        json rs = runs();
        return count(rs, "failed") >= 2 && count(rs, "skipped") >= 2;
      },
      60000, 250))
      << runs().dump(2) << "\n"
      << d->log();

  json rs = runs();
  for (const auto& r : rs) {
    if (r["status"] == "failed") {
      EXPECT_EQ(r["exit_code"], 3) << r.dump();
      EXPECT_TRUE(r["started_at"].is_string() && r["finished_at"].is_string()) << r.dump();
    }
    if (r["status"] == "skipped") {
      EXPECT_NE(r["message"].get<std::string>().find("still running"), std::string::npos) << r.dump();
    }
  }
  EXPECT_LE(count(rs, "running"), 1) << "never two runs at once: " << rs.dump(2);
  // Runs that ran do not overlap: each started after the previous one finished.
  std::vector<std::pair<util::Millis, util::Millis>> spans;
  for (const auto& r : rs) {
    if (r["status"] == "failed" || r["status"] == "succeeded") {
      spans.emplace_back(*util::parse_iso8601(r["started_at"].get<std::string>()),
                         *util::parse_iso8601(r["finished_at"].get<std::string>()));
    }
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    EXPECT_GE(spans[i].first + 1000, spans[i - 1].second) << "runs overlap"; // ISO times have 1 s precision
  }

  // The output is in the environment's log; the table in `idp status`.
  auto logs = d->cli({"logs", env, "--tail", "100000"});
  EXPECT_NE(logs.out.find("scheduled-worker run"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("finished with exit code 3"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("skipped"), std::string::npos) << logs.out;
  auto table = d->cli({"status", env});
  EXPECT_NE(table.out.find("job runs:"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("skipped"), std::string::npos) << table.out;

  ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
  EXPECT_TRUE(d->home_processes().empty()) << "a running job is stopped with its environment";
  EXPECT_EQ(count(runs(), "running"), 0) << runs().dump(2);
  EXPECT_EQ(d->stop(), 0);
}

TEST_F(TemplatesTest, ScheduledWorkerResumesAfterKill9AndRecordsRunsThatEndedMeanwhile) {
  auto d = make_daemon({{"schedule_time_scale", 60}});
  GitRepo repo = make_example_repo(tmp.sub("app"), "scheduled-worker", "feature/resume");
  repo.write_file(".idp/config.yml", "template: scheduled-worker\n"
                                     "schedule_expression: rate(1 minute)\n"
                                     "environment:\n"
                                     "  JOB_SLEEP_MS: \"3000\"\n"
                                     "local:\n"
                                     "  start: \"node job.js\"\n");
  repo.commit("slow job");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/resume"}).exit_code, 0) << d->log();
  const std::string env = "preview-resume";
  json running;
  ASSERT_TRUE(wait_until(
      [&] {
        json rs = status(*d, env)["job_runs"];
        for (const auto& r : rs) {
          if (r["status"] == "running") {
            running = r;
            return true;
          }
        }
        return false;
      },
      30000, 100))
      << status(*d, env).dump(2);
  // Running means the job itself has started (its own "started" line follows the
  // scheduler's), not just that the store has the run: a kill before the shim starts is
  // the other case, recorded as failed (JobSchedulerTest covers it).
  const std::string started = "job run " + running["id"].dump() + " started";
  ASSERT_TRUE(wait_until(
      [&] {
        std::string logs = d->cli({"logs", env, "--tail", "100000"}).out;
        size_t at = logs.find(started);
        return at != std::string::npos && logs.find("scheduled-worker run", at) != std::string::npos;
      },
      30000, 100))
      << d->cli({"logs", env, "--tail", "100000"}).out;
  d->kill9(); // the run goes on under its shim and ends while no daemon is there
  const std::string runs_dir = d->home() + "/envs/" + env + "/runs";
  ASSERT_TRUE(wait_until(
      [&] {
        std::error_code ec;
        for (const auto& dir : std::filesystem::directory_iterator(runs_dir, ec)) {
          if (std::filesystem::exists(dir.path() / "exit.json")) {
            return true;
          }
        }
        return false;
      },
      30000, 100))
      << "the shim records how the run ended";
  d->start();
  ASSERT_TRUE(wait_until(
      [&] {
        json rs = status(*d, env)["job_runs"];
        for (const auto& r : rs) {
          if (r["id"] == running["id"]) {
            return r["status"] == "succeeded";
          }
        }
        return false;
      },
      30000, 200))
      << status(*d, env)["job_runs"].dump(2);
  // And the schedule goes on.
  int64_t last_id = running["id"];
  ASSERT_TRUE(wait_until(
      [&] {
        json rs = status(*d, env)["job_runs"];
        for (const auto& r : rs) {
          if (r["id"].get<int64_t>() > last_id && r["status"] != "skipped") {
            return true;
          }
        }
        return false;
      },
      30000, 200))
      << status(*d, env)["job_runs"].dump(2);
  ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
  EXPECT_EQ(d->stop(), 0);
}

// Issue 16: the run number a job sees in IDP_JOB_RUN is the id `idp status` lists, and
// `idp status` says when the job runs next.
TEST_F(TemplatesTest, ScheduledWorkerSeesItsRunIdAndStatusShowsTheNextRun) {
  auto d = make_daemon({{"schedule_time_scale", 60}});
  GitRepo repo = make_example_repo(tmp.sub("app"), "scheduled-worker", "feature/numbered");
  repo.write_file(".idp/config.yml", "template: scheduled-worker\n"
                                     "schedule_expression: rate(5 minutes)\n"
                                     "local:\n"
                                     "  start: \"node job.js\"\n");
  repo.commit("every five minutes");
  ASSERT_EQ(d->cli({"create", "--repo", repo.path(), "--branch", "feature/numbered"}).exit_code, 0) << d->log();
  const std::string env = "preview-numbered";
  auto table = d->cli({"status", env});
  EXPECT_NE(table.out.find("schedule:    rate(5 minutes)\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("next run:    20"), std::string::npos) << "an ISO time: " << table.out;
  EXPECT_NE(table.out.find("(in "), std::string::npos) << table.out;

  json done;
  ASSERT_TRUE(wait_until(
      [&] {
        json now = status(*d, env);
        for (const auto& r : now["job_runs"]) {
          if (r["status"] == "succeeded") {
            done = r;
            return true;
          }
        }
        return false;
      },
      60000, 250))
      << status(*d, env).dump(2) << d->log();
  auto logs = d->cli({"logs", env, "--tail", "100000"});
  EXPECT_NE(logs.out.find("scheduled-worker run " + done["id"].dump() + " finished with exit code 0"),
            std::string::npos)
      << "IDP_JOB_RUN is run " << done["id"] << ":\n"
      << logs.out;
  ASSERT_EQ(d->cli({"destroy", env, "--yes"}).exit_code, 0);
}
