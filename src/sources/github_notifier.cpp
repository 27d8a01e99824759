#include "sources/github_notifier.hpp"

#include <algorithm>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/dashboard_markdown.hpp"
#include "engine/repo_resolver.hpp"
#include "sources/repo_identity.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"

namespace idp::sources {

using core::Environment;
using core::Phase;
using core::Revision;
using core::RevisionStatus;

namespace {

using core::markdown_cell;

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Status {
  std::string state;
  std::string description;
  std::string url;
  std::string key() const { return state + "|" + description + "|" + url; }
};

std::optional<Status> status_of(const Revision& rev, const Environment& env, const std::string& posted) {
  switch (rev.status) {
  case RevisionStatus::pending:
  case RevisionStatus::building:
  case RevisionStatus::starting:
    return Status{"pending", "deploying " + util::short_commit(rev.commit) + " to " + env.name, env.url};
  case RevisionStatus::serving:
    return Status{"success", env.name + " is serving " + util::short_commit(rev.commit), env.url};
  case RevisionStatus::failed:
    return Status{"failure", "deploy to " + env.name + " failed: " + first_line(rev.message), ""};
  case RevisionStatus::superseded:
    // Only correct what we said: a "pending" would otherwise stay forever.
    if (util::starts_with(posted, "pending|")) {
      return Status{"error", "not deployed: superseded by a newer commit", ""};
    }
    return std::nullopt;
  case RevisionStatus::stopped: return std::nullopt;
  }
  return std::nullopt;
}

} // namespace

std::string pr_comment_cost_line(const std::vector<store::UsageHour>& hours, const engine::CostRates& rates,
                                 util::Millis now) {
  auto lines = engine::summarize_cost(hours, rates, now, "", nullptr);
  if (lines.empty()) {
    return "";
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%.4f %s so far \u00b7 about %.4f %s/day", lines.front().to_date.total(),
                rates.currency.c_str(), lines.front().per_day, rates.currency.c_str());
  return buf;
}

std::string render_pr_comment(const Environment& env, const std::string& cost) {
  bool destroyed = env.phase == Phase::destroyed || env.phase == Phase::destroying;
  std::string title;
  if (destroyed) {
    title = "🗑️ **Preview Environment " +
            std::string(env.phase == Phase::destroyed ? "destroyed" : "being destroyed") + "**";
  } else if (env.generation <= 1) {
    title = "🚀 **Preview Environment created**";
  } else {
    title = "🔄 **Preview Environment updated (TTL extended)**";
  }
  std::string commit = "`" + util::short_commit(env.commit) + "`";
  if (!env.deployed_commit.empty() && env.deployed_commit != env.commit) {
    commit += " (serving `" + util::short_commit(env.deployed_commit) + "`)";
  }
  std::string url = destroyed ? "-" : (env.url.empty() ? "pending" : env.url);
  std::string expires = destroyed ? "-" : (env.expires_at > 0 ? util::format_iso8601(env.expires_at) : "unknown");
  std::string out;
  out += std::string(k_comment_marker) + "\n";
  out += title + "\n\n";
  out += "| | |\n|---|---|\n";
  out += "| **Environment** | `" + env.name + "` |\n";
  out += "| **URL** | " + markdown_cell(url) + " |\n";
  out += "| **Template** | `" + markdown_cell(env.template_name) + "` |\n";
  out += "| **Commit** | " + commit + " |\n";
  out += "| **Phase** | " + std::string(core::phase_name(env.phase)) +
         (env.sleeping() && !destroyed ? " (sleeping: its next request wakes it)" : "") + " |\n";
  if (!env.message.empty() && !destroyed) {
    out += "| **Status** | " + markdown_cell(first_line(env.message).substr(0, 300)) + " |\n";
  }
  if (!destroyed) {
    // Where the last deploy's time went (docs/telemetry.md).
    auto outputs = nlohmann::json::parse(env.outputs_json, nullptr, false);
    std::string summary =
        outputs.is_object() && outputs.contains("deploy") ? core::deploy_summary(outputs["deploy"]) : "";
    if (!summary.empty()) {
      out += "| **Last deploy** | " + markdown_cell(summary) + " |\n";
    }
  }
  if (env.freeze) {
    // A QA freeze (issue 12): pushes wait.
    const auto& f = *env.freeze;
    std::string text = "by " + f.by + (f.until ? " until " + util::format_iso8601(f.until) : std::string()) +
                       (f.reason.empty() ? "" : ": " + f.reason) + "; " + std::to_string(f.waiting.size()) +
                       " newer commit" + (f.waiting.size() == 1 ? "" : "s") + " waiting";
    out += "| **Frozen** | " + markdown_cell(text) + " |\n";
  }
  if (!cost.empty()) {
    out += "| **Cost** | " + markdown_cell(cost) + " |\n";
  }
  out += "| **Expires** | " + expires + " |\n\n";
  out += "> This environment is automatically destroyed when this PR is merged or the branch is deleted.\n";
  out += "> TTL is extended on every push.\n";
  return out;
}

std::string refused_status_description(const std::string& reason) {
  std::string line = first_line(reason);
  return "not deployed: " + line.substr(0, line.find("; ")); // create_status cuts it to 140
}

std::string render_refused_comment(const RefusedCreate& refused) {
  std::string out;
  out += std::string(k_comment_marker) + "\n";
  out += "\u26d4 **Preview Environment not created**\n\n";
  out += "| | |\n|---|---|\n";
  out += "| **Branch** | `" + markdown_cell(refused.branch) + "` |\n";
  if (!refused.commit.empty()) {
    out += "| **Commit** | `" + util::short_commit(refused.commit) + "` |\n";
  }
  out += "| **Refused** | " + markdown_cell(first_line(refused.reason).substr(0, 500)) + " |\n\n";
  out += "> Nothing was deployed. A push after the budget has room again (next month, a higher limit, or fewer "
         "environments running) creates the environment.\n";
  return out;
}

GithubNotifier::GithubNotifier(std::vector<WatchedRepo> repos, store::StateStore& store, util::Clock& clock,
                               Options options)
    : m_repos(std::move(repos)), m_store(store), m_clock(clock), m_options(std::move(options)) {}

GithubNotifier::~GithubNotifier() { stop(); }

bool GithubNotifier::enabled() const {
  return std::any_of(m_repos.begin(), m_repos.end(),
                     [](const WatchedRepo& r) { return !r.github_token.empty() && !github_repo_of(r).empty(); });
}

void GithubNotifier::start() {
  if (!enabled()) {
    return;
  }
  m_thread.start(
      [this] {
        run_once();
        return m_options.poll_interval;
      },
      "github_notifier");
}

void GithubNotifier::stop() { m_thread.stop(); }

void GithubNotifier::load_cursor() {
  if (m_loaded) {
    return;
  }
  auto text = m_store.get_setting(k_cursor_setting);
  if (!text) {
    return; // store trouble: try again on the next pass
  }
  m_loaded = true;
  if (!*text) {
    return;
  }
  auto j = nlohmann::json::parse(**text, nullptr, false);
  if (!j.is_object()) {
    return;
  }
  m_after_id = j.value("after_id", int64_t{0});
  if (j.contains("retry") && j["retry"].is_array()) {
    for (const auto& n : j["retry"]) {
      if (n.is_string()) {
        m_retry[n.get<std::string>()] = Retry{};
      }
    }
  }
}

void GithubNotifier::save_cursor() {
  nlohmann::json retry = nlohmann::json::array();
  for (const auto& [name, _] : m_retry) {
    retry.push_back(name);
  }
  nlohmann::json j = {{"after_id", m_after_id}, {"retry", retry}};
  if (auto saved = m_store.set_setting(k_cursor_setting, util::json_dump(j)); !saved) {
    spdlog::warn("github: cannot save the notification cursor: {}", saved.error().full_message());
  }
}

size_t GithubNotifier::run_once() {
  std::lock_guard<std::mutex> run_guard(m_run_mu);
  load_cursor();
  if (!m_loaded) {
    return 0;
  }
  store::EventQuery q;
  q.after_id = m_after_id;
  q.limit = 500;
  auto events = m_store.list_events(q);
  if (!events) {
    spdlog::warn("github: cannot read the event log: {}", events.error().full_message());
    return 0;
  }
  util::Millis now = m_clock.now_ms();
  std::set<std::string> due;
  for (const auto& e : *events) {
    due.insert(e.env);
  }
  for (const auto& [name, r] : m_retry) {
    if (r.next_at <= now) {
      due.insert(name);
    }
  }
  size_t notified = 0;
  bool changed = !events->empty();
  for (const auto& name : due) {
    auto retry = m_retry.find(name);
    if (retry != m_retry.end() && retry->second.next_at > now) {
      continue; // backing off; its retry covers this event too
    }
    auto result = notify(name);
    if (result) {
      notified += 1;
      if (retry != m_retry.end()) {
        m_retry.erase(retry);
        changed = true;
      }
      continue;
    }
    Retry& r = m_retry[name];
    r.attempts += 1;
    changed = true;
    if (r.attempts >= m_options.max_attempts || result.error().code == ErrorCode::unauthorized) {
      spdlog::error("github: giving up notifying about {}: {}", name, result.error().full_message());
      m_retry.erase(name);
      continue;
    }
    util::Millis delay = m_options.retry_base;
    for (int i = 1; i < r.attempts && delay < m_options.retry_max; ++i) {
      delay *= 2;
    }
    r.next_at = now + std::min(delay, m_options.retry_max);
    spdlog::warn("github: notifying about {} failed (attempt {}), retrying in {}: {}", name, r.attempts,
                 util::format_duration(std::min(delay, m_options.retry_max)), result.error().full_message());
  }
  if (!events->empty()) {
    m_after_id = events->back().id;
  }
  if (changed) {
    save_cursor();
  }
  return notified + run_refused(now);
}

const WatchedRepo* GithubNotifier::github_repo_for(const std::string& repo) const {
  const WatchedRepo* w = find_repo_by_url(m_repos, engine::RepoResolver::canonical_repo(repo));
  if (!w || w->github_token.empty() || github_repo_of(*w).empty()) {
    return nullptr;
  }
  return w;
}

void GithubNotifier::refused(RefusedCreate refused) {
  if (!github_repo_for(refused.repo)) {
    return;
  }
  std::lock_guard<std::mutex> g(m_refused_mu);
  if (m_refused.size() >= k_max_refused) {
    spdlog::warn("github: too many refused creates to tell; dropping the oldest ({})", m_refused.front().what.branch);
    m_refused.erase(m_refused.begin());
  }
  m_refused.push_back(PendingRefusal{std::move(refused), Retry{}, false});
}

size_t GithubNotifier::run_refused(util::Millis now) {
  std::vector<PendingRefusal> due;
  {
    std::lock_guard<std::mutex> g(m_refused_mu);
    auto later = std::stable_partition(m_refused.begin(), m_refused.end(),
                                       [&](const PendingRefusal& p) { return p.retry.next_at > now; });
    due.assign(std::make_move_iterator(later), std::make_move_iterator(m_refused.end()));
    m_refused.erase(later, m_refused.end());
  }
  size_t notified = 0;
  for (auto& p : due) {
    auto result = notify_refused(p);
    if (result) {
      notified += 1;
      continue;
    }
    Retry& r = p.retry;
    r.attempts += 1;
    std::string what = "the refused create of " + util::quote(p.what.branch);
    if (r.attempts >= m_options.max_attempts || result.error().code == ErrorCode::unauthorized) {
      spdlog::error("github: giving up telling about {}: {}", what, result.error().full_message());
      continue;
    }
    util::Millis delay = m_options.retry_base;
    for (int i = 1; i < r.attempts && delay < m_options.retry_max; ++i) {
      delay *= 2;
    }
    r.next_at = now + std::min(delay, m_options.retry_max);
    spdlog::warn("github: telling about {} failed (attempt {}), retrying in {}: {}", what, r.attempts,
                 util::format_duration(std::min(delay, m_options.retry_max)), result.error().full_message());
    std::lock_guard<std::mutex> g(m_refused_mu);
    m_refused.push_back(std::move(p));
  }
  return notified;
}

Expected<void> GithubNotifier::notify_refused(PendingRefusal& pending) {
  const RefusedCreate& r = pending.what;
  const WatchedRepo* repo = github_repo_for(r.repo);
  if (!repo) {
    return {};
  }
  std::string gh = github_repo_of(*repo);
  GithubClient client(m_options.api_url, repo->github_token);
  if (!r.commit.empty() && !pending.status_sent) {
    IDP_TRY(client.create_status(gh, r.commit, "failure", "", refused_status_description(r.reason), m_options.context));
    pending.status_sent = true;
  }
  if (r.pr_number) {
    IDP_TRY(upsert_comment(client, gh, *r.pr_number, render_refused_comment(r)));
  }
  return {};
}

Expected<bool> GithubNotifier::post_comment(const std::string& repo, int pr, const std::string& body) {
  const WatchedRepo* w = github_repo_for(repo);
  if (!w) {
    return false;
  }
  GithubClient client(m_options.api_url, w->github_token);
  IDP_TRY(client.create_comment(github_repo_of(*w), pr, body));
  return true;
}

Expected<void> GithubNotifier::notify(const std::string& env_name) {
  auto env = m_store.get_environment(env_name);
  if (!env) {
    return env.error().code == ErrorCode::not_found ? Expected<void>() : Unexpected(env.error());
  }
  const WatchedRepo* repo = find_repo_by_url(m_repos, env->repo);
  if (!repo || repo->github_token.empty()) {
    return {};
  }
  std::string gh = github_repo_of(*repo);
  if (gh.empty()) {
    return {};
  }
  GithubClient client(m_options.api_url, repo->github_token);
  IDP_TRY_ASSIGN(auto revs, m_store.list_revisions(env_name, 10)); // newest first

  // The newest word on each commit, oldest commit first.
  std::vector<std::pair<std::string, Status>> wanted;
  std::set<std::string> commits;
  for (auto it = revs.rbegin(); it != revs.rend(); ++it) {
    std::string key = env_name + "\n" + it->commit;
    auto st = status_of(*it, *env, m_posted[key]);
    commits.insert(it->commit);
    if (!st) {
      continue;
    }
    auto same = std::find_if(wanted.begin(), wanted.end(), [&](const auto& w) { return w.first == it->commit; });
    if (same != wanted.end()) {
      same->second = *st;
    } else {
      wanted.emplace_back(it->commit, *st);
    }
  }
  if (env->needs_deploy() && !env->commit.empty() && !commits.count(env->commit)) {
    // Accepted but not started yet: say so before the build begins.
    wanted.emplace_back(
        env->commit,
        Status{"pending", "queued: deploying " + util::short_commit(env->commit) + " to " + env->name, env->url});
  }
  for (const auto& [commit, st] : wanted) {
    std::string key = env_name + "\n" + commit;
    if (m_posted[key] == st.key()) {
      continue;
    }
    IDP_TRY(client.create_status(gh, commit, st.state, st.url, st.description, m_options.context));
    m_posted[key] = st.key();
  }

  if (env->pr_number) {
    std::string cost;
    if (auto hours = m_store.list_usage(0, m_clock.now_ms() + 3'600'000, env->name)) {
      cost = pr_comment_cost_line(*hours, m_options.cost_rates, m_clock.now_ms());
    }
    std::string body = render_pr_comment(*env, cost);
    if (m_comments[env_name] != body) {
      IDP_TRY(upsert_comment(client, gh, *env->pr_number, body));
      m_comments[env_name] = body;
    }
  }
  return {};
}

Expected<void> GithubNotifier::upsert_comment(GithubClient& client, const std::string& repo, int pr,
                                              const std::string& body) {
  std::string key = repo + "#" + std::to_string(pr);
  std::string setting = "github_notifier.comment." + util::sha256_hex(key).substr(0, 16);
  auto known = m_comment_ids.find(key);
  if (known == m_comment_ids.end()) {
    if (auto saved = m_store.get_setting(setting); saved && *saved) {
      // An unreadable id is forgotten: a new comment is posted and its id stored.
      if (auto id = util::parse_int<long long>(**saved, 1)) {
        known = m_comment_ids.emplace(key, *id).first;
      }
    }
  }
  if (known != m_comment_ids.end()) {
    auto updated = client.update_comment(repo, known->second, body);
    if (updated || updated.error().code != ErrorCode::not_found) {
      return updated;
    }
    m_comment_ids.erase(known); // deleted by someone: find or create it again
  }
  IDP_TRY_ASSIGN(auto found, client.find_comment(repo, pr, k_comment_marker));
  int64_t id = 0;
  if (found) {
    id = *found;
    IDP_TRY(client.update_comment(repo, id, body));
  } else {
    IDP_TRY_ASSIGN(id, client.create_comment(repo, pr, body));
  }
  m_comment_ids[key] = id;
  (void)m_store.set_setting(setting, std::to_string(id));
  return {};
}

} // namespace idp::sources
