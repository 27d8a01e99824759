#include "sources/github_webhook.hpp"

#include <sstream>

#include <spdlog/spdlog.h>

#include "sources/repo_identity.hpp"
#include "util/git.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"

namespace idp::sources {

using nlohmann::json;

namespace {

const char* k_sig_prefix = "sha256=";

bool is_sha(const std::string& s) {
  if (s.size() != 40 && s.size() != 64) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_zero_sha(const std::string& s) { return !s.empty() && s.find_first_not_of('0') == std::string::npos; }

Expected<void> check_branch(const std::string& branch, const std::string& where) {
  if (branch.empty()) {
    return make_error(ErrorCode::invalid_argument, where + ": no branch name");
  }
  if (branch.size() > 255 || !util::is_valid_git_branch(branch)) {
    return make_error(ErrorCode::invalid_argument,
                      where + ": invalid branch name " + util::quote(branch) + ": not a valid git branch name");
  }
  // A branch whose name is not UTF-8 reaches JSON with U+FFFD for each bad byte: its real
  // name is lost, and acting on the replaced one would deploy a branch that does not exist.
  // Polling reads names from git as bytes and deploys such a branch.
  if (branch.find("\xEF\xBF\xBD") != std::string::npos) {
    return make_error(ErrorCode::invalid_argument,
                      where + ": branch name " + util::quote(branch) +
                          " contains U+FFFD, which stands for bytes that were not UTF-8: the real name is unknown "
                          "(enable polling of the repository to deploy such a branch)");
  }
  return {};
}

const std::string& login_of(const WebhookPayload& p) { return p.sender_login.empty() ? p.pusher_name : p.sender_login; }

HookAction ignore(std::string why) {
  HookAction a;
  a.kind = HookAction::Kind::ignore;
  a.reason = std::move(why);
  return a;
}

Expected<HookAction> map_push(const WebhookPayload& p, const WatchedRepo& repo) {
  const std::string& ref = p.ref;
  if (ref.empty()) {
    return make_error(ErrorCode::invalid_argument, "push event without \"ref\"");
  }
  if (util::starts_with(ref, "refs/tags/")) {
    return ignore("tag push");
  }
  if (!util::starts_with(ref, "refs/heads/")) {
    return ignore("push to " + util::quote(ref) + ", not a branch");
  }
  HookAction a;
  a.branch = ref.substr(11);
  IDP_TRY(check_branch(a.branch, "push"));
  a.owner = login_of(p);
  const std::string& after = p.after;
  if (p.deleted || is_zero_sha(after)) {
    a.kind = HookAction::Kind::remove;
    a.reason = "branch deleted (push by " + a.owner + ")";
    return a;
  }
  if (!is_sha(after)) {
    return make_error(ErrorCode::invalid_argument, "push event: \"after\" is not a commit sha: " + util::quote(after));
  }
  if (!repo.tracks(a.branch)) {
    return ignore("branch " + util::quote(a.branch) + " is not tracked");
  }
  a.kind = HookAction::Kind::sync;
  a.commit = after;
  a.reason = "push by " + a.owner;
  return a;
}

Expected<HookAction> map_pull_request(const WebhookPayload& p, const WatchedRepo& repo) {
  const std::string& action = p.action;
  if (action != "opened" && action != "reopened" && action != "synchronize" && action != "closed") {
    return ignore("pull_request action " + util::quote(action) + " changes no environment");
  }
  if (!p.has_pull_request || !p.has_head) {
    return make_error(ErrorCode::invalid_argument, "pull_request event without \"pull_request.head\"");
  }
  HookAction a;
  a.branch = p.head_ref;
  IDP_TRY(check_branch(a.branch, "pull_request"));
  // The top-level "number" when it is an integer, else the pull request's own.
  PayloadInt number = p.number ? p.number : p.pr_number;
  if (!number || *number <= 0 || *number > 1'000'000'000) {
    return make_error(ErrorCode::invalid_argument, "pull_request event without a valid \"number\"");
  }
  a.pr_number = static_cast<int>(*number);
  // A head in another repository (a fork) is not a branch of the watched repo: never run it
  // as one. With forks: approve, ForkGate holds it until its head commit is approved.
  const std::string& head_repo = p.head_repo_full_name;
  const std::string& base_repo = p.repository.full_name;
  a.owner = login_of(p);
  if (head_repo.empty() || util::to_lower(head_repo) != util::to_lower(base_repo)) {
    if (repo.forks != "approve") {
      return ignore("pull request #" + std::to_string(*a.pr_number) + " comes from a fork (forks: ignore)");
    }
    if (action != "closed" && !is_sha(p.head_sha)) {
      return make_error(ErrorCode::invalid_argument, "pull_request event: \"head.sha\" is not a commit sha");
    }
    a.kind = HookAction::Kind::fork;
    a.action = action;
    a.fork_repo = head_repo.empty() ? std::string("an unknown fork") : head_repo;
    a.commit = p.head_sha;
    a.owner = p.pr_author.empty() ? a.owner : p.pr_author;
    a.reason = "pull request #" + std::to_string(*a.pr_number) + " from " + a.fork_repo + " " + action;
    return a;
  }
  const std::string& sha = p.head_sha;
  if (action == "closed") {
    a.kind = HookAction::Kind::remove;
    a.commit = is_sha(sha) ? sha : "";
    a.reason =
        "pull request #" + std::to_string(*a.pr_number) + (p.pr_merged ? " merged" : " closed") + " by " + a.owner;
    return a;
  }
  if (!repo.tracks(a.branch)) {
    return ignore("branch " + util::quote(a.branch) + " is not tracked");
  }
  if (!is_sha(sha)) {
    return make_error(ErrorCode::invalid_argument, "pull_request event: \"head.sha\" is not a commit sha");
  }
  a.kind = HookAction::Kind::sync;
  a.commit = sha;
  a.reason = "pull request #" + std::to_string(*a.pr_number) + " " + action + " by " + a.owner;
  return a;
}

// "/idp approve" or "/idp approve <sha>" as the first line of a comment.
Expected<HookAction> map_issue_comment(const WebhookPayload& p, const WatchedRepo& repo) {
  if (p.action != "created") {
    return ignore("issue_comment action " + util::quote(p.action) + " changes no environment");
  }
  std::string first = p.comment_body.substr(0, p.comment_body.find('\n'));
  std::vector<std::string> words;
  std::istringstream in(first);
  for (std::string w; in >> w;) {
    words.push_back(w);
  }
  if (words.size() < 2 || words[0] != "/idp" || words[1] != "approve" || words.size() > 3) {
    return ignore("comment is not an /idp command");
  }
  if (!p.issue_is_pull_request) {
    return ignore("/idp approve on an issue, not a pull request");
  }
  if (repo.forks != "approve") {
    return ignore("/idp approve: this repository deploys no pull requests from forks (forks: ignore)");
  }
  if (!p.issue_number || *p.issue_number <= 0 || *p.issue_number > 1'000'000'000) {
    return make_error(ErrorCode::invalid_argument, "issue_comment event without a valid \"issue.number\"");
  }
  HookAction a;
  a.kind = HookAction::Kind::approve;
  a.pr_number = static_cast<int>(*p.issue_number);
  a.owner = p.comment_author.empty() ? p.sender_login : p.comment_author;
  if (words.size() == 3) {
    a.commit = util::to_lower(words[2]);
  }
  a.reason = "/idp approve by " + a.owner;
  return a;
}

Expected<HookAction> map_delete(const WebhookPayload& p) {
  const std::string& ref_type = p.ref_type;
  if (ref_type != "branch") {
    return ignore("deleted " + (ref_type.empty() ? std::string("ref") : ref_type) + ", not a branch");
  }
  HookAction a;
  a.kind = HookAction::Kind::remove;
  a.branch = p.ref;
  IDP_TRY(check_branch(a.branch, "delete"));
  a.owner = login_of(p);
  a.reason = "branch deleted by " + a.owner;
  return a;
}

WebhookResponse reply(int status, json body) { return {status, std::move(body)}; }

WebhookResponse fail(int status, const std::string& code, const std::string& message) {
  return {status, json{{"error", code}, {"message", message}}};
}

bool valid_delivery_id(const std::string& id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' ||
           c == '.';
  });
}

} // namespace

std::string github_signature(std::string_view secret, std::string_view body) {
  return k_sig_prefix + util::to_hex(util::hmac_sha256_raw(secret, body));
}

bool verify_github_signature(std::string_view secret, std::string_view body, std::string_view signature_header) {
  if (secret.empty() || !util::starts_with(signature_header, k_sig_prefix)) {
    return false;
  }
  std::string given = util::to_lower(signature_header.substr(7));
  std::string expected = util::to_hex(util::hmac_sha256_raw(secret, body));
  return util::constant_time_equals(given, expected);
}

Expected<HookAction> map_github_event(const std::string& event, const WebhookPayload& payload,
                                      const WatchedRepo& repo) {
  if (event == "ping") {
    HookAction a;
    a.kind = HookAction::Kind::ping;
    a.reason = "ping";
    return a;
  }
  if (event == "push") {
    return map_push(payload, repo);
  }
  if (event == "pull_request") {
    return map_pull_request(payload, repo);
  }
  if (event == "delete") {
    return map_delete(payload);
  }
  if (event == "issue_comment") {
    return map_issue_comment(payload, repo);
  }
  return ignore("event " + util::quote(event) + " changes no environment");
}

GithubWebhook::GithubWebhook(std::vector<WatchedRepo> repos, store::StateStore& store, BranchQueue& queue,
                             util::Clock& clock, size_t max_body_bytes, ForkGate* forks)
    : m_repos(std::move(repos)), m_queue(queue), m_clock(clock), m_max_body(max_body_bytes), m_forks(forks),
      m_deliveries(store) {}

WebhookResponse GithubWebhook::handle_fork(const HookAction& action, const WatchedRepo& repo,
                                           const std::string& delivery) {
  const int pr = action.pr_number.value_or(0);
  if (!m_forks) {
    return reply(200, {{"status", "ignored"}, {"reason", "this server takes no pull requests from forks"}});
  }
  if (action.kind == HookAction::Kind::fork) {
    ForkEvent ev;
    ev.action = action.action;
    ev.pr = pr;
    ev.head_repo = action.fork_repo;
    ev.head_ref = action.branch;
    ev.head_sha = action.commit;
    ev.author = action.owner;
    auto f = m_forks->on_pull_request(repo, ev);
    if (!f) {
      spdlog::error("webhook: delivery {}: pull request #{} from a fork: {}", delivery, pr, f.error().message);
      return f.error().code == ErrorCode::invalid_argument
                 ? fail(400, "invalid_argument", f.error().message)
                 : fail(503, "unavailable", "cannot record it now; redeliver it later");
    }
    return reply(202, {{"status", f->state}, {"pull_request", pr}, {"commit", f->head_sha}, {"delivery", delivery}});
  }
  if (!ForkGate::comment_approver(repo, action.owner)) {
    std::string why = util::quote(action.owner) + " may not approve pull requests from forks of this repository " +
                      "(not in its fork_approvers)";
    spdlog::warn("webhook: delivery {}: /idp approve on #{} refused: {}", delivery, pr, why);
    return reply(200, {{"status", "refused"}, {"reason", why}, {"delivery", delivery}});
  }
  auto f = m_forks->approve(repo, pr, action.commit, "github:" + action.owner);
  if (!f) {
    if (f.error().code == ErrorCode::transient || f.error().code == ErrorCode::io_error) {
      return fail(503, "unavailable", "cannot record the approval now; redeliver it later");
    }
    spdlog::warn("webhook: delivery {}: /idp approve on #{} refused: {}", delivery, pr, f.error().message);
    return reply(200, {{"status", "refused"}, {"reason", f.error().message}, {"delivery", delivery}});
  }
  return reply(202,
               {{"status", "approved"}, {"pull_request", pr}, {"commit", f->approved_commit}, {"delivery", delivery}});
}

WebhookResponse GithubWebhook::handle(const std::string& body,
                                      const std::function<std::string(const std::string&)>& header) {
  if (body.size() > m_max_body) {
    return fail(413, "too_large",
                "webhook body is " + std::to_string(body.size()) + " bytes, over the limit of " +
                    std::to_string(m_max_body));
  }
  // The signature comes first, before any parsing or lookup: an unsigned or wrongly
  // signed request learns nothing (not even which repositories are watched), and the
  // JSON parser only ever sees bodies from someone who holds a secret.
  std::string signature = header("X-Hub-Signature-256");
  std::vector<const WatchedRepo*> signed_for;
  for (const auto& r : m_repos) {
    if (verify_github_signature(r.webhook_secret, body, signature)) {
      signed_for.push_back(&r);
    }
  }
  if (signed_for.empty()) {
    spdlog::warn("webhook: delivery {} rejected: {} X-Hub-Signature-256",
                 util::quote(header("X-GitHub-Delivery").substr(0, 64)), signature.empty() ? "missing" : "wrong");
    return fail(401, "unauthorized", "missing or wrong X-Hub-Signature-256");
  }
  std::string event = header("X-GitHub-Event");
  if (event.empty() || event.size() > 64) {
    return fail(400, "invalid_argument", "missing X-GitHub-Event header");
  }
  std::string delivery = header("X-GitHub-Delivery");
  if (!valid_delivery_id(delivery)) {
    return fail(400, "invalid_argument", "missing or malformed X-GitHub-Delivery header");
  }
  // GitHub sends either application/json or a form with the JSON in "payload"; the
  // signature covers the raw body either way.
  std::string form_text;
  std::string_view text = body;
  if (util::starts_with(util::to_lower(header("Content-Type")), "application/x-www-form-urlencoded")) {
    if (!util::starts_with(body, "payload=")) {
      return fail(400, "invalid_argument", "form body without a \"payload\" field");
    }
    form_text = util::url_decode(std::string_view(body).substr(8));
    text = form_text;
  }
  auto payload = parse_webhook_payload(text);
  if (!payload) {
    return fail(400, "invalid_json", payload.error().message);
  }
  const WatchedRepo* repo = find_watched_repo(m_repos, payload->repository);
  if (!repo) {
    const std::string& name = payload->repository.full_name;
    return fail(404, "not_found",
                name.empty() ? std::string("the payload names no repository this server watches")
                             : "repository " + util::quote(name) + " is not watched by this server");
  }
  if (std::find(signed_for.begin(), signed_for.end(), repo) == signed_for.end()) {
    // Signed with another repository's secret: that secret does not speak for this one.
    spdlog::warn("webhook: {} delivery {} rejected: signed with the secret of another repository", util::quote(event),
                 delivery);
    return fail(401, "unauthorized", "missing or wrong X-Hub-Signature-256");
  }
  auto action = map_github_event(event, *payload, *repo);
  if (!action) {
    return fail(400, "invalid_argument", action.error().message);
  }
  if (action->kind == HookAction::Kind::ping) {
    return reply(200, {{"status", "pong"}});
  }
  if (action->kind == HookAction::Kind::ignore) {
    return reply(200, {{"status", "ignored"}, {"reason", action->reason}});
  }
  // Deduplicated by delivery id (GitHub's redeliveries) and by a hash of the signed body:
  // the delivery header is not signed, so a captured push replayed under a new id would
  // otherwise be taken again (rolling an environment back, or destroying it).
  auto fresh = m_deliveries.record({delivery, "sha256:" + util::sha256_hex(body)}, m_clock.now_ms());
  if (!fresh) {
    spdlog::error("webhook: cannot record delivery {}: {}", delivery, fresh.error().full_message());
    return fail(503, "unavailable", "cannot record the delivery now; redeliver it later");
  }
  if (!*fresh) {
    return reply(200, {{"status", "duplicate"}, {"delivery", delivery}});
  }
  if (action->kind == HookAction::Kind::fork || action->kind == HookAction::Kind::approve) {
    return handle_fork(*action, *repo, delivery);
  }
  BranchWork work;
  work.op = action->kind == HookAction::Kind::sync ? BranchOp::sync : BranchOp::remove;
  work.repo = repo->url;
  work.branch = action->branch;
  work.commit = action->kind == HookAction::Kind::sync ? action->commit : "";
  work.head = action->commit;
  work.owner = action->owner;
  work.pr_number = action->pr_number;
  work.default_template = repo->default_template;
  work.actor = "webhook:" + event;
  work.reason = action->reason;
  // A push or pull request names the commit it made the head; by the time the work runs
  // that may be history (a stale or replayed delivery): only the head itself is deployed.
  work.only_if_head = work.op == BranchOp::sync;
  auto pushed = m_queue.push(work);
  return reply(202, {{"status", pushed == BranchQueue::Pushed::coalesced ? "coalesced" : "queued"},
                     {"action", work.op == BranchOp::sync ? "sync" : "remove"},
                     {"branch", work.branch},
                     {"commit", action->commit},
                     {"delivery", delivery}});
}

} // namespace idp::sources
