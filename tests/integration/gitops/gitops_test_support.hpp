#pragma once
// A GitOps rig for integration tests: a local "remote" (bare repository), a working clone
// with the api-service example, and a real `idp serve` watching the remote through a
// server config (polling and/or signed webhooks).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "unit/sources/webhook_examples.hpp"

namespace idp::testing {

// GitHub's "before" of a push that creates a branch (and "after" of one that deletes it).
inline const std::string k_zero_commit(40, '0');

struct GitopsOptions {
  bool poll = false;
  std::string poll_interval = "200ms";
  bool webhooks = true;
  std::string github_api_url; // "" = none configured
  std::string github_token;   // "" = no notifications
  std::vector<std::string> extra_flags;
  std::string log_level = "debug"; // the daemon's IDP_LOG_LEVEL
  std::string server_config_extra; // YAML appended to the server config (top-level keys)
  std::string repository_extra;    // YAML appended to the repository's entry ("    key: value\n" lines)
};

class GitopsRig {
public:
  GitopsRig(const std::string& prefix, GitopsOptions options);
  ~GitopsRig();

  void start();
  void restart();

  // Sets APP_VERSION in .idp/config.yml (the app reports it on GET /), commits, pushes
  // `branch` to the remote; returns the commit.
  std::string commit_version(const std::string& branch, const std::string& version);
  // Commits `content` as `rel` on `branch` (created from main if new) and pushes; returns the commit.
  std::string commit_file(const std::string& branch, const std::string& rel, const std::string& content);
  void delete_branch(const std::string& branch);

  // POST /hooks/github signed with `secret` (the configured one by default; "" = unsigned).
  std::pair<long, nlohmann::json> webhook(const std::string& event, const nlohmann::json& payload,
                                          std::optional<std::string> secret = std::nullopt,
                                          const std::string& delivery = "");
  // POST /hooks/github with `body` as it is (any bytes), signed with the configured secret.
  std::pair<long, nlohmann::json> webhook_raw(const std::string& event, const std::string& body);

  // The environment tracking `branch` (live or destroyed), or null.
  nlohmann::json env_of(const std::string& branch, bool include_destroyed = false) const;
  // Waits until an environment tracks `branch`; returns its name ("" on timeout).
  std::string wait_env(const std::string& branch, int timeout_ms) const;
  // Waits until `name` is ready with `commit` deployed.
  bool wait_ready_at(const std::string& name, const std::string& commit, int timeout_ms) const;
  // Waits until the revision of `commit` is failed and `name` is ready again (the engine
  // records the revision, then the environment's phase); returns that revision, or null on
  // timeout.
  nlohmann::json wait_failed_and_ready(const std::string& name, const std::string& commit, int timeout_ms) const;
  nlohmann::json events(const std::string& env) const;
  nlohmann::json all_events() const;
  nlohmann::json revisions(const std::string& env) const;
  // GET / through the router: the app's JSON, or null.
  nlohmann::json app_root(const std::string& env) const;
  // Processes of `env` (by IDP_ENVIRONMENT) among the home's.
  std::vector<pid_t> env_processes(const std::string& env) const;
  // Path of the lock file guarding the daemon's git mirror of the remote: holding it
  // stalls every fetch of the remote (a deterministic "git is slow").
  std::string mirror_lock_path() const;

  TestRepo payload_repo() const { return TestRepo{"idp-tests/app", remote_path}; }

  TempDir tmp;
  std::string remote_path;
  std::unique_ptr<BareRepo> remote;
  std::unique_ptr<GitRepo> work;
  std::string secret = "it's a \"webhook\" secret";
  GitopsOptions options;
  std::unique_ptr<DaemonProcess> daemon;
  std::string last_pushed;

private:
  void write_config();
  std::pair<long, nlohmann::json> post_hook(const std::string& event, const std::string& body,
                                            const std::string& with_secret, const std::string& delivery);
};

// A DNS label of at most 63 characters: [a-z0-9] with inner '-'.
bool is_dns_label(const std::string& s);
// Every path under `dir` whose last component is `name`.
std::vector<std::string> find_named(const std::string& dir, const std::string& name);
std::string short_sha(const std::string& sha);

} // namespace idp::testing
