// POST /hooks/github end to end, short of git: GithubWebhook::handle (size limit, headers,
// form or JSON body, repository lookup, HMAC signature, event mapping, delivery record in
// the in-memory store, BranchQueue push), then what the Controller makes of queued work
// (environment name, the stored environment and its create event, their JSON as the API
// serves them). Any delivery gets one of the documented statuses, never a throw or crash;
// queued work always names a branch whose environment name is valid. The payload parser
// (simdjson, nlohmann only when simdjson refuses) accepts exactly the bodies
// nlohmann::json::parse accepts as an object, and projects the same fields from them.
//
// Input: a flags byte, then lines: X-GitHub-Event, X-GitHub-Delivery, X-Hub-Signature-256
// (used only when flags & 1; otherwise the correct signature of the body is sent, so the
// fuzzer gets past the HMAC check), then the body (the rest).

#include <set>

#include "core/names.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "fuzz/fuzz_support.hpp"
#include "sources/branch_queue.hpp"
#include "sources/github_webhook.hpp"
#include "sources/webhook_payload.hpp"

using namespace idp;

namespace {

const std::string k_secret = "fuzz-secret";

// The queue is never started: work stays pending, and the target plays the Controller.
class NoActions final : public sources::BranchActions {
public:
  Expected<std::string> sync(const engine::BranchUpdate&, const std::string&, const std::string&) override {
    return std::string();
  }
  Expected<void> remove(const std::string&, const std::string&, const std::string&, const std::string&) override {
    return {};
  }
};

std::vector<sources::WatchedRepo> watched_repos() {
  sources::WatchedRepo app;
  app.url = "https://github.com/idp-tests/app.git";
  app.webhook_secret = k_secret;
  app.exclude = {"dependabot/*"};
  sources::WatchedRepo no_secret;
  no_secret.url = "https://github.com/idp-tests/closed.git";
  return {app, no_secret};
}

// Controller::sync_branch's pure part: the environment a sync creates.
void create_environment(testing::InMemoryStore& store, const sources::BranchWork& w, util::Millis now) {
  core::Environment env;
  env.repo = w.repo;
  env.branch = w.branch;
  env.owner = w.owner;
  env.commit = w.commit;
  env.pr_number = w.pr_number;
  env.source_key = w.repo + "\n" + w.branch;
  env.created_at = env.updated_at = now;
  env.expires_at = now + 7 * 86'400'000LL;
  env.name = core::env_name_for_branch(w.branch);
  IDP_FUZZ_CHECK(core::validate_env_name(env.name).has_value());
  core::Event ev;
  ev.env = env.name;
  ev.at = now;
  ev.actor = w.actor;
  ev.action = "create";
  ev.reason = w.reason + ": branch " + w.branch + " at " + w.commit;
  auto stored = store.insert_environment(env, {ev});
  IDP_FUZZ_CHECK(stored.has_value());
  auto found = store.find_by_source_key(env.source_key);
  IDP_FUZZ_CHECK(found.has_value() && found->has_value() && (*found)->name == env.name);
  // GET /api/v1/environments and the event stream.
  (void)fuzz::serialise(core::to_json(*stored));
  auto events = store.list_events(store::EventQuery{});
  IDP_FUZZ_CHECK(events.has_value());
  for (const auto& e : *events) {
    (void)fuzz::serialise(core::to_json(e));
  }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::set<int> k_statuses = {200, 202, 400, 401, 403, 404, 413, 503};
  fuzz::FuzzInput in(data, size);
  uint8_t flags = in.byte();
  std::string event = in.field();
  std::string delivery = in.field();
  std::string given_signature = in.field();
  std::string body = in.rest();

  testing::InMemoryStore store;
  testing::FakeClock clock;
  NoActions actions;
  sources::BranchQueue queue(actions, nullptr);
  auto repos = watched_repos();
  sources::GithubWebhook hook(repos, store, queue, clock, 64 * 1024);

  std::string signature = flags & 1 ? given_signature : sources::github_signature(k_secret, body);
  std::string content_type = flags & 2 ? "application/x-www-form-urlencoded" : "application/json";
  auto header = [&](const std::string& name) -> std::string {
    if (name == "X-GitHub-Event") {
      return event;
    }
    if (name == "X-GitHub-Delivery") {
      return delivery;
    }
    if (name == "X-Hub-Signature-256") {
      return signature;
    }
    if (name == "Content-Type") {
      return content_type;
    }
    return "";
  };

  auto fast = sources::parse_webhook_payload(body);
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  bool is_object = !doc.is_discarded() && doc.is_object();
  IDP_FUZZ_CHECK(fast.has_value() == is_object);
  if (is_object) {
    IDP_FUZZ_CHECK(*fast == sources::project_webhook_payload(doc));
  }

  auto res = hook.handle(body, header);
  IDP_FUZZ_CHECK(k_statuses.count(res.status) == 1);
  IDP_FUZZ_CHECK(res.body.is_object());
  // The daemon sends webhook answers with invalid UTF-8 replaced (daemon.cpp).
  (void)res.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (res.status != 202) {
    IDP_FUZZ_CHECK(queue.stats().pushed == 0);
    return 0;
  }
  IDP_FUZZ_CHECK(res.body.contains("branch") && res.body["branch"].is_string());
  std::string branch = res.body["branch"].get<std::string>();
  auto pending = queue.pending_for_test(repos[0].url, branch);
  IDP_FUZZ_CHECK(!pending.empty());
  for (const auto& w : pending) {
    IDP_FUZZ_CHECK(w.branch == branch);
    if (w.op == sources::BranchOp::sync) {
      create_environment(store, w, clock.now_ms());
    }
  }
  // The same delivery again is a duplicate and queues nothing.
  auto again = hook.handle(body, header);
  IDP_FUZZ_CHECK(again.status == 200);
  IDP_FUZZ_CHECK(again.body.value("status", "") == "duplicate");
  return 0;
}
