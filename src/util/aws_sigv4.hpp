#pragma once
// AWS Signature Version 4 (header form): canonical request, string to sign, signing key and
// Authorization header for a request, given credentials, region, service and a time.
// Pure functions of their inputs (the time is a parameter), so they are checked against
// AWS's published test suite (tests/data/sigv4/). No I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idp::util {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token; // "" for long-term keys
};

// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN) from the environment;
// nullopt when either key is unset or empty.
std::optional<AwsCredentials> aws_credentials_from_env();

struct SigV4Request {
  std::string method = "GET";
  std::string path = "/"; // as sent on the wire, e.g. "/", "/bucket/a%20b"; unencoded characters are allowed
  std::string query;      // raw query string without '?', as sent ("" = none)
  std::vector<std::pair<std::string, std::string>> headers; // must include Host; all of them are signed
  std::string body;
};

struct SigV4Params {
  std::string region;
  std::string service;
  int64_t unix_seconds = 0;        // the request time; ignored when the request has an X-Amz-Date header
  bool normalize_path = true;      // remove "." / ".." segments and empty segments (false for S3)
  bool double_encode = true;       // percent-encode the path as sent, '%' included (false for S3:
                                   // the path is decoded and encoded once)
  bool add_content_sha256 = false; // add and sign x-amz-content-sha256 (S3 requires it)
};

struct SigV4Signature {
  std::string amz_date; // "20150830T123600Z"
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers; // "host;x-amz-date"
  std::string signature;      // lowercase hex
  std::string authorization;  // the Authorization header value
  // Headers to send in addition to the request's own: X-Amz-Date (when absent),
  // X-Amz-Security-Token (with a session token), x-amz-content-sha256 (when asked),
  // and Authorization, in that order.
  std::vector<std::pair<std::string, std::string>> headers_to_add;
};

// Signs `req`. The session token (when set) is added as a signed X-Amz-Security-Token
// header unless the request already carries one. Thread-safe.
SigV4Signature sigv4_sign(const SigV4Request& req, const AwsCredentials& creds, const SigV4Params& params);

// --- Building blocks (exposed for tests) ---
// "YYYYMMDDTHHMMSSZ" for a unix time.
std::string sigv4_amz_date(int64_t unix_seconds);
// The canonical URI of a path (see SigV4Params::normalize_path / double_encode).
std::string sigv4_canonical_uri(std::string_view path, bool normalize, bool double_encode);
// Parameters decoded, re-encoded (RFC 3986 unreserved kept) and sorted by name, then value.
std::string sigv4_canonical_query(std::string_view query);
// Raw 32-byte key: HMAC chain over date (YYYYMMDD), region, service, "aws4_request".
std::string sigv4_signing_key(std::string_view secret, std::string_view date, std::string_view region,
                              std::string_view service);

} // namespace idp::util
