#pragma once
// Real webhook payloads for tests: the examples GitHub's Octokit team publishes in the npm
// package @octokit/webhooks-examples (installed by the CTest fixture "webhook_examples",
// tests/integration/gitops/setup_webhook_examples.sh). Tests only point them at the test
// repository (repository names/URLs, refs, commits, PR head); they never write payloads by hand.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace idp::testing {

// The installed package directory, or "" when it is missing.
std::string webhook_examples_dir();
// Why the examples are unavailable ("" when they are): npm missing (skip) or not installed (fail).
bool webhook_examples_missing_npm();

// Skips the test when npm is not installed; fails it when npm is there but the fixture did not
// install the package.
#define IDP_REQUIRE_WEBHOOK_EXAMPLES()                                                                                 \
  do {                                                                                                                 \
    if (::idp::testing::webhook_examples_dir().empty()) {                                                              \
      if (::idp::testing::webhook_examples_missing_npm()) {                                                            \
        GTEST_SKIP() << "npm is not installed, so @octokit/webhooks-examples is not available";                        \
      }                                                                                                                \
      FAIL() << "@octokit/webhooks-examples is not installed: run the tests through ctest (fixture "                   \
                "webhook_examples) or tests/integration/gitops/setup_webhook_examples.sh";                             \
    }                                                                                                                  \
  } while (false)

// The first example of `event` (api.github.com) for which `pred` holds (any when empty).
// Throws when there is none.
nlohmann::json webhook_example(const std::string& event, const std::function<bool(const nlohmann::json&)>& pred = {});

// Where the adapted payloads point.
struct TestRepo {
  std::string full_name = "idp-tests/app";
  std::string clone_url; // e.g. the local bare repository's path
};

// A real `repository` object renamed to `repo`.
void point_at(nlohmann::json& payload, const TestRepo& repo);

// push: the branch push example (refs/heads/…) adapted to `branch` before → after.
nlohmann::json push_payload(const TestRepo& repo, const std::string& branch, const std::string& before,
                            const std::string& after);
// push with deleted: true (the deletion example) for `branch` at `before`.
nlohmann::json push_deleted_payload(const TestRepo& repo, const std::string& branch, const std::string& before);
// A tag push example, unchanged but for the repository.
nlohmann::json tag_push_payload(const TestRepo& repo);
// pull_request `action` (opened, synchronize, reopened, closed) for PR `number` of `branch` at `sha`.
nlohmann::json pull_request_payload(const TestRepo& repo, const std::string& action, int number,
                                    const std::string& branch, const std::string& sha, bool merged = false);
// The pull_request example edited to come from a fork: head.repo is `fork_full_name`,
// pull_request.user and sender are `author`.
nlohmann::json fork_pull_request_payload(const TestRepo& repo, const std::string& action, int number,
                                         const std::string& fork_full_name, const std::string& branch,
                                         const std::string& sha, const std::string& author);
// The issue_comment "created" example on pull request `number` (issue.pull_request set: the
// published examples are all on plain issues) by `login` with `body`.
nlohmann::json pull_request_comment_payload(const TestRepo& repo, int number, const std::string& login,
                                            const std::string& body);
// delete of `branch` (ref_type "branch"), or of a tag when ref_type is "tag".
nlohmann::json delete_payload(const TestRepo& repo, const std::string& ref, const std::string& ref_type = "branch");
nlohmann::json ping_payload(const TestRepo& repo);

// The headers GitHub sends with a delivery: event, delivery id, signature of `body` under
// `secret` (no signature header when secret is empty), JSON content type.
std::vector<std::pair<std::string, std::string>> github_headers(const std::string& event, const std::string& delivery,
                                                                const std::string& body, const std::string& secret);

} // namespace idp::testing
