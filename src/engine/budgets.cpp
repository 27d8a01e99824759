#include "engine/budgets.hpp"

#include <algorithm>
#include <cstdio>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace idp::engine {

namespace {

std::string money(double v, const std::string& currency) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f %s", v, currency.c_str());
  return buf;
}

// "acme/shop" matches https://github.com/acme/shop(.git), git@github.com:acme/shop.git and
// itself; anything else matches only exactly.
bool repo_matches(const std::string& repo, const std::string& pattern) {
  if (repo == pattern) {
    return true;
  }
  std::string r = util::ends_with(repo, ".git") ? repo.substr(0, repo.size() - 4) : repo;
  return util::ends_with(r, "/" + pattern) || util::ends_with(r, ":" + pattern);
}

} // namespace

Budgets::Budgets(std::vector<Budget> budgets, store::StateStore& store, CostRates rates,
                 std::map<std::string, std::string> team_of, util::Clock& clock, Poster poster)
    : m_budgets(std::move(budgets)), m_store(store), m_rates(std::move(rates)), m_team_of(std::move(team_of)),
      m_clock(clock), m_poster(std::move(poster)) {}

std::string budget_comment_body(const std::string& text, const core::Environment& env) {
  return std::string(k_budget_comment_marker) + "\n\U0001F4B8 **" + text + ".**\n\nThis pull request's environment `" +
         env.name + "` counts toward this budget.\n";
}

bool Budgets::matches(const Budget& b, const std::string& repo, const std::string& owner) const {
  if (!b.owner.empty() && owner != b.owner) {
    return false;
  }
  if (!b.team.empty()) {
    auto it = m_team_of.find(owner);
    if (it == m_team_of.end() || it->second != b.team) {
      return false;
    }
  }
  return b.repo.empty() || repo_matches(repo, b.repo);
}

std::vector<core::Environment> Budgets::pr_environments(const Budget& b,
                                                        const std::vector<core::Environment>& envs) const {
  std::vector<core::Environment> out;
  for (const auto& e : envs) {
    bool live =
        e.phase != core::Phase::destroyed && e.phase != core::Phase::destroying && e.desired == core::Desired::present;
    if (live && e.pr_number && *e.pr_number > 0 && matches(b, e.repo, e.owner)) {
      out.push_back(e);
    }
  }
  return out;
}

void Budgets::comment_on_prs(const Budget& b, const std::string& text, util::Millis now) {
  auto envs = m_store.list_environments(false);
  if (!envs) {
    spdlog::warn("budget {}: cannot list the environments for its pull request comments: {}", b.name,
                 envs.error().message);
    return;
  }
  for (const auto& env : pr_environments(b, *envs)) {
    std::string pr = "pull request #" + std::to_string(*env.pr_number);
    auto posted = m_commenter(env, budget_comment_body(text, env));
    if (posted && !*posted) {
      continue; // GitHub is not told about its repository
    }
    core::Event ev;
    ev.env = env.name;
    ev.at = now;
    ev.actor = "system:budgets";
    ev.action = "budget-alert";
    if (posted) {
      ev.reason = text + "; commented on " + pr;
    } else {
      spdlog::warn("budget {}: the comment on {} of {} failed: {}", b.name, pr, env.name, posted.error().message);
      ev.reason = text + "; the comment on " + pr + " failed: " + posted.error().message;
    }
    if (auto r = m_store.append_event(ev); !r) {
      spdlog::error("budget {}: cannot record its alert on {}: {}", b.name, env.name, r.error().message);
    }
  }
}

Expected<std::vector<BudgetState>> Budgets::states() {
  std::vector<BudgetState> out;
  if (m_budgets.empty()) {
    return out;
  }
  util::Millis now = m_clock.now_ms();
  IDP_TRY_ASSIGN(auto hours, m_store.list_usage(month_start_of(now), now + 3'600'000, ""));
  // One line per environment (its last attribution), then summed per budget.
  auto lines = summarize_cost(hours, m_rates, now, "", nullptr);
  for (const auto& b : m_budgets) {
    BudgetState s;
    s.budget = &b;
    for (const auto& l : lines) {
      if (matches(b, l.repo, l.owner)) {
        s.spent += l.to_date.total();
        s.projected += l.projected_month;
      }
    }
    out.push_back(s);
  }
  return out;
}

void Budgets::act_on_exhausted(const Budget& b, const std::string& why) {
  auto envs = m_store.list_environments(false);
  if (!envs) {
    spdlog::warn("budget {}: cannot list its environments for on_exhausted {}: {}", b.name, b.on_exhausted,
                 envs.error().message);
    return;
  }
  util::Millis now = m_clock.now_ms();
  // Each environment the budget matches, with when it was last used.
  std::vector<std::pair<util::Millis, const core::Environment*>> mine;
  for (const auto& e : *envs) {
    bool live =
        e.desired == core::Desired::present && e.phase != core::Phase::destroyed && e.phase != core::Phase::destroying;
    if (!live || !matches(b, e.repo, e.owner)) {
      continue;
    }
    util::Millis used = e.created_at;
    if (m_guardrails.last_request) {
      if (auto last = m_guardrails.last_request(e)) {
        used = std::max(used, *last);
      }
    }
    mine.emplace_back(used, &e);
  }
  std::sort(mine.begin(), mine.end(), [](const auto& a, const auto& b2) {
    return a.first != b2.first ? a.first < b2.first : a.second->name < b2.second->name;
  });
  if (b.on_exhausted == "destroy_oldest") {
    if (mine.empty() || !m_guardrails.destroy) {
      return;
    }
    const core::Environment& oldest = *mine.front().second;
    std::string reason = why + "; the least recently used of its environments is destroyed to make room "
                               "(on_exhausted: destroy_oldest)";
    if (auto r = m_guardrails.destroy(oldest.name, reason); !r) {
      spdlog::warn("budget {}: cannot destroy {}: {}", b.name, oldest.name, r.error().message);
    } else {
      spdlog::info("budget {}: destroying {}: {}", b.name, oldest.name, reason);
    }
    return;
  }
  if (b.on_exhausted == "sleep" && m_guardrails.sleep) {
    for (const auto& [used, e] : mine) {
      if (e->phase != core::Phase::ready || e->sleep || now - used < k_guardrail_idle) {
        continue;
      }
      std::string reason = why + "; idle for " + util::format_duration(now - used) + " (on_exhausted: sleep)";
      if (auto r = m_guardrails.sleep(e->name, "budget:" + b.name, reason); !r) {
        spdlog::info("budget {}: {} did not go to sleep: {}", b.name, e->name, r.error().message);
      }
    }
  }
}

Expected<void> Budgets::admit(const std::string& repo, const std::string& owner) {
  bool any = false;
  for (const auto& b : m_budgets) {
    any = any || (b.on_exhausted != "none" && matches(b, repo, owner));
  }
  if (!any) {
    return {};
  }
  IDP_TRY_ASSIGN(auto states, this->states());
  for (const auto& s : states) {
    const Budget& b = *s.budget;
    if (b.on_exhausted == "none" || !matches(b, repo, owner)) {
      continue;
    }
    if ((s.projected >= b.monthly || s.spent >= b.monthly) && b.on_exhausted != "block") {
      act_on_exhausted(b, "budget " + util::quote(b.name) + " is exhausted: " + money(s.spent, m_rates.currency) +
                              " spent of " + money(b.monthly, m_rates.currency) + " this month, " +
                              money(s.projected, m_rates.currency) + " projected");
      continue;
    }
    if (s.projected >= b.monthly || s.spent >= b.monthly) {
      // Budget, spend and limit first: a GitHub commit status keeps 140 characters.
      Error e(ErrorCode::conflict,
              "budget " + util::quote(b.name) + " is exhausted: " + money(s.spent, m_rates.currency) + " spent of " +
                  money(b.monthly, m_rates.currency) + " this month, " + money(s.projected, m_rates.currency) +
                  " projected; no new environment until next month, a higher limit, or "
                  "fewer running");
      e.kind = "budget_exhausted";
      return Unexpected(e);
    }
  }
  return {};
}

Expected<std::vector<std::string>> Budgets::check_alerts() {
  std::vector<std::string> sent;
  IDP_TRY_ASSIGN(auto states, this->states());
  util::Millis now = m_clock.now_ms();
  std::string month = util::format_iso8601(now).substr(0, 7);
  for (const auto& s : states) {
    const Budget& b = *s.budget;
    if (b.monthly <= 0) {
      continue;
    }
    double percent = 100.0 * s.spent / b.monthly;
    std::vector<int> thresholds = b.alert_at;
    std::sort(thresholds.begin(), thresholds.end());
    for (int t : thresholds) {
      if (percent < t) {
        break;
      }
      std::string key = "budget-alert/" + b.name + "/" + month + "/" + std::to_string(t);
      IDP_TRY_ASSIGN(auto done, m_store.get_setting(key));
      if (done) {
        continue;
      }
      // Recorded before it is sent: a crash between the two loses an alert, never repeats one.
      IDP_TRY(m_store.set_setting(key, util::format_iso8601(now)));
      char pct[32];
      std::snprintf(pct, sizeof(pct), "%.0f%%", percent);
      std::string text = "Budget " + util::quote(b.name) + " reached " + std::to_string(t) + "% in " + month + ": " +
                         money(s.spent, m_rates.currency) + " spent of " + money(b.monthly, m_rates.currency) + " (" +
                         pct + "), about " + money(s.projected, m_rates.currency) + " projected for the month";
      nlohmann::json body = {
          {"text", text},     {"budget", b.name},   {"month", month},           {"threshold", t},
          {"spent", s.spent}, {"limit", b.monthly}, {"projected", s.projected}, {"currency", m_rates.currency}};
      std::vector<std::string> failed;
      for (const auto& url : b.webhooks) {
        if (auto r = m_poster(url, body.dump()); !r) {
          spdlog::warn("budget {}: the alert webhook failed: {}", b.name, r.error().message);
          failed.push_back(r.error().message);
        }
      }
      core::Event ev;
      ev.at = now;
      ev.actor = "system:budgets";
      ev.action = "budget-alert";
      ev.reason = text + (failed.empty() ? ""
                                         : "; " + std::to_string(failed.size()) +
                                               " webhook(s) failed: " + util::join(failed, "; "));
      if (auto r = m_store.append_event(ev); !r) {
        spdlog::error("budget {}: cannot record its alert: {}", b.name, r.error().message);
      }
      if (b.github_comment && m_commenter) {
        comment_on_prs(b, text, now);
      }
      sent.push_back(b.name + " " + std::to_string(t) + "%");
    }
  }
  return sent;
}

} // namespace idp::engine
