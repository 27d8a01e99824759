// The S3 client's pure parts: s3:// URLs, the key's encoding, the signed request (checked
// against a canonical request written out by hand), the error of an S3 answer and the
// config from the environment. Against a real S3 (s3rver): tests/integration/foundation/cost_export_test.cpp.
#include "util/s3_client.hpp"

#include <cstdlib>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "util/hash.hpp"

namespace idp::util {
namespace {

constexpr int64_t k_s3_test_time = 1369353600; // 2013-05-24T00:00:00Z

std::string header_of(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "";
}

TEST(S3ClientTest, ParsesBucketAndKeyOfAnS3Url) {
  auto loc = parse_s3_url("s3://reports/acme/2026-11 costs.csv");
  ASSERT_TRUE(loc) << loc.error().message;
  EXPECT_EQ(loc->bucket, "reports");
  EXPECT_EQ(loc->key, "acme/2026-11 costs.csv");
  EXPECT_EQ(loc->url(), "s3://reports/acme/2026-11 costs.csv");

  auto prefix = parse_s3_url("s3://reports/chargeback/", false);
  ASSERT_TRUE(prefix);
  EXPECT_EQ(prefix->key, "chargeback/");
  auto bare = parse_s3_url("s3://reports", false);
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->key, "");
}

TEST(S3ClientTest, RefusesAnS3UrlWithoutBucketOrKeyAndSaysWhatWasExpected) {
  auto not_s3 = parse_s3_url("https://reports/x.csv");
  ASSERT_FALSE(not_s3);
  EXPECT_EQ(not_s3.error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(not_s3.error().message,
            "expected an S3 URL like s3://bucket/path/report.csv, got \"https://reports/x.csv\"");
  auto no_bucket = parse_s3_url("s3:///x.csv");
  ASSERT_FALSE(no_bucket);
  EXPECT_EQ(no_bucket.error().message,
            "no bucket in \"s3:///x.csv\": expected an S3 URL like s3://bucket/path/report.csv");
  for (const char* url : {"s3://reports", "s3://reports/", "s3://reports/dir/"}) {
    auto no_key = parse_s3_url(url);
    ASSERT_FALSE(no_key) << url;
    EXPECT_NE(no_key.error().message.find("no object key in "), std::string::npos) << no_key.error().message;
  }
  auto bad_bucket = parse_s3_url("s3://Reports_2026/x.csv");
  ASSERT_FALSE(bad_bucket);
  EXPECT_NE(bad_bucket.error().message.find("invalid bucket name \"Reports_2026\""), std::string::npos);
}

TEST(S3ClientTest, EncodesEachKeySegmentAsS3WantsAndKeepsSlashes) {
  S3Location loc{"reports", "team a/2026-11 café+x~y_z.csv"};
  EXPECT_EQ(s3_object_path(loc), "/reports/team%20a/2026-11%20caf%C3%A9%2Bx~y_z.csv");
  EXPECT_EQ(s3_object_path({"reports", "a//b/"}), "/reports/a//b/") << "empty segments are kept";
  EXPECT_EQ(s3_object_path({"reports", "100%/?#&=.csv"}), "/reports/100%25/%3F%23%26%3D.csv");
  EXPECT_EQ(s3_object_path({"reports", ""}), "/reports");
}

TEST(S3ClientTest, SignsAPutObjectAsACanonicalRequestWrittenOutByHand) {
  S3Config cfg;
  cfg.credentials = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  cfg.region = "eu-west-1";
  cfg.endpoint = "http://127.0.0.1:4568";
  std::string body = "month,team\n2026-11,payments\n";
  HttpRequest r = s3_signed_request(cfg, "PUT", {"reports", "cost/2026 11/café.csv"}, body, "text/csv", k_s3_test_time);

  EXPECT_EQ(r.method, "PUT");
  EXPECT_EQ(r.url, "http://127.0.0.1:4568/reports/cost/2026%2011/caf%C3%A9.csv");
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(header_of(r, "Content-Type"), "text/csv");
  EXPECT_EQ(header_of(r, "x-amz-content-sha256"), sha256_hex(body));
  EXPECT_EQ(header_of(r, "X-Amz-Date"), "20130524T000000Z");
  EXPECT_EQ(header_of(r, "X-Amz-Security-Token"), "") << "no session token, no header";
  EXPECT_EQ(header_of(r, "Host"), "") << "libcurl sends Host from the URL";

  // S3's rules: the path is encoded once (no double encoding, no normalisation), and every
  // header is signed, names lowercased and sorted.
  std::string canonical = "PUT\n"
                          "/reports/cost/2026%2011/caf%C3%A9.csv\n"
                          "\n"
                          "content-type:text/csv\n"
                          "host:127.0.0.1:4568\n"
                          "x-amz-content-sha256:" +
                          sha256_hex(body) +
                          "\n"
                          "x-amz-date:20130524T000000Z\n"
                          "\n"
                          "content-type;host;x-amz-content-sha256;x-amz-date\n" +
                          sha256_hex(body);
  std::string to_sign =
      "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/eu-west-1/s3/aws4_request\n" + sha256_hex(canonical);
  std::string key = sigv4_signing_key(cfg.credentials.secret_access_key, "20130524", "eu-west-1", "s3");
  std::string signature = to_hex(hmac_sha256_raw(key, to_sign));
  EXPECT_EQ(header_of(r, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/eu-west-1/s3/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature=" +
                signature);
}

TEST(S3ClientTest, ASessionTokenIsSentAndSignedAndAGetHasTheHashOfAnEmptyBody) {
  S3Config cfg;
  cfg.credentials = {"ASIAEXAMPLE", "secret/with+chars", "the-session-token"};
  cfg.endpoint = "https://s3.us-east-1.amazonaws.com";
  HttpRequest r = s3_signed_request(cfg, "GET", {"reports", "a.json"}, "", "", k_s3_test_time);
  EXPECT_EQ(r.url, "https://s3.us-east-1.amazonaws.com/reports/a.json");
  EXPECT_EQ(header_of(r, "X-Amz-Security-Token"), "the-session-token");
  EXPECT_EQ(header_of(r, "x-amz-content-sha256"), sha256_hex(""));
  EXPECT_EQ(header_of(r, "Content-Type"), "");
  std::string auth = header_of(r, "Authorization");
  EXPECT_NE(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"), std::string::npos)
      << auth;
  EXPECT_EQ(auth.find("secret/with+chars"), std::string::npos) << "the secret key is never sent";
}

TEST(S3ClientTest, AnS3ErrorSaysTheStatusAndTheCodeOfItsXmlBody) {
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code>"
                    "<Message>The AWS Access Key Id you provided does not exist in our records.</Message>"
                    "<AWSAccessKeyId>AKIDBAD</AWSAccessKeyId></Error>";
  Error e = s3_error("PutObject", {"reports", "x.csv"}, 403, xml);
  EXPECT_EQ(e.code, ErrorCode::unauthorized);
  EXPECT_EQ(e.message, "PutObject s3://reports/x.csv: HTTP 403 InvalidAccessKeyId: The AWS Access Key Id you "
                       "provided does not exist in our records.");
  Error missing = s3_error("PutObject", {"nope", "x.csv"}, 404, "<Error><Code>NoSuchBucket</Code></Error>");
  EXPECT_EQ(missing.code, ErrorCode::not_found);
  EXPECT_EQ(missing.message, "PutObject s3://nope/x.csv: HTTP 404 NoSuchBucket");
  Error busy = s3_error("PutObject", {"reports", "x.csv"}, 503, "");
  EXPECT_EQ(busy.code, ErrorCode::transient);
  EXPECT_EQ(busy.message, "PutObject s3://reports/x.csv: HTTP 503");
}

// Sets environment variables for one test and restores them.
class ScopedS3Env {
public:
  explicit ScopedS3Env(std::vector<std::pair<std::string, std::string>> vars) {
    for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}) {
      const char* old = std::getenv(name);
      m_saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) {
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedS3Env() {
    for (const auto& [k, v] : m_saved) {
      if (v) {
        ::setenv(k.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(k.c_str());
      }
    }
  }

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

TEST(S3ClientTest, TheConfigComesFromTheStandardAwsVariables) {
  {
    ScopedS3Env env({});
    auto none = s3_config_from_env();
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code, ErrorCode::unauthorized);
    EXPECT_NE(none.error().message.find("no AWS credentials"), std::string::npos);
  }
  {
    ScopedS3Env env({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"}});
    auto cfg = s3_config_from_env();
    ASSERT_TRUE(cfg);
    EXPECT_EQ(cfg->region, "us-east-1");
    EXPECT_EQ(cfg->endpoint, "https://s3.us-east-1.amazonaws.com");
  }
  {
    ScopedS3Env env({{"AWS_ACCESS_KEY_ID", "AK"},
                     {"AWS_SECRET_ACCESS_KEY", "SK"},
                     {"AWS_DEFAULT_REGION", "eu-west-3"},
                     {"AWS_ENDPOINT_URL", "http://general:1/"},
                     {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568/"}});
    auto cfg = s3_config_from_env();
    ASSERT_TRUE(cfg);
    EXPECT_EQ(cfg->region, "eu-west-3");
    EXPECT_EQ(cfg->endpoint, "http://127.0.0.1:4568") << "the S3 one wins, without its trailing slash";
  }
  {
    ScopedS3Env env({{"AWS_ACCESS_KEY_ID", "AK"},
                     {"AWS_SECRET_ACCESS_KEY", "SK"},
                     {"AWS_REGION", "ap-south-1"},
                     {"AWS_DEFAULT_REGION", "eu-west-3"},
                     {"AWS_ENDPOINT_URL", "localhost:4566"}});
    auto cfg = s3_config_from_env();
    ASSERT_FALSE(cfg);
    EXPECT_EQ(cfg.error().message,
              "AWS_ENDPOINT_URL: expected a URL like http://localhost:4566 (no path), got \"localhost:4566\"");
  }
  {
    ScopedS3Env env({{"AWS_ACCESS_KEY_ID", "AK"}, {"AWS_SECRET_ACCESS_KEY", "SK"}, {"AWS_REGION", "ap-south-1"}});
    auto cfg = s3_config_from_env();
    ASSERT_TRUE(cfg);
    EXPECT_EQ(cfg->region, "ap-south-1");
    EXPECT_EQ(cfg->endpoint, "https://s3.ap-south-1.amazonaws.com");
  }
}

} // namespace
} // namespace idp::util
