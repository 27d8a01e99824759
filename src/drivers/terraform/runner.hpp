#pragma once
// Running terraform (or tofu) for one environment: its allowlisted environment, argv with
// -chdir, output streamed to the environment log, graceful cancellation, and the error
// kind a failed command means (see terraform_driver.hpp). Knows nothing of templates.
//
// Thread-safety: const; runs for different environments may overlap.

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/common/log_files.hpp"
#include "drivers/terraform/terraform_options.hpp"
#include "util/expected.hpp"

namespace idp::drivers::terraform {

// The environment terraform and its providers run with: from `daemon_env` only the
// allowlist (AWS_*, proxies, PATH, TMPDIR, locale, TLS roots, TF_CLI_CONFIG_FILE, ...) and
// `extra_allowed`; HOME is `work_dir` (the daemon's ~/.aws files are passed by path).
std::map<std::string, std::string> terraform_environment(const std::map<std::string, std::string>& daemon_env,
                                                         const std::vector<std::string>& extra_allowed,
                                                         const std::string& work_dir);

// The lock ID in terraform's "Error acquiring the state lock" output ("Lock Info: ID: …");
// "" when there is none. The last one wins.
std::string parse_lock_id(std::string_view output);

// How one terraform command ended.
struct RunOutcome {
  int exit_code = -1;
  bool cancelled = false;
  bool timed_out = false;
  std::string output; // stdout + stderr, in order of arrival
};

class Runner {
public:
  // `opts` must outlive the runner.
  explicit Runner(const TerraformOptions& opts) : m_opts(opts) {}

  // Runs `terraform -chdir=<root> <args>` with HOME and TF_DATA_DIR in `work_dir`,
  // streaming lines to `log` (may be null). `cancel` (may be null) stops it: SIGTERM to
  // terraform, then after stop_grace_ms TERM/KILL of its group. A non-zero exit is an
  // outcome, not an error; permanent when the binary is missing.
  Expected<RunOutcome> run(const std::string& work_dir, const std::string& root, const std::vector<std::string>& args,
                           common::LogWriter* log, const std::atomic<bool>* cancel) const;
  // The error of a failed command `what` ("apply"), with its kind (conflict for a held
  // state lock, invalid_config, transient, timeout, cancelled, else permanent).
  Error command_error(const std::string& what, const RunOutcome& r) const;
  // `terraform output -json`, flattened to name → value; sensitive values are "(sensitive)".
  Expected<nlohmann::json> read_outputs(const std::string& work_dir, const std::string& root,
                                        common::LogWriter* log) const;
  // Number of resources in the state; nullopt when it cannot be read (never initialised).
  std::optional<size_t> state_resource_count(const std::string& work_dir, const std::string& root) const;

private:
  const TerraformOptions& m_opts;
};

} // namespace idp::drivers::terraform
