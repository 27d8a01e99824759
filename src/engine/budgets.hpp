#pragma once
// Budgets (issue 12, layers 2 and 3): server config `budgets:`, each a monthly limit on the
// cost (engine/cost.hpp) of the environments it matches (a team, a repository, an owner;
// none = every environment).
//
// Alerts: after each usage pass, every threshold of `alert_at` (percent of the limit) that
// this month's spend has reached is announced once a month, lowest first: recorded first
// (the store's setting "budget-alert/<name>/<YYYY-MM>/<percent>"), then an event
// `budget-alert` and a POST of Slack-compatible JSON ({"text": ...}) to each webhook. A webhook that
// fails is logged and named in the event; it is not tried again (the record says sent).
// With `github_comment`, a comment is also posted on the pull request of each live
// environment the budget matches (pr_environments; the Commenter skips repositories that
// GitHub is not told about), and an event `budget-alert` recorded on each such
// environment. The comments follow the threshold's record like the webhooks: a crash
// between the record and a post loses that comment, it never posts one twice; a comment
// that fails is named in the environment's event and not tried again.
//
// Guardrails, when a create matches an exhausted budget: `sleep` puts the budget's idle
// environments (ready, awake, no request for k_guardrail_idle) to sleep first, by
// "budget:<name>" with the reason; `destroy_oldest` destroys its least recently used
// environment (last request, else creation), with the reason in its events. Either way the
// create goes on.
// Guardrail `on_exhausted: block`: a create whose repository and owner a budget matches is
// refused while that budget's projected month (engine/cost.hpp) reaches its limit: error
// conflict of kind "budget_exhausted" (API 409 budget_exhausted) naming the budget, the
// spend and the limit, then the projection (so that a GitHub commit status, 140 characters,
// keeps the first three). Creates by the API and by pushes and pull requests alike
// (Controller::sync_branch; sources/github_notifier.hpp tells the pull request).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/environment.hpp"
#include "engine/cost.hpp"
#include "store/state_store.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::engine {

struct Budget {
  std::string name;
  std::string team;  // match: the owner is a member of this team ("" = any)
  std::string repo;  // match: the repository, a URL/path or owner/name ("" = any)
  std::string owner; // match: this owner ("" = any)
  double monthly = 0;
  std::vector<int> alert_at = {50, 80, 100};
  std::vector<std::string> webhooks;
  bool github_comment = false;       // notify: [{github_comment: true}]: comment on the matching pull requests
  std::string on_exhausted = "none"; // none | block | sleep | destroy_oldest
};

struct BudgetState {
  const Budget* budget = nullptr;
  double spent = 0;     // this month so far
  double projected = 0; // this month, projected (engine/cost.hpp)
};

class Budgets {
public:
  // Sends a webhook's JSON body; error when it was not accepted (a 2xx).
  using Poster = std::function<Expected<void>(const std::string& url, const std::string& json_body)>;
  // Posts a new comment (Markdown) on the pull request of `env` (its pr_number is set):
  // true when posted, false when GitHub is not told about its repository (nothing posted).
  using Commenter = std::function<Expected<bool>(const core::Environment& env, const std::string& body)>;

  Budgets(std::vector<Budget> budgets, store::StateStore& store, CostRates rates,
          std::map<std::string, std::string> team_of, util::Clock& clock, Poster poster);

  bool empty() const { return m_budgets.empty(); }
  const std::vector<Budget>& all() const { return m_budgets; }
  bool matches(const Budget& b, const std::string& repo, const std::string& owner) const;
  // Where a github_comment alert of `b` goes: the environments of `envs` that track a pull
  // request, are not being destroyed, and that `b` matches (by repository and owner).
  std::vector<core::Environment> pr_environments(const Budget& b, const std::vector<core::Environment>& envs) const;
  // What the guardrails sleep and destroy_oldest act through (the daemon wires the engine's
  // controller and the drivers' last_request). Unset parts: that guardrail does nothing.
  struct Guardrails {
    // When the environment was last requested (nullopt: never, or the runtime cannot tell).
    std::function<std::optional<util::Millis>(const core::Environment&)> last_request;
    std::function<Expected<void>(const std::string& env, const std::string& by, const std::string& reason)> sleep;
    std::function<Expected<void>(const std::string& env, const std::string& reason)> destroy;
  };
  void set_guardrails(Guardrails g) { m_guardrails = std::move(g); }
  // An environment counts as idle for the guardrail sleep after this long without a request.
  static constexpr util::Millis k_guardrail_idle = 10 * 60'000;
  // The github_comment alerts' poster (unset: none is posted). Before check_alerts runs.
  void set_commenter(Commenter commenter) { m_commenter = std::move(commenter); }
  // Each budget with what its environments cost this month and are projected to.
  Expected<std::vector<BudgetState>> states();
  // The guardrail before a create: conflict (kind budget_exhausted) when a blocking budget
  // matching (repo, owner) is projected to reach its limit this month.
  Expected<void> admit(const std::string& repo, const std::string& owner);
  // Announces each threshold reached this month and not yet announced; returns what was
  // announced ("<budget> <percent>%").
  Expected<std::vector<std::string>> check_alerts();

private:
  std::vector<Budget> m_budgets;
  store::StateStore& m_store;
  CostRates m_rates;
  std::map<std::string, std::string> m_team_of;
  util::Clock& m_clock;
  Poster m_poster;
  Commenter m_commenter;
  Guardrails m_guardrails;

  // The guardrails sleep and destroy_oldest of exhausted budget `b`, before a create.
  void act_on_exhausted(const Budget& b, const std::string& why);

  void comment_on_prs(const Budget& b, const std::string& text, util::Millis now);
};

// The Markdown of a github_comment alert: a hidden marker, the budget, the threshold and the
// spend of `text` (the webhook's), and which environment of the pull request counts toward it.
std::string budget_comment_body(const std::string& text, const core::Environment& env);

inline constexpr const char* k_budget_comment_marker = "<!-- mini-idp:budget-alert -->";

} // namespace idp::engine
