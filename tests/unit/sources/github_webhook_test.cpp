#include "sources/github_webhook.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "unit/sources/recording_actions.hpp"
#include "unit/sources/webhook_examples.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::sources {
namespace {

using nlohmann::json;
using testing::TestRepo;

const std::string k_secret = "s3cr3t-for-tests";
const std::string k_sha1 = "1111111111111111111111111111111111111111";
const std::string k_sha2 = "2222222222222222222222222222222222222222";

WatchedRepo test_repo() {
  WatchedRepo r;
  r.url = "https://github.com/idp-tests/app.git";
  r.webhook_secret = k_secret;
  return r;
}

TestRepo payload_repo() { return TestRepo{"idp-tests/app", "https://github.com/idp-tests/app.git"}; }

// The mapping of a payload as the receiver sees it: sent as JSON text, parsed by
// parse_webhook_payload.
Expected<HookAction> map_json_event(const std::string& event, const json& payload, const WatchedRepo& repo) {
  auto parsed = parse_webhook_payload(util::json_dump(payload));
  if (!parsed) {
    return Unexpected(parsed.error());
  }
  return map_github_event(event, *parsed, repo);
}

TEST(GithubSignatureTest, MatchesGithubsDocumentedExample) {
  // From GitHub's "Validating webhook deliveries" documentation.
  EXPECT_TRUE(verify_github_signature("It's a Secret to Everybody", "Hello, World!",
                                      "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
  EXPECT_EQ(github_signature("It's a Secret to Everybody", "Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST(GithubSignatureTest, RejectsWrongMissingAndMalformedSignatures) {
  std::string body = R"({"zen":"x"})";
  std::string good = github_signature(k_secret, body);
  EXPECT_TRUE(verify_github_signature(k_secret, body, good));
  EXPECT_FALSE(verify_github_signature("other", body, good));
  EXPECT_FALSE(verify_github_signature(k_secret, body + " ", good));
  EXPECT_FALSE(verify_github_signature(k_secret, body, ""));
  EXPECT_FALSE(verify_github_signature(k_secret, body, good.substr(7)));           // no "sha256="
  EXPECT_FALSE(verify_github_signature(k_secret, body, "sha1=" + good.substr(7))); // old header format
  EXPECT_FALSE(verify_github_signature(k_secret, body, good.substr(0, good.size() - 2)));
  EXPECT_FALSE(verify_github_signature("", body, github_signature("", body))); // no secret, no webhooks
}

TEST(GithubEventTest, PushToTrackedBranchSyncsTheAfterCommit) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto a = map_json_event("push", testing::push_payload(payload_repo(), "feature/login", k_sha1, k_sha2), test_repo());
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->kind, HookAction::Kind::sync);
  EXPECT_EQ(a->branch, "feature/login");
  EXPECT_EQ(a->commit, k_sha2);
  EXPECT_EQ(a->owner, "Codertocat"); // the example's sender
  EXPECT_FALSE(a->pr_number);
}

TEST(GithubEventTest, PushToTheDefaultOrAnExcludedBranchIsIgnored) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  WatchedRepo repo = test_repo();
  repo.exclude = {"dependabot/*"};
  auto main = map_json_event("push", testing::push_payload(payload_repo(), "main", k_sha1, k_sha2), repo);
  ASSERT_TRUE(main);
  EXPECT_EQ(main->kind, HookAction::Kind::ignore);
  auto bot = map_json_event("push", testing::push_payload(payload_repo(), "dependabot/npm/x", k_sha1, k_sha2), repo);
  ASSERT_TRUE(bot);
  EXPECT_EQ(bot->kind, HookAction::Kind::ignore);
}

TEST(GithubEventTest, PushWithDeletedRemovesTheBranch) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto a = map_json_event("push", testing::push_deleted_payload(payload_repo(), "feature/login", k_sha1), test_repo());
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->kind, HookAction::Kind::remove);
  EXPECT_EQ(a->branch, "feature/login");
  EXPECT_EQ(a->commit, ""); // the branch is gone
}

TEST(GithubEventTest, TagPushesAreIgnored) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto a = map_json_event("push", testing::tag_push_payload(payload_repo()), test_repo());
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->kind, HookAction::Kind::ignore);
}

TEST(GithubEventTest, PullRequestOpenedReopenedSynchronizeSyncTheHeadWithThePrNumber) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  for (std::string action : {"opened", "reopened", "synchronize"}) {
    auto a =
        map_json_event("pull_request",
                       testing::pull_request_payload(payload_repo(), action, 42, "feature/login", k_sha2), test_repo());
    ASSERT_TRUE(a) << action << ": " << a.error().message;
    EXPECT_EQ(a->kind, HookAction::Kind::sync) << action;
    EXPECT_EQ(a->branch, "feature/login");
    EXPECT_EQ(a->commit, k_sha2);
    ASSERT_TRUE(a->pr_number);
    EXPECT_EQ(*a->pr_number, 42);
  }
}

TEST(GithubEventTest, PullRequestClosedRemovesWhetherMergedOrNot) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  for (bool merged : {false, true}) {
    auto a = map_json_event("pull_request",
                            testing::pull_request_payload(payload_repo(), "closed", 7, "feature/login", k_sha2, merged),
                            test_repo());
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->kind, HookAction::Kind::remove);
    EXPECT_EQ(a->branch, "feature/login");
    EXPECT_EQ(a->commit, k_sha2); // the branch may still exist at its head
    EXPECT_NE(a->reason.find(merged ? "merged" : "closed"), std::string::npos);
  }
}

TEST(GithubEventTest, PullRequestsFromForksAndOtherActionsAreIgnored) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  json fork = testing::pull_request_payload(payload_repo(), "opened", 5, "feature/login", k_sha2);
  fork["pull_request"]["head"]["repo"]["full_name"] = "someone/fork";
  auto a = map_json_event("pull_request", fork, test_repo());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, HookAction::Kind::ignore);
  EXPECT_NE(a->reason.find("fork"), std::string::npos);

  json labeled = testing::pull_request_payload(payload_repo(), "labeled", 5, "feature/login", k_sha2);
  auto b = map_json_event("pull_request", labeled, test_repo());
  ASSERT_TRUE(b);
  EXPECT_EQ(b->kind, HookAction::Kind::ignore);
}

TEST(GithubEventTest, AForkOfARepositoryThatApprovesForksIsHandedToTheGateWithItsHead) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  WatchedRepo repo = test_repo();
  repo.forks = "approve";
  for (std::string action : {"opened", "synchronize", "reopened", "closed"}) {
    json p = testing::fork_pull_request_payload(payload_repo(), action, 5, "someone/fork", "main", k_sha2, "mallory");
    auto a = map_json_event("pull_request", p, repo);
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(a->kind, HookAction::Kind::fork) << action;
    EXPECT_EQ(a->action, action);
    EXPECT_EQ(a->fork_repo, "someone/fork");
    EXPECT_EQ(a->commit, k_sha2);
    EXPECT_EQ(a->pr_number, 5);
    EXPECT_EQ(a->owner, "mallory");
    EXPECT_EQ(a->branch, "main") << "the fork's branch, even one named like the base's default branch";
  }
  // A head that is not a commit is refused, whatever the fork.
  json bad = testing::fork_pull_request_payload(payload_repo(), "opened", 5, "someone/fork", "x", "HEAD~1", "m");
  auto b = map_json_event("pull_request", bad, repo);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::invalid_argument);
}

TEST(GithubEventTest, SlashIdpApproveOnAPullRequestIsAnApprovalAnythingElseIsIgnored) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  WatchedRepo repo = test_repo();
  repo.forks = "approve";
  auto a = map_json_event("issue_comment",
                          testing::pull_request_comment_payload(payload_repo(), 5, "alice", "/idp approve\nlooks fine"),
                          repo);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->kind, HookAction::Kind::approve);
  EXPECT_EQ(a->pr_number, 5);
  EXPECT_EQ(a->owner, "alice");
  EXPECT_EQ(a->commit, "");
  auto with_sha = map_json_event(
      "issue_comment", testing::pull_request_comment_payload(payload_repo(), 5, "alice", "/idp approve ABC1234"), repo);
  ASSERT_TRUE(with_sha);
  EXPECT_EQ(with_sha->commit, "abc1234");
  for (std::string body : {"LGTM", "please /idp approve", "/idp approve a b", "/idp", "/idp deploy"}) {
    auto c =
        map_json_event("issue_comment", testing::pull_request_comment_payload(payload_repo(), 5, "alice", body), repo);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->kind, HookAction::Kind::ignore) << body;
  }
  // On an issue (not a pull request), or where forks are ignored: nothing to approve.
  json on_issue = testing::pull_request_comment_payload(payload_repo(), 5, "alice", "/idp approve");
  on_issue["issue"].erase("pull_request");
  EXPECT_EQ(map_json_event("issue_comment", on_issue, repo)->kind, HookAction::Kind::ignore);
  EXPECT_EQ(map_json_event("issue_comment",
                           testing::pull_request_comment_payload(payload_repo(), 5, "alice", "/idp approve"),
                           test_repo())
                ->kind,
            HookAction::Kind::ignore);
}

TEST(GithubEventTest, DeleteOfABranchRemovesDeleteOfATagIsIgnored) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto branch = map_json_event("delete", testing::delete_payload(payload_repo(), "feature/login"), test_repo());
  ASSERT_TRUE(branch) << branch.error().message;
  EXPECT_EQ(branch->kind, HookAction::Kind::remove);
  EXPECT_EQ(branch->branch, "feature/login");

  json tag = testing::webhook_example("delete"); // the published example, a tag, as is
  testing::point_at(tag, payload_repo());
  auto t = map_json_event("delete", tag, test_repo());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind, HookAction::Kind::ignore);
}

TEST(GithubEventTest, PingAndUnusedEvents) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto ping = map_json_event("ping", testing::ping_payload(payload_repo()), test_repo());
  ASSERT_TRUE(ping);
  EXPECT_EQ(ping->kind, HookAction::Kind::ping);
  auto star = map_json_event("star", testing::ping_payload(payload_repo()), test_repo());
  ASSERT_TRUE(star);
  EXPECT_EQ(star->kind, HookAction::Kind::ignore);
}

TEST(GithubEventTest, BranchNamesGitWouldRefuseAreInvalidArguments) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  for (std::string bad :
       {"feat/a b", "feat\nx", "a..b", "-x", "x.lock", "a~1", "a:b", "refs/../x", "new\r\nline", "$(touch pwned)"}) {
    auto push = map_json_event("push", testing::push_payload(payload_repo(), bad, k_sha1, k_sha2), test_repo());
    ASSERT_FALSE(push) << bad;
    EXPECT_EQ(push.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(push.error().message.find("not a valid git branch name"), std::string::npos);
    auto pr = map_json_event("pull_request", testing::pull_request_payload(payload_repo(), "opened", 1, bad, k_sha2),
                             test_repo());
    ASSERT_FALSE(pr) << bad;
    auto del = map_json_event("delete", testing::delete_payload(payload_repo(), bad), test_repo());
    ASSERT_FALSE(del) << bad;
  }
}

TEST(GithubEventTest, ShellMetacharactersGitAcceptsAreKeptVerbatim) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  for (std::string name : {"feat/$(touch${IFS}pwned)", "a;b", "it's", "`id`", "feat/ünïcode", "x|y&z>w"}) {
    auto a = map_json_event("push", testing::push_payload(payload_repo(), name, k_sha1, k_sha2), test_repo());
    ASSERT_TRUE(a) << name << ": " << a.error().message;
    EXPECT_EQ(a->kind, HookAction::Kind::sync);
    EXPECT_EQ(a->branch, name);
  }
}

TEST(GithubEventTest, PullRequestWithoutHeadOrAValidNumberIsAnInvalidArgument) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  json base = testing::pull_request_payload(payload_repo(), "opened", 9, "feature/login", k_sha2);
  json no_head = base;
  no_head["pull_request"].erase("head");
  auto a = map_json_event("pull_request", no_head, test_repo());
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message, "pull_request event without \"pull_request.head\"");
  json head_not_object = base;
  head_not_object["pull_request"]["head"] = "feature/login";
  EXPECT_FALSE(map_json_event("pull_request", head_not_object, test_repo()));
  for (json number :
       {json(0), json(-4), json(1'000'000'001), json("9"), json(9.0), json(nullptr), json(18446744073709551615ULL)}) {
    json p = base;
    p["number"] = number;
    p["pull_request"]["number"] = number;
    auto r = map_json_event("pull_request", p, test_repo());
    ASSERT_FALSE(r) << number.dump();
    EXPECT_EQ(r.error().message, "pull_request event without a valid \"number\"") << number.dump();
  }
  // The top-level number when it is an integer (even an invalid one), else the pull request's.
  json from_pr = base;
  from_pr["number"] = "9";
  auto ok = map_json_event("pull_request", from_pr, test_repo());
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->pr_number, 9);
  json top_wins = base;
  top_wins["number"] = 0;
  EXPECT_FALSE(map_json_event("pull_request", top_wins, test_repo()));
}

// --- the receiver ---

struct Receiver {
  testing::InMemoryStore store;
  testing::FakeClock clock;
  testing::RecordingActions actions;
  BranchQueue queue{actions, nullptr};
  GithubWebhook hook;
  explicit Receiver(std::vector<WatchedRepo> repos = {test_repo()}, size_t max_body = 1024 * 1024)
      : hook(std::move(repos), store, queue, clock, max_body) {}

  WebhookResponse post(const std::string& event, const std::string& delivery, const std::string& body,
                       const std::string& secret = k_secret, std::string content_type = "") {
    auto headers = testing::github_headers(event, delivery, body, secret);
    return hook.handle(body, [&](const std::string& name) -> std::string {
      if (name == "Content-Type" && !content_type.empty()) {
        return content_type;
      }
      for (const auto& [k, v] : headers) {
        if (k == name) {
          return v;
        }
      }
      return "";
    });
  }
  bool delivery_recorded(const std::string& id) { return !*store.record_delivery(id, 0); }
};

// The gate records a fork's pull request as pending and queues nothing; an approval queues the
// approved head as fork work; a new push is pending again; a comment by someone not in
// fork_approvers approves nothing; closing queues the removal.
// A store, a queue that is not started and a repository whose forks are approved.
struct ForkRig {
  testing::InMemoryStore store;
  testing::FakeClock clock;
  testing::RecordingActions actions;
  BranchQueue queue{actions, nullptr};
  WatchedRepo repo = [] {
    WatchedRepo r = test_repo();
    r.forks = "approve";
    r.fork_approvers = {"Alice"};
    return r;
  }();
};

TEST(GithubWebhookTest, AForkWaitsForAnApprovalOfItsHeadAndANewPushForAnotherOne) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  ForkRig rig;
  testing::InMemoryStore& store = rig.store;
  testing::FakeClock& clock = rig.clock;
  BranchQueue& queue = rig.queue;
  const WatchedRepo& repo = rig.repo;
  ForkGate gate({repo}, store, queue, clock, {});
  GithubWebhook hook({repo}, store, queue, clock, 1024 * 1024, &gate);
  int n = 0;
  auto post = [&](const std::string& event, const json& payload) {
    std::string body = payload.dump();
    auto headers = testing::github_headers(event, "d-" + std::to_string(++n), body, k_secret);
    return hook.handle(body, [&](const std::string& name) -> std::string {
      for (const auto& [k, v] : headers) {
        if (k == name) {
          return v;
        }
      }
      return "";
    });
  };
  const std::string key = "pull/5/head (fork)";
  auto opened =
      post("pull_request", testing::fork_pull_request_payload(payload_repo(), "opened", 5, "m/fork", "p", k_sha1, "m"));
  EXPECT_EQ(opened.status, 202) << opened.body.dump();
  EXPECT_EQ(opened.body["status"], "pending");
  EXPECT_TRUE(queue.pending_for_test(repo.url, key).empty()) << "nothing deploys before an approval";
  auto stored = store.get_fork_request(repo.url, 5);
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->head_sha, k_sha1);
  EXPECT_EQ((*stored)->author, "m");
  EXPECT_EQ((*stored)->head_repo, "m/fork");

  auto refused = post("issue_comment", testing::pull_request_comment_payload(payload_repo(), 5, "m", "/idp approve"));
  EXPECT_EQ(refused.status, 200);
  EXPECT_EQ(refused.body["status"], "refused");
  EXPECT_TRUE(queue.pending_for_test(repo.url, key).empty());

  auto ok = post("issue_comment", testing::pull_request_comment_payload(payload_repo(), 5, "alice", "/idp approve"));
  EXPECT_EQ(ok.status, 202) << ok.body.dump();
  auto pending = queue.pending_for_test(repo.url, key);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].op, BranchOp::sync);
  EXPECT_EQ(pending[0].fork_pr, 5);
  EXPECT_EQ(pending[0].commit, k_sha1);
  EXPECT_EQ(pending[0].actor, "github:alice");
  EXPECT_EQ((*store.get_fork_request(repo.url, 5))->state, "approved");

  auto pushed = post("pull_request",
                     testing::fork_pull_request_payload(payload_repo(), "synchronize", 5, "m/fork", "p", k_sha2, "m"));
  EXPECT_EQ(pushed.body["status"], "pending");
  auto after = *store.get_fork_request(repo.url, 5);
  EXPECT_EQ(after->head_sha, k_sha2);
  EXPECT_EQ(after->approved_commit, k_sha1);
  // An approval naming the old head is refused; the API's approval of the head is not.
  auto stale = gate.approve(repo, 5, k_sha1.substr(0, 7), "cli:bob");
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::conflict);
  auto fresh = gate.approve(repo, 5, "", "cli:bob");
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ(fresh->approved_commit, k_sha2);
  auto unknown = gate.approve(repo, 6, "", "cli:bob");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::not_found);

  auto closed =
      post("pull_request", testing::fork_pull_request_payload(payload_repo(), "closed", 5, "m/fork", "p", k_sha2, "m"));
  EXPECT_EQ(closed.body["status"], "closed");
  auto last = queue.pending_for_test(repo.url, key);
  ASSERT_FALSE(last.empty());
  EXPECT_EQ(last.back().op, BranchOp::remove);
  EXPECT_EQ(gate.approve(repo, 5, "", "cli:bob").error().code, ErrorCode::conflict) << "closed";
}

// The queue is memory only: a restarted gate deploys an approved request that has no
// environment yet, and removes a closed one's; pending ones and done ones are left alone.
TEST(GithubWebhookTest, AGateStartedAgainFinishesApprovalsAndClosesItsQueueLost) {
  ForkRig rig;
  testing::InMemoryStore& store = rig.store;
  testing::FakeClock& clock = rig.clock;
  BranchQueue& queue = rig.queue;
  const WatchedRepo& repo = rig.repo;
  auto put = [&](int pr, const std::string& state, const std::string& approved) {
    ASSERT_TRUE(store.update_fork_request(repo.url, pr, [&](idp::store::ForkRequest& f, bool) -> Expected<void> {
      f.state = state;
      f.head_sha = k_sha2;
      f.approved_commit = approved;
      return {};
    }));
  };
  put(1, "approved", k_sha2); // no environment: deploy
  put(2, "pending", "");      // nothing
  put(3, "closed", k_sha1);   // its environment is live: remove
  put(4, "closed", "");       // none: nothing
  put(5, "approved", k_sha2); // deployed at that commit already: nothing
  core::Environment live;
  live.name = "pr-3";
  live.source_key = engine::Controller::fork_source_key(repo.url, 3);
  ASSERT_TRUE(store.insert_environment(live, {}));
  live.name = "pr-5";
  live.commit = k_sha2;
  live.source_key = engine::Controller::fork_source_key(repo.url, 5);
  ASSERT_TRUE(store.insert_environment(live, {}));
  ForkGate gate({repo}, store, queue, clock, {});
  EXPECT_EQ(gate.resync(), 2u);
  auto one = queue.pending_for_test(repo.url, "pull/1/head (fork)");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].op, BranchOp::sync);
  EXPECT_EQ(one[0].commit, k_sha2);
  auto three = queue.pending_for_test(repo.url, "pull/3/head (fork)");
  ASSERT_EQ(three.size(), 1u);
  EXPECT_EQ(three[0].op, BranchOp::remove);
}

TEST(GithubWebhookTest, SignedPushIsQueuedWithoutTouchingTheController) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  auto resp = r.post("push", "d-1", testing::push_payload(payload_repo(), "feature/x", k_sha1, k_sha2).dump());
  EXPECT_EQ(resp.status, 202) << resp.body.dump();
  EXPECT_EQ(resp.body["status"], "queued");
  auto pending = r.queue.pending_for_test("https://github.com/idp-tests/app.git", "feature/x");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].op, BranchOp::sync);
  EXPECT_EQ(pending[0].commit, k_sha2);
  EXPECT_EQ(pending[0].actor, "webhook:push");
  EXPECT_TRUE(r.actions.calls().empty()); // the queue is not started: nothing ran in the handler
}

TEST(GithubWebhookTest, MissingOrWrongSignatureIs401AndChangesNothing) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  std::string body = testing::push_payload(payload_repo(), "feature/x", k_sha1, k_sha2).dump();
  auto missing = r.post("push", "d-1", body, "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.body["error"], "unauthorized");
  auto wrong = r.post("push", "d-2", body, "not-the-secret");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_TRUE(r.queue.pending_for_test("https://github.com/idp-tests/app.git", "feature/x").empty());
  EXPECT_FALSE(r.delivery_recorded("d-1"));
  EXPECT_FALSE(r.delivery_recorded("d-2"));
}

TEST(GithubWebhookTest, SignedPayloadOfAnUnknownRepositoryIs404AndARepoWithoutSecretIs401) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  TestRepo other{"someone/else", "https://github.com/someone/else.git"};
  auto unknown = r.post("push", "d-1", testing::push_payload(other, "feature/x", k_sha1, k_sha2).dump());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body["message"].get<std::string>().find("someone/else"), std::string::npos);

  WatchedRepo no_secret = test_repo();
  no_secret.webhook_secret = "";
  Receiver r2({no_secret});
  auto refused = r2.post("push", "d-1", testing::push_payload(payload_repo(), "feature/x", k_sha1, k_sha2).dump(), "x");
  EXPECT_EQ(refused.status, 401) << "no secret verifies anything: webhooks are off for it";
}

TEST(GithubWebhookTest, RepositoryIsFoundByFullNameOrByCloneUrl) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  WatchedRepo by_name;
  by_name.url = "/srv/git/app.git"; // a mirror: only github_repo ties it to GitHub
  by_name.github_repo = "idp-tests/app";
  by_name.webhook_secret = k_secret;
  Receiver r({by_name});
  TestRepo gh{"IDP-Tests/App", "https://github.com/idp-tests/app.git"}; // GitHub names are case-insensitive
  EXPECT_EQ(r.post("push", "d-1", testing::push_payload(gh, "feature/x", k_sha1, k_sha2).dump()).status, 202);

  Receiver r2; // url https://github.com/idp-tests/app.git, no github_repo
  TestRepo by_url{"renamed/elsewhere", "https://github.com/idp-tests/app"};
  EXPECT_EQ(r2.post("push", "d-1", testing::push_payload(by_url, "feature/x", k_sha1, k_sha2).dump()).status, 202);
}

TEST(GithubWebhookTest, DuplicateDeliveryIsAnswered200AndNotQueuedTwice) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  std::string body = testing::pull_request_payload(payload_repo(), "closed", 3, "feature/x", k_sha2).dump();
  EXPECT_EQ(r.post("pull_request", "same-id", body).status, 202);
  r.queue.start();
  ASSERT_TRUE(r.queue.wait_idle(5000));
  auto again = r.post("pull_request", "same-id", body);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body["status"], "duplicate");
  ASSERT_TRUE(r.queue.wait_idle(5000));
  EXPECT_EQ(r.actions.calls().size(), 1u);
}

TEST(GithubWebhookTest, InvalidBranchNameIs400AndNothingIsRecorded) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  auto resp =
      r.post("push", "d-1", testing::push_payload(payload_repo(), "bad name\nwith newline", k_sha1, k_sha2).dump());
  EXPECT_EQ(resp.status, 400);
  EXPECT_NE(resp.body["message"].get<std::string>().find("not a valid git branch name"), std::string::npos);
  EXPECT_FALSE(r.delivery_recorded("d-1"));
  EXPECT_EQ(r.queue.stats().pushed, 0u);
}

TEST(GithubWebhookTest, OversizedBodyIs413) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r({test_repo()}, 1000);
  json p = testing::push_payload(payload_repo(), "feature/x", k_sha1, k_sha2);
  auto resp = r.post("push", "d-1", p.dump());
  EXPECT_EQ(resp.status, 413);
  EXPECT_EQ(resp.body["error"], "too_large");
  EXPECT_EQ(r.queue.stats().pushed, 0u);
}

TEST(GithubWebhookTest, PingTagPushAndMissingHeaders) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  auto ping = r.post("ping", "d-1", testing::ping_payload(payload_repo()).dump());
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(ping.body["status"], "pong");
  auto tag = r.post("push", "d-2", testing::tag_push_payload(payload_repo()).dump());
  EXPECT_EQ(tag.status, 200);
  EXPECT_EQ(tag.body["status"], "ignored");
  auto unsigned_empty = r.hook.handle("{}", [](const std::string&) { return std::string(); });
  EXPECT_EQ(unsigned_empty.status, 401) << "the signature is checked before anything else";
  auto no_event = r.post("", "d-4", "{}");
  EXPECT_EQ(no_event.status, 400);
  auto not_json = r.post("push", "d-3", "{not json");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_EQ(r.queue.stats().pushed, 0u);
}

TEST(GithubWebhookTest, FormEncodedDeliveriesAreVerifiedOverTheRawBody) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  std::string form =
      "payload=" + util::url_encode(testing::push_payload(payload_repo(), "feature/x", k_sha1, k_sha2).dump());
  auto resp = r.post("push", "d-1", form, k_secret, "application/x-www-form-urlencoded");
  EXPECT_EQ(resp.status, 202) << resp.body.dump();
}

TEST(GithubWebhookTest, QuickPushesForOneBranchAreCoalescedIntoTheNewest) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  std::string prev = k_sha1;
  std::vector<std::string> shas;
  for (int i = 0; i < 5; ++i) {
    std::string sha(40, static_cast<char>('a' + i));
    auto resp =
        r.post("push", "d-" + std::to_string(i), testing::push_payload(payload_repo(), "feature/x", prev, sha).dump());
    EXPECT_EQ(resp.status, 202);
    EXPECT_EQ(resp.body["status"], i == 0 ? "queued" : "coalesced");
    prev = sha;
  }
  r.queue.start();
  ASSERT_TRUE(r.queue.wait_idle(5000));
  auto calls = r.actions.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].commit, prev);
}

TEST(GithubWebhookTest, InvalidJsonInvalidUtf8AndNonObjectsAre400AndNothingIsRecorded) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  Receiver r;
  std::string valid = util::json_dump(testing::push_payload(payload_repo(), "feat/PLACEHOLDER", k_sha1, k_sha2));
  std::string raw_byte = valid; // a careless sender: the raw byte inside a JSON string
  for (size_t p; (p = raw_byte.find("feat/PLACEHOLDER")) != std::string::npos;) {
    raw_byte.replace(p, std::string("feat/PLACEHOLDER").size(), "feat/\xff");
  }
  int n = 0;
  for (const std::string& body : {std::string("{not json"), std::string("[]"), std::string("\"x\""),
                                  valid.substr(0, valid.size() - 1), valid + "x", raw_byte}) {
    std::string delivery = "bad-" + std::to_string(n++);
    auto resp = r.post("push", delivery, body);
    EXPECT_EQ(resp.status, 400) << util::quote(body.substr(0, 80));
    EXPECT_EQ(resp.body.value("error", ""), "invalid_json");
    EXPECT_EQ(resp.body.value("message", ""), "webhook body is not a JSON object");
    EXPECT_FALSE(r.delivery_recorded(delivery));
  }
  // What a serialiser makes of that byte: U+FFFD, which names no real branch.
  auto replaced =
      r.post("push", "fffd", util::json_dump(testing::push_payload(payload_repo(), "feat/\xff", k_sha1, k_sha2)));
  EXPECT_EQ(replaced.status, 400) << replaced.body.dump();
  EXPECT_NE(replaced.body.value("message", "").find("U+FFFD"), std::string::npos) << replaced.body.dump();
  EXPECT_EQ(r.queue.stats().pushed, 0u);
  // The untouched payload is taken.
  EXPECT_EQ(r.post("push", "good", valid).status, 202);
}

} // namespace
} // namespace idp::sources
