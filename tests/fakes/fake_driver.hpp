#pragma once
// FakeDriver: records every call and does what the test scripts (succeed, fail with a code,
// block until released, report a health). For unit tests of the engine only.

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "drivers/driver.hpp"

namespace idp::testing {

class FakeDriver final : public drivers::Driver {
public:
  explicit FakeDriver(std::string name = "local") : m_name(std::move(name)) {}

  struct Call {
    // start | plan | apply | apply-cancelled (it returned cancelled) | apply-failed (it reported
    // the revision failed) | observe | destroy | logs
    std::string op;
    std::string env;
    std::string commit;
    int64_t revision_id = 0;
    nlohmann::json template_values = nlohmann::json::object(); // apply: what the engine handed over
  };

  std::string_view name() const override { return m_name; }
  Expected<void> start(const std::vector<core::Environment>& live) override;
  void stop(bool keep_running) override;
  Expected<void> plan(const drivers::DeploySpec& spec) override;
  Expected<drivers::ApplyResult> apply(const drivers::DeploySpec& spec, drivers::Progress& progress) override;
  Expected<drivers::Observation> observe(const core::Environment& env) override;
  Expected<void> destroy(const core::Environment& env, drivers::Progress& progress) override;
  Expected<drivers::LogChunk> read_logs(const core::Environment& env, const drivers::LogQuery& q) override;
  // Records "sleep"; observe() then says Health::asleep until the next apply.
  Expected<void> sleep(const core::Environment& env, drivers::Progress& progress) override;
  // What set_last_request said (nullopt by default).
  Expected<std::optional<util::Millis>> last_request(const core::Environment& env) override;
  void set_last_request(const std::string& env, util::Millis at);

  // --- Scripting (thread-safe) ---
  // The next apply calls fail with these errors, in order (then succeed).
  void fail_next_applies(std::vector<Error> errors);
  // The next destroy calls fail with these errors, in order (then succeed).
  void fail_next_destroys(std::vector<Error> errors);
  // While held, apply() blocks (returning cancelled when progress is cancelled).
  void hold_applies(bool hold);
  // While held, a failing apply() blocks after reporting the revision failed (call
  // "apply-failed"), before it returns the error.
  void hold_failed_applies(bool hold);
  // Health observe() reports for an environment (default healthy). A successful apply
  // clears Health::stopped, as a real driver starts the stopped app.
  void set_health(const std::string& env, drivers::Health h, std::string detail = "");
  // plan() fails with this error for every spec (e.g. invalid_config).
  void fail_plans(std::optional<Error> err);

  // --- Inspection ---
  std::vector<Call> calls() const;
  size_t count(const std::string& op, const std::string& env = "") const;
  // Environments that currently "exist" (applied and not destroyed), with their commit.
  std::map<std::string, std::string> live() const;
  // Blocks until `op` was called `n` times for env (or timeout); returns whether it was.
  bool wait_for(const std::string& op, const std::string& env, size_t n, int timeout_ms) const;

private:
  std::string m_name;
  mutable std::mutex m_mu;
  mutable std::condition_variable m_cv;
  std::vector<Call> m_calls;
  std::deque<Error> m_apply_errors;
  std::deque<Error> m_destroy_errors;
  std::optional<Error> m_plan_error;
  bool m_hold = false;
  bool m_hold_failed = false;
  std::map<std::string, std::pair<drivers::Health, std::string>> m_health;
  std::map<std::string, std::string> m_live;
  std::map<std::string, util::Millis> m_last_request;
};

} // namespace idp::testing
