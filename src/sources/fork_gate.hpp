#pragma once
// ForkGate: pull requests from forks (issue 15, docs/gitops.md "Pull requests from forks").
// For a repository whose `forks` is `approve`, a pull request from a fork is never deployed
// on its own:
//   - opened / reopened / synchronize: its head is recorded (store::ForkRequest) as pending,
//     unless that very commit was approved already, and GitHub is told: a pending commit
//     status (context mini-idp/preview) and one pull request comment (k_fork_marker, edited
//     in place) saying who may approve, and how;
//   - approve (POST /api/v1/forks/approve: `idp approve REPO#PR`, the dashboard's button; or
//     a "/idp approve" comment by a login of the repository's fork_approvers) approves the
//     head as recorded now and queues its deploy (BranchQueue work with fork_pr): the
//     Controller deploys it only while it is still the pull request's head, under the
//     untrusted profile (no secrets, tighter limits, short TTL, no network beyond the
//     egress allowlist, its own uid, preview behind sign-in);
//   - a new push makes it pending again (an approval names one commit); the environment
//     keeps serving the approved commit until the new head is approved;
//   - closed: recorded, and its environment destroyed.
// GitHub is told from the gate's own thread, retried with backoff: GitHub being down never
// fails a webhook or an approval. Thread-safe.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sources/branch_queue.hpp"
#include "sources/watched_repo.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::sources {

inline constexpr const char* k_fork_marker = "<!-- mini-idp:fork -->";

// What a pull_request event says of a pull request from a fork.
struct ForkEvent {
  std::string action; // opened | reopened | synchronize | closed
  int pr = 0;
  std::string head_repo; // the fork, "owner/name"
  std::string head_ref;
  std::string head_sha; // 40 hex digits
  std::string author;   // the login that caused the event
};

// The pull request comment for a fork request (pure): pending (who may approve, and how),
// approved (by whom, which commit) or closed.
std::string render_fork_comment(const store::ForkRequest& fork, const WatchedRepo& repo);

class ForkGate {
public:
  struct Options {
    std::string github_api_url = "https://api.github.com";
    std::string context = "mini-idp/preview";
    util::Millis retry_base = 2'000; // first retry of a failed notification; doubles per attempt
    int max_attempts = 8;
  };

  ForkGate(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue, util::Clock& clock,
           Options options);
  ~ForkGate();

  // start() first finishes what a previous run recorded but may not have done (the queue
  // is memory only): an approved request whose environment is missing or at another commit
  // is deployed, a closed one's live environment destroyed (resync).
  void start();
  void stop();
  // That pass alone; returns how much work it queued.
  size_t resync();

  // A pull_request event from a fork of `repo` (whose forks is "approve"). Returns the
  // request as recorded. invalid_argument for an action that changes nothing.
  Expected<store::ForkRequest> on_pull_request(const WatchedRepo& repo, const ForkEvent& ev);

  // Approves pull request `pr` of `repo` at its recorded head; `commit` ("" = the head) must
  // be that head (7 to 40 hex digits of it). not_found: no such request recorded;
  // conflict: closed, or `commit` is not the head; invalid_argument: the repository takes no
  // forks. `actor` is recorded ("cli:alice", "github:bob").
  Expected<store::ForkRequest> approve(const WatchedRepo& repo, int pr, const std::string& commit,
                                       const std::string& actor);

  // The watched repository named `selector`: "owner/name" (case-insensitive) or its URL.
  const WatchedRepo* find_repo(const std::string& selector) const;
  // Whether `login` may approve by commenting "/idp approve" on a pull request of `repo`.
  static bool comment_approver(const WatchedRepo& repo, const std::string& login);

  // Every recorded request of the watched repositories.
  Expected<std::vector<store::ForkRequest>> list();

  // Notifications still to send (tests wait for 0).
  size_t pending_notifications();

private:
  struct Note {
    std::string repo; // WatchedRepo::url
    int pr = 0;
    int attempts = 0;
    util::Millis not_before = 0; // steady ms
  };
  void notify_later(const std::string& repo, int pr);
  void run();
  Expected<void> notify(const Note& note);
  const WatchedRepo* repo_by_url(const std::string& url) const;
  // The queue work that deploys `f` at its approved commit, or removes its environment.
  BranchWork deploy_work(const WatchedRepo& repo, const store::ForkRequest& f, const std::string& actor,
                         const std::string& reason) const;

  std::vector<WatchedRepo> m_repos;
  store::StateStore& m_store;
  BranchQueue& m_queue;
  util::Clock& m_clock;
  Options m_options;

  std::mutex m_mu;
  std::condition_variable m_cv;
  std::deque<Note> m_notes; // guarded by m_mu
  size_t m_busy = 0;        // notifications being sent; guarded by m_mu
  bool m_stop = false;      // guarded by m_mu
  std::thread m_thread;
};

} // namespace idp::sources
