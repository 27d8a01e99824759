// AWS SigV4 canonicalisation (util/aws_sigv4): any method, path, query and headers sign
// without a throw or a crash, deterministically; the canonical URI is absolute and the
// canonical query only holds unreserved characters and percent escapes.
// Input lines: flags byte, method, path, query, then "name:value" header lines.

#include <cctype>

#include "fuzz/fuzz_support.hpp"
#include "util/aws_sigv4.hpp"

using namespace idp;

namespace {

bool canonical_query_chars(const std::string& q) {
  for (unsigned char c : q) {
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '%' || c == '=' || c == '&')) {
      return false;
    }
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  uint8_t flags = in.byte();
  util::SigV4Request req;
  req.method = in.field();
  req.path = in.field();
  req.query = in.field();
  req.headers.emplace_back("Host", "example.amazonaws.com");
  while (!in.empty()) {
    std::string line = in.field();
    size_t colon = line.find(':');
    if (colon == std::string::npos) {
      req.body += line;
      continue;
    }
    req.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  util::SigV4Params params;
  params.region = "us-east-1";
  params.service = flags & 1 ? "s3" : "ecs";
  params.unix_seconds = 1'440'938'160;
  params.normalize_path = flags & 2;
  params.double_encode = flags & 4;
  params.add_content_sha256 = flags & 8;
  util::AwsCredentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", flags & 16 ? "token" : ""};

  auto sig = util::sigv4_sign(req, creds, params);
  IDP_FUZZ_CHECK(sig.signature.size() == 64);
  IDP_FUZZ_CHECK(sig.authorization.find(sig.signature) != std::string::npos);
  auto again = util::sigv4_sign(req, creds, params);
  IDP_FUZZ_CHECK(again.signature == sig.signature);

  std::string uri = util::sigv4_canonical_uri(req.path, params.normalize_path, params.double_encode);
  IDP_FUZZ_CHECK(!uri.empty() && uri.front() == '/');
  std::string q = util::sigv4_canonical_query(req.query);
  IDP_FUZZ_CHECK(canonical_query_chars(q));
  // Canonical forms are fixed points.
  IDP_FUZZ_CHECK(util::sigv4_canonical_query(q) == q);
  return 0;
}
