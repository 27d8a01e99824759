#include "util/http_client.hpp"

#include <cstring>

#include <curl/curl.h>
#include <mutex>

#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::util {

namespace {
struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

void ensure_global() {
  static CurlGlobal g; // thread-safe static initialisation
  (void)g;
}

struct Ctx {
  const HttpRequest* req;
  HttpResponse* resp;
  bool stopped = false;
};

size_t on_body(char* ptr, size_t size, size_t n, void* ud) {
  auto* c = static_cast<Ctx*>(ud);
  size_t len = size * n;
  if (c->req->on_data) {
    if (!c->req->on_data(std::string_view(ptr, len))) {
      c->stopped = true;
      return 0;
    }
    return len;
  }
  size_t max = c->req->max_body;
  if (max > 0 && c->resp->body.size() + len > max) {
    c->resp->body.append(ptr, max - c->resp->body.size());
    c->resp->truncated = true;
    c->stopped = true;
    return 0; // stops the transfer; the response so far is the answer
  }
  c->resp->body.append(ptr, len);
  return len;
}

size_t on_header(char* ptr, size_t size, size_t n, void* ud) {
  auto* c = static_cast<Ctx*>(ud);
  size_t len = size * n;
  std::string_view line(ptr, len);
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    c->resp->headers[to_lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return len;
}
} // namespace

Expected<HttpResponse> http_request(const HttpRequest& req) {
  ensure_global();
  CURL* curl = curl_easy_init();
  if (!curl) {
    return make_error(ErrorCode::internal, "curl_easy_init failed");
  }
  HttpResponse resp;
  Ctx ctx{&req, &resp};
  struct curl_slist* hdrs = nullptr;
  for (const auto& [k, v] : req.headers) {
    hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
  }
  // No "Expect: 100-continue" round trip for larger bodies.
  hdrs = curl_slist_append(hdrs, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  }
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (req.timeout_ms > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout_ms));
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout_ms));
  if (!req.unix_socket.empty()) {
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, req.unix_socket.c_str());
  }
  if (!req.aws_sigv4.empty()) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, req.aws_sigv4.c_str());
  }
  if (!req.userpwd.empty()) {
    curl_easy_setopt(curl, CURLOPT_USERPWD, req.userpwd.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp.status);
  long os_errno = 0; // the system's reason, where curl's own is vague ("Couldn't connect to server")
  curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && ctx.stopped)) {
    ErrorCode code = rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::timeout : ErrorCode::transient;
    std::string why = curl_easy_strerror(rc);
    if (os_errno != 0 && rc == CURLE_COULDNT_CONNECT) {
      why += " (" + std::string(std::strerror(static_cast<int>(os_errno))) + ")";
    }
    return make_error(code, req.method + " " + req.url + ": " + why);
  }
  return resp;
}

std::string url_encode(std::string_view s) {
  static const char* k_hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    }
  }
  return out;
}

std::string url_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_digit_value(s[i + 1]);
      int lo = hex_digit_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
      continue;
    }
    out += s[i];
  }
  return out;
}

} // namespace idp::util
