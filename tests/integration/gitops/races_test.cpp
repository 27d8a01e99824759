// The races of the original (spec §5.8), each with the behaviour that fixes it.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/fs.hpp"
#include "util/proc.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

std::vector<json> with(const json& events, const std::string& key, const std::string& value) {
  std::vector<json> out;
  for (const auto& e : events) {
    if (e[key] == value) {
      out.push_back(e);
    }
  }
  return out;
}

bool mentions(const json& events, const std::string& text) {
  for (const auto& e : events) {
    if (e["reason"].get<std::string>().find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

size_t count_in_log(const std::string& log, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
    n += 1;
  }
  return n;
}

// A webhook-driven environment for `branch`, ready at its first commit.
std::string ready_env(GitopsRig& rig, const std::string& branch, std::string& commit) {
  commit = rig.commit_version(branch, "v1");
  auto [status, body] = rig.webhook("push", push_payload(rig.payload_repo(), branch, k_zero_commit, commit));
  EXPECT_EQ(status, 202) << body.dump();
  std::string name = rig.wait_env(branch, 30000);
  EXPECT_FALSE(name.empty()) << rig.daemon->log();
  EXPECT_TRUE(rig.wait_ready_at(name, commit, 90000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  return name;
}

} // namespace

// PR merge with auto-delete fires pull_request[closed] and delete together (and GitHub may
// deliver each twice): one destroy, no error answer.
TEST(GitopsRaceTest, PrCloseAndBranchDeleteTogetherDestroyOnce) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-dual", {.poll = false});
  rig.start();
  std::string c1;
  std::string name = ready_env(rig, "feature/dual", c1);
  ASSERT_FALSE(name.empty());
  rig.delete_branch("feature/dual");
  std::vector<std::pair<std::string, json>> hooks = {
      {"pull_request", pull_request_payload(rig.payload_repo(), "closed", 9, "feature/dual", c1, true)},
      {"delete", delete_payload(rig.payload_repo(), "feature/dual")},
      {"pull_request", pull_request_payload(rig.payload_repo(), "closed", 9, "feature/dual", c1, true)},
      {"delete", delete_payload(rig.payload_repo(), "feature/dual")},
  };
  std::vector<long> statuses(hooks.size(), 0);
  std::vector<std::thread> threads;
  std::atomic<bool> go{false};
  for (size_t i = 0; i < hooks.size(); ++i) {
    threads.emplace_back([&, i] {
      while (!go) {
      }
      statuses[i] = rig.webhook(hooks[i].first, hooks[i].second).first;
    });
  }
  go = true;
  for (auto& t : threads) {
    t.join();
  }
  for (long s : statuses) {
    EXPECT_TRUE(s == 200 || s == 202) << "no error answers: " << s;
  }
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 60000)) << rig.daemon->env(name).dump(2);
  // Late duplicates after the fact change nothing either.
  const std::string done = "remove of branch \"feature/dual\"";
  size_t removals = count_in_log(rig.daemon->log(), done);
  EXPECT_GE(removals, 1u);
  // The same signed body again is a replay (dedup by body hash), whatever its delivery id.
  EXPECT_EQ(rig.webhook("delete", delete_payload(rig.payload_repo(), "feature/dual")).first, 200);
  EXPECT_EQ(
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "closed", 9, "feature/dual", c1)).first,
      202);
  ASSERT_TRUE(wait_until([&] { return count_in_log(rig.daemon->log(), done) > removals; }, 30000));
  json events = rig.events(name);
  EXPECT_EQ(with(events, "action", "destroy").size(), 1u) << events.dump(2);
  EXPECT_EQ(with(events, "to_phase", "destroying").size(), 1u);
  EXPECT_EQ(with(events, "to_phase", "destroyed").size(), 1u);
  EXPECT_EQ(count_in_log(rig.daemon->log(), name + ": destroyed"), 1u) << "the driver destroyed it once";
  EXPECT_TRUE(rig.env_processes(name).empty());
}

// A push while the environment is being destroyed: the destroy finishes, then the
// environment is created afresh (not resurrected half-destroyed).
TEST(GitopsRaceTest, PushDuringDestroyRecreatesAfterTheDestroyFinishes) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-redo", {.poll = false});
  rig.start();
  // An app that takes a while to stop (drains for 5 s on SIGTERM): the destroy is observable.
  auto server = util::read_file(source_dir() + "/examples/api-service/server.js");
  std::string slow =
      *server + "\nprocess.removeAllListeners('SIGTERM');\n"
                "process.on('SIGTERM', () => { console.log('draining'); setTimeout(() => process.exit(0), 5000); });\n";
  rig.commit_file("feature/redo", "server.js", slow);
  std::string c1;
  std::string name = ready_env(rig, "feature/redo", c1);
  ASSERT_FALSE(name.empty());
  json before = rig.daemon->env(name);
  auto old_pids = rig.env_processes(name);
  ASSERT_FALSE(old_pids.empty());

  rig.delete_branch("feature/redo");
  ASSERT_EQ(rig.webhook("delete", delete_payload(rig.payload_repo(), "feature/redo")).first, 202);
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroying", 30000)) << rig.daemon->env(name).dump(2);
  std::string c2 = rig.commit_version("feature/redo", "v2");
  auto [status, body] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/redo", k_zero_commit, c2));
  ASSERT_EQ(status, 202) << body.dump();

  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  json after = rig.daemon->env(name);
  EXPECT_GT(util::parse_iso8601(after["created_at"].get<std::string>()).value(),
            util::parse_iso8601(before["created_at"].get<std::string>()).value())
      << "created afresh";
  EXPECT_EQ(rig.app_root(name)["version"], "v2");
  for (pid_t p : old_pids) {
    EXPECT_FALSE(util::process_alive(p)) << "the old processes are gone";
  }
  json events = rig.events(name);
  auto destroyed = std::find_if(events.begin(), events.end(), [](const json& e) {
    return e["reason"].get<std::string>().rfind("destroyed; recreating", 0) == 0;
  });
  ASSERT_NE(destroyed, events.end()) << "the destroy finished first: " << events.dump(2);
  auto healthy = std::find_if(destroyed, events.end(), [&](const json& e) {
    return e["to_phase"] == "ready" && e["reason"].get<std::string>().find(short_sha(c2)) != std::string::npos;
  });
  EXPECT_NE(healthy, events.end()) << "then the new commit came up";
}

// The same push seen by a webhook and by the poller: one deploy.
TEST(GitopsRaceTest, WebhookAndPollSeeingTheSameChangeDeployOnce) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-both", {.poll = true, .poll_interval = "200ms"});
  rig.start();
  std::string c1 = rig.commit_version("feature/both", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/both", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/both", 30000);
  ASSERT_FALSE(name.empty());
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->log();

  std::string c2;
  {
    // Hold git fetches: the webhook's work waits, so the poller sees the same new head too.
    auto lock = util::FileLock::acquire(rig.mirror_lock_path());
    ASSERT_TRUE(lock);
    size_t polls_before = count_in_log(rig.daemon->log(), "sources: poll of");
    c2 = rig.commit_version("feature/both", "v2");
    ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/both", c1, c2)).first, 202);
    ASSERT_TRUE(wait_until([&] { return count_in_log(rig.daemon->log(), "sources: poll of") > polls_before; }, 30000))
        << "the poller saw the moved head";
  }
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->log();
  ASSERT_TRUE(wait_until([&] { return mentions(with(rig.events(name), "actor", "poller"), short_sha(c2)); }, 30000))
      << rig.events(name).dump(2);
  json events = rig.events(name);
  size_t deploys = 0;
  for (const auto& e : events) {
    if ((e["action"] == "deploy" || e["action"] == "create") &&
        e["reason"].get<std::string>().find(short_sha(c2)) != std::string::npos) {
      deploys += 1;
    }
  }
  EXPECT_EQ(deploys, 1u) << events.dump(2);
  size_t revs_c2 = 0;
  for (const auto& r : rig.revisions(name)) {
    revs_c2 += r["commit"] == c2 ? 1 : 0;
  }
  EXPECT_EQ(revs_c2, 1u) << "one revision for the commit";
  // Which of the two deploys is a race, not a rule: when the poll queues its work before a
  // worker has taken the webhook's, the two coalesce and the poll's runs (a CI run under
  // ASan saw it); otherwise the webhook's deploys and the poll's only moves the expiry.
  // Either way: one deploy, one revision (above).
}

// Several pushes in quick succession: only the newest commit is deployed. Pushes queued
// while the branch's earlier work runs are coalesced; a deploy already running for an
// older commit is superseded.
TEST(GitopsRaceTest, QuickPushesDeployOnlyTheNewestCommit) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-burst", {.poll = false});
  rig.start();
  std::string c1;
  std::string name = ready_env(rig, "feature/burst", c1);
  ASSERT_FALSE(name.empty());

  std::vector<std::string> commits;
  std::vector<std::string> answers;
  {
    auto lock = util::FileLock::acquire(rig.mirror_lock_path()); // git is slow today
    ASSERT_TRUE(lock);
    std::string prev = c1;
    for (int i = 2; i <= 5; ++i) {
      std::string c = rig.commit_version("feature/burst", "v" + std::to_string(i));
      auto [status, body] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/burst", prev, c));
      ASSERT_EQ(status, 202) << body.dump();
      answers.push_back(body["status"]);
      commits.push_back(c);
      prev = c;
    }
  }
  // v2 is running (or was coalesced too); v3 waited behind it and was replaced by v4, then v5.
  EXPECT_EQ(answers[2], "coalesced");
  EXPECT_EQ(answers[3], "coalesced");
  std::string newest = commits.back();
  ASSERT_TRUE(rig.wait_ready_at(name, newest, 90000)) << rig.daemon->env(name).dump(2);
  EXPECT_EQ(rig.app_root(name)["version"], "v5");
  json events = rig.events(name);
  for (size_t i = 1; i < 3; ++i) { // v3, v4: never synced at all
    EXPECT_FALSE(mentions(events, short_sha(commits[i]))) << "v" << i + 2 << " was coalesced away";
  }
  for (size_t i = 0; i < 3; ++i) { // v2..v4: never served
    for (const auto& e : events) {
      if (e["to_phase"] == "ready") {
        EXPECT_EQ(e["reason"].get<std::string>().find(short_sha(commits[i]) + ") is healthy"), std::string::npos)
            << e.dump();
      }
    }
  }
  for (const auto& r : rig.revisions(name)) {
    if (r["commit"] != newest && r["commit"] != c1) {
      EXPECT_EQ(r["status"], "superseded") << r.dump();
    }
  }
}

// A push while an older commit is still being built: the older build is cancelled
// (superseded) and never serves; the newer one does.
TEST(GitopsRaceTest, ANewerPushSupersedesABuildInFlight) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-supersede", {.poll = false});
  rig.start();
  std::string c1;
  std::string name = ready_env(rig, "feature/supersede", c1);
  ASSERT_FALSE(name.empty());

  // c2 takes 30s before it listens: its build is still in flight when c3 arrives.
  auto server = util::read_file(source_dir() + "/examples/api-service/server.js");
  std::string slow = *server;
  slow.replace(slow.find("server.listen(port"), std::string("server.listen(port").size(),
               "setTimeout(() => server.listen(port");
  slow.replace(slow.find("});\n\nfunction shutdown"), std::string("});\n\nfunction shutdown").size(),
               "}), 30000);\n\nfunction shutdown");
  std::string c2 = rig.commit_file("feature/supersede", "server.js", slow);
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/supersede", c1, c2)).first, 202);
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& r : rig.revisions(name)) {
          if (r["commit"] == c2 && (r["status"] == "starting" || r["status"] == "building")) {
            return true;
          }
        }
        return false;
      },
      60000))
      << rig.revisions(name).dump(2);

  rig.work->write_file("server.js", *server);
  std::string c3 = rig.commit_version("feature/supersede", "v3");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/supersede", c2, c3)).first, 202);
  ASSERT_TRUE(rig.wait_ready_at(name, c3, 25000))
      << "long before c2 could have listened: " << rig.daemon->env(name).dump(2);
  EXPECT_EQ(rig.app_root(name)["version"], "v3");
  for (const auto& r : rig.revisions(name)) {
    if (r["commit"] == c2) {
      EXPECT_EQ(r["status"], "superseded") << r.dump(2);
    }
  }
  for (const auto& e : rig.events(name)) {
    if (e["to_phase"] == "ready") {
      EXPECT_EQ(e["reason"].get<std::string>().find(short_sha(c2) + ") is healthy"), std::string::npos) << e.dump();
    }
  }
}

// Issue 14, must show 3: two pushes 100 ms apart, with a drain of ten minutes. The second
// commit serves after one deploy, not after the first's drain (the replaced revisions
// drain in the background, still running), and the destroy does not wait on them either.
TEST(GitopsRaceTest, TwoPushes100MsApartServeTheSecondWithoutWaitingOnADrain) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-apart", {.poll = false, .server_config_extra = "drivers:\n  local:\n    drain: 10m\n"});
  rig.start();
  std::string c1;
  std::string name = ready_env(rig, "feature/apart", c1);
  ASSERT_FALSE(name.empty());
  const std::vector<pid_t> v1 = rig.env_processes(name);
  ASSERT_FALSE(v1.empty());

  const std::string c2 = rig.commit_version("feature/apart", "v2");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/apart", c1, c2)).first, 202);
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the scenario: the next push 100 ms later
  const std::string c3 = rig.commit_version("feature/apart", "v3");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/apart", c2, c3)).first, 202);
  // Waiting on a drain would take ten minutes: far past this deadline.
  ASSERT_TRUE(rig.wait_ready_at(name, c3, 90000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  EXPECT_EQ(rig.app_root(name)["version"], "v3");
  for (pid_t pid : v1) {
    EXPECT_TRUE(util::process_alive(pid)) << "v1 (pid " << pid << ") drains in the background";
  }

  ASSERT_EQ(rig.daemon->api("DELETE", "/api/v1/environments/" + name).first, 202);
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 90000)) << rig.daemon->env(name).dump(2);
  EXPECT_TRUE(rig.env_processes(name).empty()) << "the draining revisions were stopped with it";
  for (pid_t pid : v1) {
    EXPECT_FALSE(util::process_alive(pid));
  }
}
