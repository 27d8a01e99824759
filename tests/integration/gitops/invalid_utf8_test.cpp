// A branch whose name is not UTF-8 (git allows any bytes but a few) reaches the daemon by
// polling and by webhook. Before one serialiser replaced invalid UTF-8 everywhere, the first
// JSON written with that name threw in a worker thread and aborted `idp serve`, at every
// start (each start polls again). Now polling deploys the environment like any other, the
// API shows the name with U+FFFD for each bad byte, a webhook naming it is refused (its
// real name is lost in JSON), and the daemon survives restarts.
#include <gtest/gtest.h>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

const std::string k_bad_branch = "feat/\xff";
const std::string k_shown_branch = "feat/\xef\xbf\xbd"; // "feat/" + U+FFFD, as the API shows it

// GET /api/v1/environments answers 200 with JSON that parses (strictly: valid UTF-8).
::testing::AssertionResult environments_answer(const GitopsRig& rig) {
  if (!rig.daemon->running()) {
    return ::testing::AssertionFailure() << "the daemon is not running\n" << rig.daemon->log();
  }
  auto [status, body] = rig.daemon->api("GET", "/api/v1/environments?all=true");
  if (status != 200 || !body.is_object() || !body["environments"].is_array()) {
    return ::testing::AssertionFailure() << "GET /api/v1/environments: " << status << " " << util::json_dump(body)
                                         << "\n"
                                         << rig.daemon->log();
  }
  return ::testing::AssertionSuccess();
}

} // namespace

TEST(GitopsBranchNamesTest, InvalidUtf8BranchByPollAndWebhookKeepsTheDaemonUp) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-gitops-utf8", {.poll = true, .poll_interval = "200ms"});
  rig.start();
  std::string c1 = rig.commit_file(k_bad_branch, "NOTE.txt", "bytes \xfe\xff in a file\n");

  // The webhook as a JSON serialiser would send it (the byte arrives as U+FFFD): the real name
  // is unknown, so 400 rather than an environment for a branch that does not exist ...
  auto [status, body] = rig.webhook("push", push_payload(rig.payload_repo(), k_bad_branch, k_zero_commit, c1));
  EXPECT_EQ(status, 400) << util::json_dump(body);
  EXPECT_NE((body.is_object() ? body.value("message", "") : "").find("U+FFFD"), std::string::npos)
      << util::json_dump(body);
  // ... and by a careless sender, with the raw byte inside a JSON string: not JSON, so 400.
  std::string raw = util::json_dump(push_payload(rig.payload_repo(), "feat/PLACEHOLDER", k_zero_commit, c1));
  for (size_t p; (p = raw.find("feat/PLACEHOLDER")) != std::string::npos;) {
    raw.replace(p, std::string("feat/PLACEHOLDER").size(), k_bad_branch);
  }
  auto [raw_status, raw_body] = rig.webhook_raw("push", raw);
  EXPECT_EQ(raw_status, 400) << util::json_dump(raw_body);

  // The poller deploys the real branch.
  std::string name = rig.wait_env(k_shown_branch, 60000);
  ASSERT_FALSE(name.empty()) << "no environment for the branch\n" << rig.daemon->log();
  EXPECT_TRUE(is_dns_label(name)) << name;
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 120000)) << util::json_dump(rig.daemon->env(name), 2) << rig.daemon->log();
  ASSERT_TRUE(environments_answer(rig));
  auto [get_status, env] = rig.daemon->api("GET", "/api/v1/environments/" + name);
  EXPECT_EQ(get_status, 200);
  EXPECT_EQ(env.value("branch", ""), k_shown_branch);
  EXPECT_TRUE(rig.app_root(name).is_object()) << "the app serves";
  EXPECT_TRUE(rig.daemon->running());

  // Restarts poll the branch again, and a new push to it is deployed: the daemon stays up.
  for (int round = 0; round < 2; ++round) {
    rig.restart();
    ASSERT_TRUE(environments_answer(rig)) << "after restart " << round;
    std::string c = rig.commit_file(k_bad_branch, "NOTE.txt", "round " + std::to_string(round) + "\n");
    auto [s, b] = rig.webhook("push", push_payload(rig.payload_repo(), k_bad_branch, c1, c));
    EXPECT_EQ(s, 400) << util::json_dump(b);
    ASSERT_TRUE(rig.wait_ready_at(name, c, 120000)) << util::json_dump(rig.daemon->env(name), 2) << rig.daemon->log();
    ASSERT_TRUE(environments_answer(rig)) << "after restart " << round;
    EXPECT_EQ(rig.wait_env(k_shown_branch, 10000), name) << "still one environment for the branch";
    c1 = c;
  }
  auto [events_status, events] = rig.daemon->api("GET", "/api/v1/events");
  EXPECT_EQ(events_status, 200) << rig.daemon->log();
  EXPECT_TRUE(rig.daemon->running());
  EXPECT_EQ(rig.daemon->log().find("terminate called"), std::string::npos) << rig.daemon->log();
}
