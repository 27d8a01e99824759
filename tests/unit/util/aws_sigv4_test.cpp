// SigV4 against AWS's published test suite (tests/data/sigv4/, see its README).
#include "util/aws_sigv4.hpp"
#include "util/hash.hpp"

#include <dirent.h>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace idp::util {
namespace {

const AwsCredentials k_suite_creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
constexpr int64_t k_suite_time = 1440938160; // 2015-08-30T12:36:00Z

std::string suite_dir() { return IDP_SIGV4_SUITE_DIR; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A .req file: "METHOD URI HTTP/1.1", header lines "Name:value", a blank line, the body.
SigV4Request parse_req(const std::string& text) {
  SigV4Request r;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  r.method = line.substr(0, sp1);
  std::string uri = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto q = uri.find('?');
  r.path = uri.substr(0, q);
  r.query = q == std::string::npos ? "" : uri.substr(q + 1);
  while (std::getline(in, line)) {
    if (line.empty()) {
      break;
    }
    auto colon = line.find(':');
    r.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  r.body = body;
  return r;
}

std::vector<std::string> suite_cases() {
  std::vector<std::string> out;
  DIR* d = ::opendir(suite_dir().c_str());
  if (!d) {
    return out;
  }
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n != "v4" && n != "README.md") {
      out.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

SigV4Params suite_params() {
  SigV4Params p;
  p.region = "us-east-1";
  p.service = "service";
  p.unix_seconds = k_suite_time;
  return p;
}

TEST(AwsSigV4Test, SuiteHasTheExpectedCases) {
  auto cases = suite_cases();
  EXPECT_GE(cases.size(), 25u);
  for (const char* must :
       {"get-vanilla", "get-vanilla-query-order-key-case", "post-x-www-form-urlencoded", "get-header-value-trim",
        "get-slashes", "get-relative-relative", "post-vanilla-query", "get-space", "get-vanilla-utf8-query"}) {
    EXPECT_NE(std::find(cases.begin(), cases.end(), must), cases.end()) << must;
  }
}

TEST(AwsSigV4Test, MatchesEverySuiteCase) {
  auto cases = suite_cases();
  ASSERT_FALSE(cases.empty()) << "no vectors in " << suite_dir();
  for (const auto& name : cases) {
    SCOPED_TRACE(name);
    std::string base = suite_dir() + "/" + name + "/" + name;
    SigV4Request req = parse_req(read(base + ".req"));
    SigV4Signature sig = sigv4_sign(req, k_suite_creds, suite_params());
    EXPECT_EQ(sig.canonical_request, read(base + ".creq"));
    EXPECT_EQ(sig.string_to_sign, read(base + ".sts"));
    EXPECT_EQ(sig.authorization, read(base + ".authz"));
  }
}

// aws-c-auth's v4 layout: context.json (credentials with an optional session token) and
// header-signed-request.txt (the request with its Authorization header).
TEST(AwsSigV4Test, MatchesAwsCAuthCases) {
  for (const char* name : {"get-utf8", "get-vanilla-with-session-token"}) {
    SCOPED_TRACE(name);
    std::string dir = suite_dir() + "/v4/" + name;
    auto ctx = nlohmann::json::parse(read(dir + "/context.json"));
    AwsCredentials creds{ctx["credentials"]["access_key_id"], ctx["credentials"]["secret_access_key"],
                         ctx["credentials"].value("token", "")};
    SigV4Request signed_req = parse_req(read(dir + "/header-signed-request.txt"));
    std::string expected;
    SigV4Request req = signed_req;
    req.headers.clear();
    for (const auto& [k, v] : signed_req.headers) {
      if (k == "Authorization") {
        expected = v;
      } else if (k != "X-Amz-Security-Token") {
        req.headers.emplace_back(k, v); // the signer adds the token itself
      }
    }
    SigV4Signature sig = sigv4_sign(req, creds, suite_params());
    EXPECT_EQ(sig.authorization, expected);
    if (!creds.session_token.empty()) {
      ASSERT_GE(sig.headers_to_add.size(), 2u);
      EXPECT_EQ(sig.headers_to_add[0].first, "X-Amz-Security-Token");
      EXPECT_EQ(sig.headers_to_add[0].second, creds.session_token);
    }
  }
}

TEST(AwsSigV4Test, CanonicalUriEncodesUtf8AndNormalizes) {
  EXPECT_EQ(sigv4_canonical_uri("/\xE1\x88\xB4", true, true), "/%E1%88%B4");
  EXPECT_EQ(sigv4_canonical_uri("//example//", true, true), "/example/");
  EXPECT_EQ(sigv4_canonical_uri("/example1/example2/../..", true, true), "/");
  EXPECT_EQ(sigv4_canonical_uri("/a%20b", true, true), "/a%2520b");               // double-encoded (not S3)
  EXPECT_EQ(sigv4_canonical_uri("/bucket/a%20b", false, false), "/bucket/a%20b"); // S3: once
  EXPECT_EQ(sigv4_canonical_uri("/bucket//x/./y", false, false), "/bucket//x/./y");
  EXPECT_EQ(sigv4_canonical_uri("/b/a+b", false, false), "/b/a%2Bb");
}

TEST(AwsSigV4Test, CanonicalQuerySortsAndEncodes) {
  EXPECT_EQ(sigv4_canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
  EXPECT_EQ(sigv4_canonical_query("Action=DescribeTargetHealth&Version=2015-12-01"),
            "Action=DescribeTargetHealth&Version=2015-12-01");
  EXPECT_EQ(sigv4_canonical_query("k=a b&flag"), "flag=&k=a%20b");
}

TEST(AwsSigV4Test, AddsDateAndContentHashWhenAsked) {
  SigV4Request req;
  req.method = "DELETE";
  req.path = "/bucket/key";
  req.headers = {{"Host", "127.0.0.1:9000"}};
  SigV4Params p = suite_params();
  p.service = "s3";
  p.add_content_sha256 = true;
  p.normalize_path = false;
  p.double_encode = false;
  SigV4Signature sig = sigv4_sign(req, k_suite_creds, p);
  EXPECT_EQ(sig.amz_date, "20150830T123600Z");
  EXPECT_EQ(sig.signed_headers, "host;x-amz-content-sha256;x-amz-date");
  ASSERT_EQ(sig.headers_to_add.size(), 3u);
  EXPECT_EQ(sig.headers_to_add[0].first, "X-Amz-Date");
  EXPECT_EQ(sig.headers_to_add[1].second, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sig.headers_to_add[2].first, "Authorization");
  EXPECT_EQ(sig.authorization.find("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "), 0u);
}

TEST(AwsSigV4Test, SigningKeyMatchesTheDocumentedExample) {
  // docs.aws.amazon.com "Examples of how to derive a signing key" (iam, 20120215).
  EXPECT_EQ(to_hex(sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

} // namespace
} // namespace idp::util
