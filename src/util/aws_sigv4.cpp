#include "util/aws_sigv4.hpp"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <map>

#include "util/hash.hpp"
#include "util/http_client.hpp" // url_encode
#include "util/strings.hpp"

namespace idp::util {

namespace {

// Trims and collapses runs of spaces to one, as the canonical header form requires
// (also inside quotes: the suite's get-header-value-trim).
std::string canonical_header_value(std::string_view v) {
  std::string t = trim(v);
  std::string out;
  bool space = false;
  for (char c : t) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) {
      out += ' ';
    }
    space = false;
    out += c;
  }
  return out;
}

std::vector<std::string> path_segments(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

} // namespace

std::optional<AwsCredentials> aws_credentials_from_env() {
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (!id || !*id || !secret || !*secret) {
    return std::nullopt;
  }
  const char* token = std::getenv("AWS_SESSION_TOKEN");
  return AwsCredentials{id, secret, token ? token : ""};
}

std::string sigv4_amz_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string sigv4_canonical_uri(std::string_view path, bool normalize, bool double_encode) {
  if (path.empty()) {
    return "/";
  }
  std::vector<std::string> segs = path_segments(path.front() == '/' ? path.substr(1) : path);
  if (normalize) {
    // RFC 3986 remove_dot_segments, plus dropping empty segments ("//" → "/"); a trailing
    // slash (or a trailing "." / "..") keeps the result a directory.
    bool trailing =
        path.size() > 1 && (path.back() == '/' || (!segs.empty() && (segs.back() == "." || segs.back() == "..")));
    std::vector<std::string> kept;
    for (const auto& s : segs) {
      if (s.empty() || s == ".") {
        continue;
      }
      if (s == "..") {
        if (!kept.empty()) {
          kept.pop_back();
        }
        continue;
      }
      kept.push_back(s);
    }
    std::string out = "/";
    for (size_t i = 0; i < kept.size(); ++i) {
      out += double_encode ? url_encode(kept[i]) : url_encode(util::url_decode(kept[i], false));
      if (i + 1 < kept.size() || trailing) {
        out += '/';
      }
    }
    return out;
  }
  std::string out;
  for (const auto& s : segs) {
    out += '/';
    out += double_encode ? url_encode(s) : url_encode(util::url_decode(s, false));
  }
  return out;
}

std::string sigv4_canonical_query(std::string_view query) {
  if (query.empty()) {
    return "";
  }
  std::vector<std::pair<std::string, std::string>> params;
  for (const auto& part : split(query, '&')) {
    if (part.empty()) {
      continue;
    }
    auto eq = part.find('=');
    std::string key = eq == std::string::npos ? part : part.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    params.emplace_back(url_encode(util::url_decode(key, false)), url_encode(util::url_decode(value, false)));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) {
      out += '&';
    }
    out += k + "=" + v;
  }
  return out;
}

std::string sigv4_signing_key(std::string_view secret, std::string_view date, std::string_view region,
                              std::string_view service) {
  std::string k = hmac_sha256_raw("AWS4" + std::string(secret), date);
  k = hmac_sha256_raw(k, region);
  k = hmac_sha256_raw(k, service);
  return hmac_sha256_raw(k, "aws4_request");
}

SigV4Signature sigv4_sign(const SigV4Request& req, const AwsCredentials& creds, const SigV4Params& params) {
  SigV4Signature sig;
  auto headers = req.headers;
  auto has = [&](std::string_view name) {
    return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return to_lower(h.first) == name; });
  };
  for (const auto& [name, value] : headers) {
    if (to_lower(name) == "x-amz-date") {
      sig.amz_date = trim(value);
    }
  }
  if (sig.amz_date.empty()) {
    sig.amz_date = sigv4_amz_date(params.unix_seconds);
    headers.emplace_back("X-Amz-Date", sig.amz_date);
    sig.headers_to_add.emplace_back("X-Amz-Date", sig.amz_date);
  }
  if (!creds.session_token.empty() && !has("x-amz-security-token")) {
    headers.emplace_back("X-Amz-Security-Token", creds.session_token);
    sig.headers_to_add.emplace_back("X-Amz-Security-Token", creds.session_token);
  }
  std::string payload_hash = sha256_hex(req.body);
  if (params.add_content_sha256 && !has("x-amz-content-sha256")) {
    headers.emplace_back("x-amz-content-sha256", payload_hash);
    sig.headers_to_add.emplace_back("x-amz-content-sha256", payload_hash);
  }

  // Canonical headers: lowercase names, sorted; repeated names joined with ',' in order.
  std::map<std::string, std::string> canon;
  for (const auto& [name, value] : headers) {
    std::string key = to_lower(trim(name));
    std::string v = canonical_header_value(value);
    auto it = canon.find(key);
    if (it == canon.end()) {
      canon.emplace(key, v);
    } else {
      it->second += "," + v;
    }
  }
  std::string canonical_headers;
  for (const auto& [k, v] : canon) {
    canonical_headers += k + ":" + v + "\n";
    sig.signed_headers += (sig.signed_headers.empty() ? "" : ";") + k;
  }

  sig.canonical_request =
      req.method + "\n" + sigv4_canonical_uri(req.path, params.normalize_path, params.double_encode) + "\n" +
      sigv4_canonical_query(req.query) + "\n" + canonical_headers + "\n" + sig.signed_headers + "\n" + payload_hash;
  std::string date = sig.amz_date.substr(0, 8);
  std::string scope = date + "/" + params.region + "/" + params.service + "/aws4_request";
  sig.string_to_sign = "AWS4-HMAC-SHA256\n" + sig.amz_date + "\n" + scope + "\n" + sha256_hex(sig.canonical_request);
  std::string key = sigv4_signing_key(creds.secret_access_key, date, params.region, params.service);
  sig.signature = to_hex(hmac_sha256_raw(key, sig.string_to_sign));
  sig.authorization = "AWS4-HMAC-SHA256 Credential=" + creds.access_key_id + "/" + scope +
                      ", SignedHeaders=" + sig.signed_headers + ", Signature=" + sig.signature;
  sig.headers_to_add.emplace_back("Authorization", sig.authorization);
  return sig;
}

} // namespace idp::util
