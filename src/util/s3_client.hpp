#pragma once
// A minimal S3 client (issue 12, the chargeback report's upload and monthly export):
// PutObject and GetObject on path-style URLs (`<endpoint>/<bucket>/<key>`), signed with
// SigV4 (util/aws_sigv4.hpp). Request building is pure (the time is a parameter), so it is
// unit-tested without a network; s3_put_object / s3_get_object send over util/http_client.
//
// Where it talks, as the AWS SDKs do: credentials from AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), the region from AWS_REGION or
// AWS_DEFAULT_REGION (us-east-1), the endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL
// (default https://s3.<region>.amazonaws.com). No message ever holds the secret key, the
// session token or a signature. Thread-safe (no shared state).

#include <cstdint>
#include <string>
#include <string_view>

#include "util/aws_sigv4.hpp"
#include "util/expected.hpp"
#include "util/http_client.hpp"

namespace idp::util {

struct S3Location {
  std::string bucket;
  std::string key; // the object key as the user wrote it (not encoded); "" = none
  std::string url() const { return "s3://" + bucket + "/" + key; }
};

// "s3://bucket/key": invalid_argument saying what was expected when it is not an s3:// URL,
// has no bucket or an invalid bucket name, or (with `key_required`) no key. The key is kept
// as written, '/' included ("s3://b/reports/" has key "reports/").
Expected<S3Location> parse_s3_url(std::string_view url, bool key_required = true);

struct S3Config {
  AwsCredentials credentials;
  std::string region = "us-east-1";
  std::string endpoint; // scheme://host[:port], no trailing slash
};

// The S3 config of this process's environment (see above). unauthorized when there are no
// credentials; invalid_config when the endpoint variable is not an http(s) URL.
Expected<S3Config> s3_config_from_env();

// The path of an object, path-style: "/" + bucket + "/" + the key URI-encoded as S3 wants
// (every byte but A-Z a-z 0-9 - _ . ~ as %XX, UTF-8 byte by byte; '/' kept).
std::string s3_object_path(const S3Location& loc);

// A signed request on an object (an empty key: on the bucket) at `unix_seconds`: the URL,
// the body, Content-Type (when given), x-amz-content-sha256 (hex SHA-256 of the body),
// X-Amz-Date, X-Amz-Security-Token (with a session token) and Authorization.
HttpRequest s3_signed_request(const S3Config& cfg, const std::string& method, const S3Location& loc,
                              const std::string& body, const std::string& content_type, int64_t unix_seconds);

// The error of a non-2xx S3 answer: "<operation> s3://b/k: HTTP 403 InvalidAccessKeyId: <Message>"
// (the Code and Message of the XML error body, when it has them). Kind by status: 401/403
// unauthorized, 404 not_found, 429/5xx transient, else permanent.
Error s3_error(const std::string& operation, const S3Location& loc, long status, const std::string& body);

// PutObject: uploads `body`. Errors: transport (transient/timeout, naming the endpoint) or s3_error.
Expected<void> s3_put_object(const S3Config& cfg, const S3Location& loc, const std::string& body,
                             const std::string& content_type);
// GetObject: the object's bytes. Errors as s3_put_object (a missing object is not_found).
Expected<std::string> s3_get_object(const S3Config& cfg, const S3Location& loc);

} // namespace idp::util
