#pragma once
// A small blocking HTTP client over libcurl. Thread-safe: each call uses its own handle.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

namespace idp::util {

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int64_t timeout_ms = 10000;
  int64_t connect_timeout_ms = 3000;
  std::string unix_socket; // talk HTTP over this unix socket instead of TCP
  // Streaming: called with each chunk of the body as it arrives; return false to stop.
  std::function<bool(std::string_view chunk)> on_data;
  // Without on_data: the most body bytes kept (0 = no limit). The transfer stops there and
  // the response, cut, has `truncated` set: a peer sending an endless body costs no memory.
  size_t max_body = 0;
  // AWS SigV4 via libcurl: "aws:amz:REGION:SERVICE" and "ACCESS:SECRET" (see CURLOPT_AWS_SIGV4).
  std::string aws_sigv4;
  std::string userpwd;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers; // lowercased names
  std::string body;
  bool truncated = false; // the body was cut at HttpRequest::max_body
};

// Transport failures (refused, timeout, DNS) are errors (transient / timeout);
// any HTTP status, including 4xx/5xx, is a response.
Expected<HttpResponse> http_request(const HttpRequest& req);

// Percent-encoding for query strings and paths (RFC 3986 unreserved kept).
std::string url_encode(std::string_view s);
// Percent-decoding; `plus_is_space` turns '+' into ' ' as HTML forms do.
std::string url_decode(std::string_view s, bool plus_is_space = true);

} // namespace idp::util
