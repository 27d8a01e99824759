#include "util/s3_client.hpp"

#include <cstdlib>
#include <regex>

#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::util {

namespace {

constexpr int64_t k_s3_timeout_ms = 30'000;
constexpr size_t k_s3_max_error_body = 64 * 1024;

std::string s3_env_value(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// The text of the first <tag>…</tag> of an S3 XML error body, entities decoded.
std::string s3_xml_text(const std::string& xml, const std::string& tag) {
  std::string open = "<" + tag + ">";
  auto start = xml.find(open);
  if (start == std::string::npos) {
    return "";
  }
  start += open.size();
  auto end = xml.find("</" + tag + ">", start);
  if (end == std::string::npos) {
    return "";
  }
  std::string s = xml.substr(start, std::min<size_t>(end - start, 300));
  return xml_unescape(std::move(s));
}

} // namespace

Expected<S3Location> parse_s3_url(std::string_view url, bool key_required) {
  std::string example = key_required ? "s3://bucket/path/report.csv" : "s3://bucket/prefix/";
  if (!starts_with(url, "s3://")) {
    return make_error(ErrorCode::invalid_argument,
                      "expected an S3 URL like " + example + ", got " + quote(std::string(url)));
  }
  std::string_view rest = url.substr(5);
  auto slash = rest.find('/');
  S3Location loc;
  loc.bucket = std::string(rest.substr(0, slash));
  loc.key = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  if (loc.bucket.empty()) {
    return make_error(ErrorCode::invalid_argument,
                      "no bucket in " + quote(std::string(url)) + ": expected an S3 URL like " + example);
  }
  // S3's bucket naming rules: 3 to 63 lowercase letters, digits, '.' and '-'.
  static const std::regex k_bucket("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$");
  if (!std::regex_match(loc.bucket, k_bucket)) {
    return make_error(ErrorCode::invalid_argument,
                      "invalid bucket name " + quote(loc.bucket) +
                          ": expected 3 to 63 lowercase letters, digits, '.' or '-' (S3's rules)");
  }
  if (key_required && (loc.key.empty() || loc.key.back() == '/')) {
    return make_error(ErrorCode::invalid_argument,
                      "no object key in " + quote(std::string(url)) + ": expected an S3 URL like " + example);
  }
  if (loc.key.size() > 1024) {
    return make_error(ErrorCode::invalid_argument, "the object key is longer than S3's 1024 bytes");
  }
  return loc;
}

Expected<S3Config> s3_config_from_env() {
  S3Config cfg;
  auto creds = aws_credentials_from_env();
  if (!creds) {
    return make_error(ErrorCode::unauthorized,
                      "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN "
                      "for temporary ones)");
  }
  cfg.credentials = *creds;
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    if (std::string r = s3_env_value(name); !r.empty()) {
      cfg.region = r;
      break;
    }
  }
  for (const char* name : {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
    std::string e = s3_env_value(name);
    if (e.empty()) {
      continue;
    }
    while (!e.empty() && e.back() == '/') {
      e.pop_back();
    }
    auto scheme = e.find("://");
    if ((!starts_with(e, "http://") && !starts_with(e, "https://")) || e.find('/', scheme + 3) != std::string::npos ||
        scheme + 3 >= e.size()) {
      return make_error(ErrorCode::invalid_config,
                        std::string(name) + ": expected a URL like http://localhost:4566 (no path), got " + quote(e));
    }
    cfg.endpoint = e;
    break;
  }
  if (cfg.endpoint.empty()) {
    cfg.endpoint = "https://s3." + cfg.region + ".amazonaws.com";
  }
  return cfg;
}

std::string s3_object_path(const S3Location& loc) {
  std::string path = "/" + url_encode(loc.bucket);
  if (loc.key.empty()) {
    return path;
  }
  std::vector<std::string> segments;
  for (const auto& seg : split(loc.key, '/')) {
    segments.push_back(url_encode(seg));
  }
  return path + "/" + join(segments, "/");
}

HttpRequest s3_signed_request(const S3Config& cfg, const std::string& method, const S3Location& loc,
                              const std::string& body, const std::string& content_type, int64_t unix_seconds) {
  SigV4Request sreq;
  sreq.method = method;
  sreq.path = s3_object_path(loc);
  sreq.body = body;
  sreq.headers = {{"Host", url_host_port(cfg.endpoint)}};
  if (!content_type.empty()) {
    sreq.headers.emplace_back("Content-Type", content_type);
  }
  SigV4Params params;
  params.region = cfg.region;
  params.service = "s3";
  params.unix_seconds = unix_seconds;
  params.normalize_path = false; // S3 keys may hold "." and "//"
  params.double_encode = false;
  params.add_content_sha256 = true;
  SigV4Signature sig = sigv4_sign(sreq, cfg.credentials, params);

  HttpRequest req;
  req.method = method;
  req.url = cfg.endpoint + sreq.path;
  req.body = body;
  req.timeout_ms = k_s3_timeout_ms;
  req.connect_timeout_ms = 5'000;
  req.max_body = k_s3_max_error_body;
  for (const auto& h : sreq.headers) {
    if (h.first != "Host") { // libcurl sends Host from the URL: the same value
      req.headers.push_back(h);
    }
  }
  for (const auto& h : sig.headers_to_add) {
    req.headers.push_back(h);
  }
  return req;
}

Error s3_error(const std::string& operation, const S3Location& loc, long status, const std::string& body) {
  std::string code = s3_xml_text(body, "Code");
  std::string message = s3_xml_text(body, "Message");
  std::string text = operation + " " + loc.url() + ": HTTP " + std::to_string(status) +
                     (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message);
  ErrorCode ec = ErrorCode::permanent;
  if (status == 401 || status == 403) {
    ec = ErrorCode::unauthorized;
  } else if (status == 404) {
    ec = ErrorCode::not_found;
  } else if (status == 429 || status >= 500) {
    ec = ErrorCode::transient;
  }
  return Error(ec, text);
}

namespace {

Expected<HttpResponse> s3_send(const S3Config& cfg, const std::string& operation, const std::string& method,
                               const S3Location& loc, const std::string& body, const std::string& content_type,
                               size_t max_body) {
  HttpRequest req = s3_signed_request(cfg, method, loc, body, content_type, SystemClock().now_ms() / 1000);
  req.max_body = max_body;
  auto resp = http_request(req);
  if (!resp) {
    // The transport's words name the method and URL, never the request's headers.
    return make_error(resp.error().code, operation + " " + loc.url() + ": " + resp.error().message);
  }
  if (resp->status < 200 || resp->status >= 300) {
    return Unexpected(s3_error(operation, loc, resp->status, resp->body));
  }
  return resp;
}

} // namespace

Expected<void> s3_put_object(const S3Config& cfg, const S3Location& loc, const std::string& body,
                             const std::string& content_type) {
  IDP_TRY(s3_send(cfg, "PutObject", "PUT", loc, body, content_type, k_s3_max_error_body));
  return {};
}

Expected<std::string> s3_get_object(const S3Config& cfg, const S3Location& loc) {
  IDP_TRY_ASSIGN(auto resp, s3_send(cfg, "GetObject", "GET", loc, "", "", 0));
  return std::move(resp.body);
}

} // namespace idp::util
