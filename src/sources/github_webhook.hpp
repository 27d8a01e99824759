#pragma once
// GitHub webhooks (POST /hooks/github): verify, map to branch work, enqueue, answer.
// The handler never calls the Controller or git: it checks the request, records the
// delivery (DeliveryLog) and pushes work onto the BranchQueue, so it answers in milliseconds.
//
// Answers (JSON bodies {"status": ...} or {"error": ..., "message": ...}):
//   202 queued | coalesced    work for a branch was enqueued (coalesced: it replaced older work)
//   200 pong | ignored | duplicate
//   400 malformed request, or a branch name git would not accept (nothing changes)
//   401 missing or wrong X-Hub-Signature-256, checked first against every watched
//       repository's secret, before any parsing: always the same answer, so it tells
//       nothing about which repositories are watched; also when the body is signed with
//       the secret of another repository than the one it names
//   404 a signed payload names no watched repository (so a misrouted hook shows as failed
//       in GitHub's delivery log rather than silently succeeding)
// Duplicates (200 "duplicate"): the same delivery id, or the same signed body again.
// Pull requests from forks of a repository with forks: approve (ForkGate): 202 with
// {"status": "pending" | "approved" | "closed"}; a "/idp approve" comment: 202 "approved",
// or 200 "refused" with the reason (not in fork_approvers, not a known pull request, ...).
//   413 body over the limit
//   503 the store could not record the delivery (GitHub shows the failure; redeliver)
// Thread-safe.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sources/branch_queue.hpp"
#include "sources/delivery_log.hpp"
#include "sources/fork_gate.hpp"
#include "sources/watched_repo.hpp"
#include "sources/webhook_payload.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::sources {

// True when `signature_header` is "sha256=" + hex HMAC-SHA256(secret, body), compared in
// constant time. False for an empty secret or a missing/malformed header.
bool verify_github_signature(std::string_view secret, std::string_view body, std::string_view signature_header);

// "sha256=<hex>" for `body` under `secret` (what GitHub sends; used by tests and tools).
std::string github_signature(std::string_view secret, std::string_view body);

// What one event means for the branches of the repository it names. Pure.
struct HookAction {
  // fork: a pull request from a fork of a repository whose forks is "approve" (ForkGate);
  // approve: a "/idp approve [sha]" comment on a pull request of such a repository.
  enum class Kind { sync, remove, ignore, ping, fork, approve };
  Kind kind = Kind::ignore;
  std::string branch;
  std::string commit; // sync: the commit to deploy; remove: the head when known
  std::optional<int> pr_number;
  std::string owner;     // the GitHub login that caused it
  std::string reason;    // for the audit log, or why it was ignored
  std::string fork_repo; // fork: the head's repository, "owner/name"
  std::string action;    // fork: the pull_request action
};

// Maps an X-GitHub-Event name and its payload (parse_webhook_payload). Tracking rules
// (`repo.tracks`) decide which pushes and pull requests sync; removals are not filtered (they
// are idempotent). invalid_argument when the payload lacks a field the event needs or names a
// branch git would not accept.
Expected<HookAction> map_github_event(const std::string& event, const WebhookPayload& payload, const WatchedRepo& repo);

struct WebhookResponse {
  int status = 200;
  nlohmann::json body;
};

class GithubWebhook {
public:
  // `repos` are copied. `max_body_bytes` should equal the HTTP server's payload limit.
  // `forks` (may be null: fork events are then ignored) takes pull requests from forks.
  GithubWebhook(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue, util::Clock& clock,
                size_t max_body_bytes = 1024 * 1024, ForkGate* forks = nullptr);

  // One delivery: the exact body bytes and a header lookup ("" when absent).
  WebhookResponse handle(const std::string& body, const std::function<std::string(const std::string&)>& header);

  // The deliveries taken (their keys reach the store in batches, see DeliveryLog).
  DeliveryLog& deliveries() { return m_deliveries; }

private:
  WebhookResponse handle_fork(const HookAction& action, const WatchedRepo& repo, const std::string& delivery);

  std::vector<WatchedRepo> m_repos;
  BranchQueue& m_queue;
  util::Clock& m_clock;
  size_t m_max_body;
  ForkGate* m_forks;
  DeliveryLog m_deliveries;
};

} // namespace idp::sources
