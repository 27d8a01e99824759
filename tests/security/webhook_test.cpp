// Issue 9, webhooks: the signature is checked before anything else and answers the same
// whatever the payload names; a signed body is taken once, whatever its delivery id; a
// stale push never rolls an environment back.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/gitops/gitops_test_support.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// Webhooks only (no polling): changes arrive by the deliveries the test sends.
GitopsOptions no_poll() {
  GitopsOptions o;
  o.poll = false;
  return o;
}

size_t count_action(const json& events, const std::string& action) {
  size_t n = 0;
  for (const auto& e : events) {
    n += e.value("action", "") == action ? 1 : 0;
  }
  return n;
}

} // namespace

TEST(SecurityWebhookTest, ReplayedSignedPushWithANewDeliveryIdIsADuplicate) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-sec-replay", no_poll());
  rig.start();
  std::string c1 = rig.commit_version("feature/replay", "v1");
  json push = push_payload(rig.payload_repo(), "feature/replay", k_zero_commit, c1);
  auto [s1, b1] = rig.webhook("push", push, std::nullopt, "delivery-original");
  ASSERT_EQ(s1, 202) << b1.dump();
  auto [s2, b2] = rig.webhook("push", push, std::nullopt, "delivery-forged-" + util::random_hex(8));
  EXPECT_EQ(s2, 200) << b2.dump();
  EXPECT_EQ(b2.value("status", ""), "duplicate") << "the signature covers the body, not the delivery id";
  auto [s3, b3] = rig.webhook("push", push, std::nullopt, "delivery-original");
  EXPECT_EQ(b3.value("status", ""), "duplicate") << "GitHub's own redelivery too";
  std::string name = rig.wait_env("feature/replay", 30000);
  ASSERT_FALSE(name.empty());
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->env(name).dump(2);
  EXPECT_EQ(rig.revisions(name).size(), 1u);
}

TEST(SecurityWebhookTest, PushOfACommitOlderThanTheHeadIsRefused) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-sec-stale", no_poll());
  rig.start();
  std::string c1 = rig.commit_version("feature/stale", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/stale", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/stale", 30000);
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 90000)) << rig.daemon->env(name).dump(2);
  std::string c2 = rig.commit_version("feature/stale", "v2");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/stale", c1, c2)).first, 202);
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 90000)) << rig.daemon->env(name).dump(2);

  // A signed push of c1 (say, captured from an earlier force-push) arrives now: c1 is an
  // ancestor of the head, so deploying it would roll the environment back.
  auto [s, b] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/stale", c2, c1));
  ASSERT_EQ(s, 202) << b.dump();
  ASSERT_TRUE(wait_until([&] { return count_action(rig.events(name), "refuse") == 1; }, 60000))
      << rig.events(name).dump(2);
  json env = rig.daemon->env(name);
  EXPECT_EQ(env.value("commit", ""), c2) << env.dump(2);
  EXPECT_EQ(rig.app_root(name)["version"], "v2");
  EXPECT_EQ(rig.revisions(name).size(), 2u) << "no revision for the old commit: " << rig.revisions(name).dump(2);
  bool named = false;
  for (const auto& e : rig.events(name)) {
    if (e.value("action", "") == "refuse") {
      named = e.value("reason", "").find(c1.substr(0, 7)) != std::string::npos;
    }
  }
  EXPECT_TRUE(named) << "the refusal names the commit: " << rig.events(name).dump(2);
}

TEST(SecurityWebhookTest, WrongSignatureAnswersLikeNoSignatureForWatchedAndUnwatchedRepos) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  GitopsRig rig("idp-sec-sig", no_poll());
  rig.start();
  std::string c1 = rig.commit_version("feature/sig", "v1");
  json watched = push_payload(rig.payload_repo(), "feature/sig", k_zero_commit, c1);
  json unwatched =
      push_payload(TestRepo{"someone/else", "https://github.com/someone/else.git"}, "feature/sig", k_zero_commit, c1);
  std::vector<std::pair<long, json>> answers;
  for (const json* p : {&watched, &unwatched}) {
    answers.push_back(rig.webhook("push", *p, std::string("")));
    answers.push_back(rig.webhook("push", *p, std::string("guessed")));
  }
  // Not even a well-formed request is needed to tell watched repositories apart otherwise.
  util::HttpRequest junk;
  junk.method = "POST";
  junk.url = rig.daemon->api_url() + "/hooks/github";
  junk.body = "not json";
  auto jr = util::http_request(junk);
  ASSERT_TRUE(jr);
  answers.emplace_back(jr->status, json::parse(jr->body, nullptr, false));
  for (const auto& [status, body] : answers) {
    EXPECT_EQ(status, 401) << body.dump();
    EXPECT_EQ(body, answers.front().second);
  }
  EXPECT_TRUE(rig.env_of("feature/sig", true).is_null());
  EXPECT_TRUE(rig.all_events().empty()) << rig.all_events().dump();
}
