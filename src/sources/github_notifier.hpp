#pragma once
// GithubNotifier: tells GitHub what happened to the environments of repositories that have
// a github_token. It tails the store's event log (never the deploy path), so a GitHub
// outage can delay a notification but never fail or slow a deploy.
//   - a commit status per deployed commit (context "mini-idp/preview"): pending while it
//     deploys, success with the environment URL as target_url, failure with the reason,
//     error when a newer commit superseded it before it was serving;
//   - one comment per pull request, created once and then edited in place (found again by
//     the hidden marker, on every page of comments), laid out like the original's (spec
//     §5.7) plus the commit and the phase.
//   - a create refused before any environment existed (a budget's `block`, issue 12): a
//     failure status for the commit naming the budget, its spend and its limit, and the PR
//     comment saying it was refused and why (edited in place into the environment's once a
//     later push creates it). Queued by refused() from the branch queue; retried like the
//     others but kept in memory only (a restart drops one not yet sent);
//   - post_comment: a new comment of its own (the budgets' github_comment alerts).
// The event cursor (and the environments still to retry) are kept in store settings, so a
// restart neither repeats nor loses notifications. Failures are logged and retried with
// exponential backoff. The token never appears in logs or errors. Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/environment.hpp"
#include "engine/cost.hpp"
#include "sources/github_client.hpp"
#include "sources/watched_repo.hpp"
#include "store/state_store.hpp"
#include "util/periodic_thread.hpp"
#include "util/time.hpp"

namespace idp::sources {

inline constexpr const char* k_comment_marker = "<!-- mini-idp:preview -->";

// The PR comment for `env` (pure): marker, title (created / updated / destroyed) and a table of
// environment, URL, template, commit, phase, status message (when any) and expiry.
// `cost`: the line of what it cost so far ("" = none), from pr_comment_cost_line.
std::string render_pr_comment(const core::Environment& env, const std::string& cost = "");
// "0.4200 USD so far · about 1.8000 USD/day" of an environment's usage (issue 12); "" when
// nothing was sampled yet.
std::string pr_comment_cost_line(const std::vector<store::UsageHour>& hours, const engine::CostRates& rates,
                                 util::Millis now);

// A create refused before any environment existed (a budget's block): what GitHub is told
// instead of an environment's state.
struct RefusedCreate {
  std::string repo; // the watched repository's URL (or an environment's repo)
  std::string branch;
  std::string commit; // "" = unknown: no commit status
  std::optional<int> pr_number;
  std::string reason; // the refusal's message
};

// The PR comment of a refused create (pure): the marker, "not created", the branch, the
// commit and the reason.
std::string render_refused_comment(const RefusedCreate& refused);
// Its commit status's description: "not deployed: " and the reason up to its first "; "
// (GithubClient::create_status keeps GitHub's 140 characters of it).
std::string refused_status_description(const std::string& reason);

class GithubNotifier {
public:
  struct Options {
    std::string api_url = "https://api.github.com";
    std::string context = "mini-idp/preview";
    util::Millis poll_interval = 500; // how often the event log is read
    util::Millis retry_base = 2'000;  // first retry delay; doubles per attempt
    util::Millis retry_max = 300'000;
    int max_attempts = 10;        // then the notification is dropped (logged)
    engine::CostRates cost_rates; // the comment's "Cost so far" line
  };

  GithubNotifier(std::vector<WatchedRepo> repos, store::StateStore& store, util::Clock& clock, Options options);
  ~GithubNotifier();

  // False when no repository has a token (start() then does nothing).
  bool enabled() const;
  void start();
  void stop();

  // One pass: events after the cursor plus retries that are due, then the refused creates
  // that are due. Returns how many environments (and refused creates) were notified.
  size_t run_once();

  // Queues a refused create for the next pass; nothing when GitHub is not told about its
  // repository. Any thread.
  void refused(RefusedCreate refused);
  // Posts a new comment on pull request `pr` of `repo` (an environment's repository, as
  // stored): false when GitHub is not told about that repository (nothing posted). Any
  // thread; not retried.
  Expected<bool> post_comment(const std::string& repo, int pr, const std::string& body);

  static constexpr const char* k_cursor_setting = "github_notifier.cursor";

private:
  struct Retry {
    int attempts = 0;
    util::Millis next_at = 0;
  };
  struct PendingRefusal {
    RefusedCreate what;
    Retry retry;
    bool status_sent = false;
  };
  static constexpr size_t k_max_refused = 1000; // queued at most; the oldest is dropped

  Expected<void> notify(const std::string& env_name);
  Expected<void> notify_refused(PendingRefusal& pending);
  size_t run_refused(util::Millis now);
  const WatchedRepo* github_repo_for(const std::string& repo) const;
  Expected<void> upsert_comment(GithubClient& client, const std::string& repo, int pr, const std::string& body);
  void load_cursor();
  void save_cursor();

  std::vector<WatchedRepo> m_repos;
  store::StateStore& m_store;
  util::Clock& m_clock;
  Options m_options;

  std::mutex m_run_mu; // one pass at a time
  bool m_loaded = false;
  int64_t m_after_id = 0;
  std::map<std::string, Retry> m_retry;          // environment → backoff
  std::map<std::string, std::string> m_posted;   // env + commit → "state|description|url" last sent
  std::map<std::string, std::string> m_comments; // env → comment body last sent
  std::map<std::string, int64_t> m_comment_ids;  // "owner/repo#pr" → comment id

  std::mutex m_refused_mu; // guards m_refused (refused() comes from the branch queue's workers)
  std::vector<PendingRefusal> m_refused;

  util::PeriodicThread m_thread;
};

} // namespace idp::sources
