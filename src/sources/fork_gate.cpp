#include "sources/fork_gate.hpp"

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "engine/controller.hpp"
#include "engine/repo_resolver.hpp"
#include "sources/github_client.hpp"
#include "sources/repo_identity.hpp"
#include "util/git.hpp"
#include "util/strings.hpp"

namespace idp::sources {

namespace {

bool is_full_sha(const std::string& s) {
  return s.size() == 40 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string work_key(int pr) { return "pull/" + std::to_string(pr) + "/head (fork)"; }

} // namespace

std::string render_fork_comment(const store::ForkRequest& f, const WatchedRepo& repo) {
  const std::string gh = github_repo_of(repo);
  const std::string pr = std::to_string(f.pr);
  std::string out = std::string(k_fork_marker) + "\n";
  if (f.state == "closed") {
    out += "### Pull request from a fork: closed\n\nIts preview environment, if it had one, is destroyed.\n";
    return out;
  }
  if (f.state == "approved") {
    out += "### Pull request from a fork: approved\n\nCommit `" + util::short_commit(f.approved_commit, 12) +
           "` was approved by " + f.approved_by +
           ". It is deployed under the **untrusted profile**: no secrets, no network beyond the package registries "
           "the server allows, its own user, tighter limits, a short TTL, and its preview needs a sign-in.\n\n"
           "A new push needs a new approval.\n";
    return out;
  }
  out += "### Pull request from a fork: waiting for approval\n\n"
         "This pull request comes from `" +
         f.head_repo + "`. Its head `" + util::short_commit(f.head_sha, 12) +
         "` is deployed only once someone allowed approves that commit. It then runs under the **untrusted "
         "profile** (no secrets, no network beyond the package registries, its preview behind sign-in).\n\n"
         "Who may approve:\n"
         "- an admin or developer of the mini-idp server: `idp approve " +
         (gh.empty() ? repo.url : gh) + "#" + pr + "`, or the Approve button on the dashboard";
  if (!repo.fork_approvers.empty()) {
    std::vector<std::string> at;
    for (const auto& l : repo.fork_approvers) {
      at.push_back("@" + l);
    }
    out += ";\n- " + util::join(at, ", ") + ": a comment `/idp approve` on this pull request";
  }
  out += ".\n\nEach new push needs a new approval.\n";
  return out;
}

ForkGate::ForkGate(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue, util::Clock& clock,
                   Options options)
    : m_repos(std::move(repos)), m_store(store), m_queue(queue), m_clock(clock), m_options(std::move(options)) {}

ForkGate::~ForkGate() { stop(); }

BranchWork ForkGate::deploy_work(const WatchedRepo& repo, const store::ForkRequest& f, const std::string& actor,
                                 const std::string& reason) const {
  BranchWork work;
  work.op = f.state == "closed" ? BranchOp::remove : BranchOp::sync;
  work.repo = repo.url;
  work.branch = work_key(f.pr);
  work.fork_pr = f.pr;
  work.pr_number = f.pr;
  if (work.op == BranchOp::sync) {
    work.commit = f.approved_commit;
    work.head = f.approved_commit;
    work.owner = f.author;
    work.default_template = repo.default_template;
  }
  work.actor = actor;
  work.reason = reason;
  return work;
}

size_t ForkGate::resync() {
  auto all = m_store.list_fork_requests();
  if (!all) {
    spdlog::error("forks: cannot read the pull requests from forks: {}", all.error().message);
    return 0;
  }
  size_t queued = 0;
  for (const auto& f : *all) {
    const WatchedRepo* repo = repo_by_url(f.repo);
    if (!repo || repo->forks != "approve" || (f.state != "approved" && f.state != "closed")) {
      continue;
    }
    auto env = m_store.find_by_source_key(
        engine::Controller::fork_source_key(engine::RepoResolver::canonical_repo(f.repo), f.pr));
    if (!env) {
      spdlog::error("forks: cannot look up the environment of #{}: {}", f.pr, env.error().message);
      continue;
    }
    const bool live = env->has_value() && (*env)->desired == core::Desired::present;
    if (f.state == "closed" ? !live : (live && (*env)->commit == f.approved_commit)) {
      continue; // done already
    }
    m_queue.push(deploy_work(*repo, f, "forks:resync",
                             "pull request #" + std::to_string(f.pr) + " " + f.state + " before the server stopped"));
    queued += 1;
  }
  return queued;
}

void ForkGate::start() {
  resync();
  std::lock_guard g(m_mu);
  if (m_thread.joinable()) {
    return;
  }
  m_stop = false;
  m_thread = std::thread([this] { run(); });
}

void ForkGate::stop() {
  {
    std::lock_guard g(m_mu);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

const WatchedRepo* ForkGate::repo_by_url(const std::string& url) const {
  return find_repo_by_url(m_repos, engine::RepoResolver::canonical_repo(url));
}

const WatchedRepo* ForkGate::find_repo(const std::string& selector) const {
  if (selector.empty()) {
    return nullptr;
  }
  for (const auto& r : m_repos) {
    if (util::to_lower(github_repo_of(r)) == util::to_lower(selector) || r.url == selector ||
        engine::RepoResolver::canonical_repo(r.url) == engine::RepoResolver::canonical_repo(selector)) {
      return &r;
    }
  }
  return nullptr;
}

bool ForkGate::comment_approver(const WatchedRepo& repo, const std::string& login) {
  // GitHub logins are case-insensitive.
  return !login.empty() && std::any_of(repo.fork_approvers.begin(), repo.fork_approvers.end(),
                                       [&](const auto& l) { return util::to_lower(l) == util::to_lower(login); });
}

Expected<store::ForkRequest> ForkGate::on_pull_request(const WatchedRepo& repo, const ForkEvent& ev) {
  if (repo.forks != "approve") {
    return make_error(ErrorCode::invalid_argument, "repository " + util::quote(repo.url) + " takes no forks");
  }
  const bool closed = ev.action == "closed";
  if (!closed && ev.action != "opened" && ev.action != "reopened" && ev.action != "synchronize") {
    return make_error(ErrorCode::invalid_argument,
                      "pull_request action " + util::quote(ev.action) + " changes nothing");
  }
  if (!closed && !is_full_sha(ev.head_sha)) {
    return make_error(ErrorCode::invalid_argument, "pull_request event: \"head.sha\" is not a commit sha");
  }
  const util::Millis now = m_clock.now_ms();
  bool deploy = false;
  auto stored = m_store.update_fork_request(repo.url, ev.pr, [&](store::ForkRequest& f, bool) -> Expected<void> {
    f.github_repo = github_repo_of(repo);
    f.head_repo = ev.head_repo;
    if (!ev.head_ref.empty()) {
      f.head_ref = ev.head_ref;
    }
    if (!ev.author.empty()) {
      f.author = ev.author;
    }
    f.updated_at = now;
    if (closed) {
      f.state = "closed";
      return {};
    }
    f.head_sha = ev.head_sha;
    // Reopened at the commit approved before: still approved (deployed again).
    deploy = f.approved_commit == ev.head_sha;
    f.state = deploy ? "approved" : "pending";
    return {};
  });
  if (!stored) {
    return stored;
  }
  if (closed) {
    m_queue.push(deploy_work(repo, *stored, "webhook:pull_request",
                             "pull request #" + std::to_string(ev.pr) + " from " + ev.head_repo + " closed"));
  } else if (deploy) {
    m_queue.push(deploy_work(repo, *stored, "webhook:pull_request",
                             "pull request #" + std::to_string(ev.pr) + " from " + ev.head_repo + " " + ev.action +
                                 " at its approved commit"));
  } else {
    spdlog::info("forks: pull request #{} of {} from {} at {} waits for approval", ev.pr, util::quote(repo.url),
                 util::quote(ev.head_repo), util::short_commit(ev.head_sha, 12));
  }
  notify_later(repo.url, ev.pr);
  return stored;
}

Expected<store::ForkRequest> ForkGate::approve(const WatchedRepo& repo, int pr, const std::string& commit,
                                               const std::string& actor) {
  const std::string name = github_repo_of(repo).empty() ? repo.url : github_repo_of(repo);
  if (repo.forks != "approve") {
    return make_error(ErrorCode::invalid_argument, "repository " + util::quote(name) +
                                                       " does not deploy pull requests from forks (its forks setting "
                                                       "is ignore; an operator sets forks: approve)");
  }
  if (!commit.empty() && !engine::RepoResolver::is_commit_sha(commit)) {
    return make_error(ErrorCode::invalid_argument,
                      "expected a commit sha (7 to 40 hex digits), got " + util::quote(commit));
  }
  const util::Millis now = m_clock.now_ms();
  bool fresh = false;
  auto stored = m_store.update_fork_request(repo.url, pr, [&](store::ForkRequest& f, bool exists) -> Expected<void> {
    if (!exists) {
      return make_error(ErrorCode::not_found,
                        "no pull request #" + std::to_string(pr) + " from a fork of " + util::quote(name) +
                            " is known (it is recorded when GitHub sends its pull_request event)");
    }
    if (f.state == "closed") {
      return make_error(ErrorCode::conflict, "pull request #" + std::to_string(pr) + " is closed");
    }
    if (!commit.empty() && !util::starts_with(f.head_sha, commit)) {
      return make_error(ErrorCode::conflict, "pull request #" + std::to_string(pr) + " is now at " +
                                                 util::short_commit(f.head_sha, 12) + ", not at " + commit +
                                                 ": approve its head");
    }
    fresh = f.approved_commit != f.head_sha;
    f.state = "approved";
    f.approved_commit = f.head_sha;
    f.approved_by = actor;
    f.approved_at = now;
    f.updated_at = now;
    return {};
  });
  if (!stored) {
    return stored;
  }
  spdlog::info("forks: pull request #{} of {} approved at {} by {}", pr, util::quote(name),
               util::short_commit(stored->approved_commit, 12), actor);
  m_queue.push(
      deploy_work(repo, *stored, actor,
                  "pull request #" + std::to_string(pr) + " from " + stored->head_repo + " approved by " + actor));
  if (fresh) {
    notify_later(repo.url, pr);
  }
  return stored;
}

Expected<std::vector<store::ForkRequest>> ForkGate::list() {
  IDP_TRY_ASSIGN(auto all, m_store.list_fork_requests());
  std::vector<store::ForkRequest> out;
  for (auto& f : all) {
    if (repo_by_url(f.repo)) {
      out.push_back(std::move(f));
    }
  }
  return out;
}

size_t ForkGate::pending_notifications() {
  std::lock_guard g(m_mu);
  return m_notes.size() + m_busy;
}

void ForkGate::notify_later(const std::string& repo, int pr) {
  const WatchedRepo* r = repo_by_url(repo);
  if (!r || r->github_token.empty() || github_repo_of(*r).empty()) {
    return; // nobody to tell
  }
  {
    std::lock_guard g(m_mu);
    // One pending note per pull request: it reads the newest state when it runs.
    bool queued = std::any_of(m_notes.begin(), m_notes.end(),
                              [&](const Note& n) { return n.repo == repo && n.pr == pr && n.attempts == 0; });
    if (queued) {
      return;
    }
    m_notes.push_back(Note{repo, pr, 0, 0});
  }
  m_cv.notify_all();
}

void ForkGate::run() {
  std::unique_lock lk(m_mu);
  while (!m_stop) {
    const util::Millis now = util::steady_ms();
    auto due = std::find_if(m_notes.begin(), m_notes.end(), [&](const Note& n) { return n.not_before <= now; });
    if (due == m_notes.end()) {
      util::Millis next = 0;
      for (const auto& n : m_notes) {
        next = next == 0 ? n.not_before : std::min(next, n.not_before);
      }
      if (next == 0) {
        m_cv.wait(lk);
      } else {
        m_cv.wait_for(lk, std::chrono::milliseconds(next - now));
      }
      continue;
    }
    Note note = *due;
    m_notes.erase(due);
    m_busy += 1;
    lk.unlock();
    auto sent = notify(note);
    lk.lock();
    m_busy -= 1;
    if (!sent) {
      note.attempts += 1;
      if (note.attempts >= m_options.max_attempts || sent.error().code == ErrorCode::unauthorized) {
        spdlog::error("forks: cannot tell GitHub about pull request #{}: {} (given up)", note.pr, sent.error().message);
      } else {
        util::Millis delay = m_options.retry_base << std::min(note.attempts - 1, 10);
        spdlog::warn("forks: cannot tell GitHub about pull request #{}: {}; retrying", note.pr, sent.error().message);
        note.not_before = util::steady_ms() + delay;
        m_notes.push_back(note);
      }
    }
  }
}

Expected<void> ForkGate::notify(const Note& note) {
  const WatchedRepo* repo = repo_by_url(note.repo);
  if (!repo) {
    return {};
  }
  IDP_TRY_ASSIGN(auto found, m_store.get_fork_request(note.repo, note.pr));
  if (!found) {
    return {};
  }
  const store::ForkRequest& f = *found;
  const std::string gh = github_repo_of(*repo);
  GithubClient client(m_options.github_api_url, repo->github_token);
  if (f.state == "pending" && is_full_sha(f.head_sha)) {
    IDP_TRY(client.create_status(gh, f.head_sha, "pending", "",
                                 "Waiting for approval: a pull request from a fork is deployed once its head commit "
                                 "is approved",
                                 m_options.context));
  }
  const std::string body = render_fork_comment(f, *repo);
  IDP_TRY_ASSIGN(auto id, client.find_comment(gh, f.pr, k_fork_marker));
  if (id) {
    return client.update_comment(gh, *id, body);
  }
  IDP_TRY(client.create_comment(gh, f.pr, body));
  return {};
}

} // namespace idp::sources
