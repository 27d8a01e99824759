#pragma once
// WebhookPayload: the few fields of a GitHub webhook payload that the event mapping and the
// repository lookup read, projected out of the JSON once. A push payload is ~7 KB of JSON of
// which a dozen strings matter; parsing it into a full nlohmann::json tree was most of the
// cost of a delivery, so the receiver parses it with simdjson and keeps only these.
//
// One meaning for every field whichever parser filled it: a string field is "" when the key
// is absent or its value is not a string; a flag is true only for JSON `true`; when a key
// appears twice in one object, the last one counts (as in nlohmann::json).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::sources {

// The payload's `repository` object: what find_watched_repo compares.
struct PayloadRepository {
  bool is_object = false; // false: absent or not an object (then every field is "")
  std::string full_name;
  std::string clone_url;
  std::string html_url;
  std::string ssh_url;
  std::string git_url;
  std::string url;
  std::string svn_url;

  friend bool operator==(const PayloadRepository&, const PayloadRepository&) = default;
};

// An integer field: absent (or not an integer), or its value. Integers above INT64_MAX
// read as -1 (they are as invalid as any other non-positive pull request number).
using PayloadInt = std::optional<int64_t>;

struct WebhookPayload {
  PayloadRepository repository;
  std::string ref;      // push: "refs/heads/…"; delete: the bare ref name
  std::string after;    // push: the new head sha
  bool deleted = false; // push: the branch was deleted
  std::string action;   // pull_request: opened | reopened | synchronize | closed | …
  std::string ref_type; // delete: branch | tag
  PayloadInt number;    // pull_request: the top-level "number"
  std::string sender_login;
  std::string pusher_name;

  bool has_pull_request = false; // "pull_request" is an object
  PayloadInt pr_number;          // pull_request.number
  bool pr_merged = false;
  bool has_head = false; // pull_request.head is an object
  std::string head_ref;
  std::string head_sha;
  std::string head_repo_full_name; // pull_request.head.repo.full_name
  std::string pr_author;           // pull_request.user.login

  // issue_comment events: a comment on an issue or a pull request.
  PayloadInt issue_number;            // issue.number
  bool issue_is_pull_request = false; // issue.pull_request is an object (the issue is a pull request)
  std::string comment_body;           // comment.body
  std::string comment_author;         // comment.user.login

  friend bool operator==(const WebhookPayload&, const WebhookPayload&) = default;
};

// Parses a webhook body (JSON text) and projects it. Accepts exactly the documents
// nlohmann::json::parse accepts whose top level is an object: simdjson parses, and when it
// refuses a document (integers beyond 64 bits, nesting deeper than 1024, a leading UTF-8
// BOM) nlohmann decides, so the accepted set is the same as before. Invalid JSON, invalid
// UTF-8 inside the text or a top level that is not an object: invalid_argument. Never
// throws. Thread-safe (one reusable parser per thread for bodies up to 256 KiB).
Expected<WebhookPayload> parse_webhook_payload(std::string_view text);

// The same projection from an already parsed document (tests, and the fallback above).
// `payload` that is not an object gives an empty WebhookPayload.
WebhookPayload project_webhook_payload(const nlohmann::json& payload);

} // namespace idp::sources
