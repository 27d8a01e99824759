#include "sources/webhook_payload.hpp"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "unit/sources/webhook_examples.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::sources {

using nlohmann::json;

namespace {

const std::string k_payload_sha1 = "1111111111111111111111111111111111111111";
const std::string k_payload_sha2 = "2222222222222222222222222222222222222222";

testing::TestRepo payload_test_repo() { return {"idp-tests/app", "https://github.com/idp-tests/app.git"}; }

// The payload as GitHub sends it: JSON text.
Expected<WebhookPayload> parse_payload_json(const json& j) { return parse_webhook_payload(util::json_dump(j)); }

} // namespace

TEST(WebhookPayloadTest, PushProjectsWhatTheMappingReads) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  json j = testing::push_payload(payload_test_repo(), "feature/login", k_payload_sha1, k_payload_sha2);
  auto p = parse_payload_json(j);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->ref, "refs/heads/feature/login");
  EXPECT_EQ(p->after, k_payload_sha2);
  EXPECT_FALSE(p->deleted);
  EXPECT_TRUE(p->repository.is_object);
  EXPECT_EQ(p->repository.full_name, "idp-tests/app");
  EXPECT_EQ(p->repository.clone_url, "https://github.com/idp-tests/app.git");
  EXPECT_EQ(p->repository.ssh_url, "https://github.com/idp-tests/app.git");
  EXPECT_EQ(p->sender_login, "Codertocat");
  EXPECT_EQ(p->pusher_name, j["pusher"]["name"].get<std::string>());
  EXPECT_FALSE(p->has_pull_request);
  EXPECT_FALSE(p->number);

  auto deleted =
      parse_payload_json(testing::push_deleted_payload(payload_test_repo(), "feature/login", k_payload_sha1));
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_TRUE(deleted->deleted);
}

TEST(WebhookPayloadTest, PullRequestProjectsNumberHeadAndMerged) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  auto p = parse_payload_json(
      testing::pull_request_payload(payload_test_repo(), "closed", 42, "feat/x", k_payload_sha2, true));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->action, "closed");
  EXPECT_EQ(p->number, 42);
  EXPECT_TRUE(p->has_pull_request);
  EXPECT_EQ(p->pr_number, 42);
  EXPECT_TRUE(p->pr_merged);
  EXPECT_TRUE(p->has_head);
  EXPECT_EQ(p->head_ref, "feat/x");
  EXPECT_EQ(p->head_sha, k_payload_sha2);
  EXPECT_EQ(p->head_repo_full_name, "idp-tests/app");

  auto opened =
      parse_payload_json(testing::pull_request_payload(payload_test_repo(), "opened", 7, "feat/y", k_payload_sha1));
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(opened->action, "opened");
  EXPECT_FALSE(opened->pr_merged);
  EXPECT_EQ(opened->head_ref, "feat/y");

  auto del = parse_payload_json(testing::delete_payload(payload_test_repo(), "feat/y", "tag"));
  ASSERT_TRUE(del) << del.error().message;
  EXPECT_EQ(del->ref, "feat/y");
  EXPECT_EQ(del->ref_type, "tag");
}

// Every example GitHub documents, of every event: the fast parser projects exactly what
// nlohmann::json does (the fallback, and what parsed payloads before).
TEST(WebhookPayloadTest, EveryPublishedExampleProjectsAsFromNlohmann) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  std::ifstream in(testing::webhook_examples_dir() + "/api.github.com/index.json");
  std::stringstream ss;
  ss << in.rdbuf();
  json index = json::parse(ss.str());
  size_t compared = 0;
  size_t with_repository = 0;
  for (const auto& e : index) {
    for (const auto& ex : e["examples"]) {
      auto p = parse_payload_json(ex);
      ASSERT_TRUE(p) << e["name"] << ": " << p.error().message;
      EXPECT_EQ(*p, project_webhook_payload(ex)) << e["name"];
      compared += 1;
      with_repository += p->repository.is_object && !p->repository.full_name.empty() ? 1 : 0;
    }
  }
  EXPECT_GT(compared, 100u);
  EXPECT_GT(with_repository, 100u);
}

TEST(WebhookPayloadTest, MissingFieldsAreEmpty) {
  auto p = parse_webhook_payload("{}");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(*p, WebhookPayload{});
  EXPECT_FALSE(p->repository.is_object);
  EXPECT_FALSE(p->has_pull_request);
  EXPECT_FALSE(p->number);
  EXPECT_FALSE(p->pr_number);

  // An object without the keys is still an object; a pull request without a head has none.
  auto q = parse_webhook_payload(R"({"repository": {}, "pull_request": {}, "sender": {}})");
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_TRUE(q->repository.is_object);
  EXPECT_EQ(q->repository.full_name, "");
  EXPECT_TRUE(q->has_pull_request);
  EXPECT_FALSE(q->has_head);
  EXPECT_EQ(q->sender_login, "");
}

TEST(WebhookPayloadTest, WrongTypesReadAsAbsent) {
  auto p = parse_webhook_payload(R"({"ref": 5, "after": ["x"], "deleted": "true", "action": null, "number": "7",
    "ref_type": {"a": 1}, "repository": "idp-tests/app", "sender": {"login": 3}, "pusher": [],
    "pull_request": {"number": 1.5, "merged": 1, "head": [{"ref": "x"}]}})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->ref, "");
  EXPECT_EQ(p->after, "");
  EXPECT_FALSE(p->deleted);
  EXPECT_EQ(p->action, "");
  EXPECT_FALSE(p->number);
  EXPECT_EQ(p->ref_type, "");
  EXPECT_FALSE(p->repository.is_object);
  EXPECT_EQ(p->sender_login, "");
  EXPECT_TRUE(p->has_pull_request);
  EXPECT_FALSE(p->pr_number);
  EXPECT_FALSE(p->pr_merged);
  EXPECT_FALSE(p->has_head);

  // A head whose repo is not an object has no full name; an integer is an integer.
  auto q = parse_webhook_payload(
      R"({"number": -3, "pull_request": {"number": 18446744073709551615, "head": {"ref": "a", "sha": 1, "repo": "x/y"}}})");
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(q->number, -3);
  EXPECT_EQ(q->pr_number, -1) << "integers above INT64_MAX read as -1";
  EXPECT_TRUE(q->has_head);
  EXPECT_EQ(q->head_ref, "a");
  EXPECT_EQ(q->head_sha, "");
  EXPECT_EQ(q->head_repo_full_name, "");
}

TEST(WebhookPayloadTest, InvalidJsonOrNotAnObjectIsAnError) {
  for (std::string text : {"", " ", "{", "}", "{\"ref\": \"a\",}", "{\"ref\" \"a\"}", "{} {}", "{} x", "[]",
                           "[{\"ref\": \"refs/heads/a\"}]", "\"x\"", "null", "42", "{\"a\": tru}", "{\"a\": 01}",
                           "{\"a\": \"\\x\"}", "{\"a\": \"tab\there\"}", "{\"a\": 1e400}", "payload=%7B%7D"}) {
    auto p = parse_webhook_payload(text);
    ASSERT_FALSE(p) << util::quote(text);
    EXPECT_EQ(p.error().code, ErrorCode::invalid_argument) << text;
    EXPECT_EQ(p.error().message, "webhook body is not a JSON object") << text;
  }
}

TEST(WebhookPayloadTest, InvalidUtf8IsAnErrorAndEscapesAreDecoded) {
  // Raw bytes that are not UTF-8, in a value or a key, anywhere in the document: not JSON.
  for (std::string text : {"{\"ref\": \"refs/heads/feat/\xff\"}", "{\"x\xfe\": 1, \"ref\": \"refs/heads/a\"}",
                           "{\"ref\": \"a\", \"unused\": [\"\xc3\"]}", "{\"ref\": \"\xed\xa0\x80\"}"}) {
    EXPECT_FALSE(parse_webhook_payload(text)) << util::quote(text);
  }
  // Escapes that name no character (a lone surrogate): not JSON either.
  EXPECT_FALSE(parse_webhook_payload(R"({"ref": "refs/heads/\ud800"})"));
  EXPECT_FALSE(parse_webhook_payload(R"({"ref": "refs/heads/\udc00x"})"));
  // U+FFFD (what a serialiser writes for bytes that were not UTF-8) is kept, so the mapping
  // can refuse the branch; escapes are decoded, NUL included.
  auto p = parse_webhook_payload(R"({"ref": "refs/heads/feat/\ufffd", "after": "a\u0000b", "action": "caf\u00e9"})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->ref, "refs/heads/feat/\xef\xbf\xbd");
  EXPECT_EQ(p->after, std::string("a\0b", 3));
  EXPECT_EQ(p->action, "caf\xc3\xa9");
  auto pair = parse_webhook_payload(R"({"ref": "\ud83d\ude00"})");
  ASSERT_TRUE(pair) << pair.error().message;
  EXPECT_EQ(pair->ref, "\xf0\x9f\x98\x80");
}

TEST(WebhookPayloadTest, DuplicateKeysTakeTheLastValueAsNlohmannDoes) {
  std::string text = R"({"ref": "refs/heads/a", "ref": "refs/heads/b", "deleted": true, "deleted": false,
    "repository": {"full_name": "x/first"}, "repository": {"clone_url": "https://h/x/y"},
    "pull_request": {"number": 1, "head": {"ref": "h1", "sha": "s1"}}, "pull_request": {"number": 2},
    "sender": {"login": "a", "login": "b"}})";
  auto p = parse_webhook_payload(text);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->ref, "refs/heads/b");
  EXPECT_FALSE(p->deleted);
  EXPECT_EQ(p->repository.full_name, "") << "the second repository object replaces the first";
  EXPECT_EQ(p->repository.clone_url, "https://h/x/y");
  EXPECT_EQ(p->pr_number, 2);
  EXPECT_FALSE(p->has_head) << "the second pull_request has no head";
  EXPECT_EQ(p->head_ref, "");
  EXPECT_EQ(p->sender_login, "b");
  EXPECT_EQ(*p, project_webhook_payload(json::parse(text)));
}

// Documents simdjson alone would refuse but that nlohmann (and so the daemon before) accepts.
TEST(WebhookPayloadTest, DocumentsOnlyNlohmannParsesAreStillAccepted) {
  // Integers beyond 64 bits (a float to nlohmann: not an integer).
  auto big = parse_webhook_payload(R"({"number": 123456789012345678901234567890, "ref": "refs/heads/a"})");
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_FALSE(big->number);
  EXPECT_EQ(big->ref, "refs/heads/a");
  // A UTF-8 byte order mark before the document.
  auto bom = parse_webhook_payload("\xef\xbb\xbf{\"ref\": \"refs/heads/a\"}");
  ASSERT_TRUE(bom) << bom.error().message;
  EXPECT_EQ(bom->ref, "refs/heads/a");
  // Nesting deeper than simdjson's 1024 levels, in a field nobody reads.
  std::string deep = R"({"ref": "refs/heads/a", "deep": )" + std::string(3000, '[') + std::string(3000, ']') + "}";
  auto d = parse_webhook_payload(deep);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->ref, "refs/heads/a");
}

TEST(WebhookPayloadTest, HugePayloadsParseAndLeaveTheReusedParserWorking) {
  // 4 MB: over the per-thread parser's 256 KiB, so it gets a parser of its own.
  json j = {{"ref", "refs/heads/big"}, {"repository", {{"full_name", "idp-tests/app"}}}};
  j["commits"] = json::array();
  for (int i = 0; i < 20000; ++i) {
    j["commits"].push_back({{"id", std::to_string(i)}, {"message", std::string(180, 'm')}});
  }
  j["after"] = k_payload_sha2; // after the big array: the whole document was read
  std::string text = util::json_dump(j);
  ASSERT_GT(text.size(), 4'000'000u);
  auto p = parse_webhook_payload(text);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->ref, "refs/heads/big");
  EXPECT_EQ(p->after, k_payload_sha2);
  EXPECT_EQ(p->repository.full_name, "idp-tests/app");
  // Cut short: invalid, however big.
  EXPECT_FALSE(parse_webhook_payload(std::string_view(text).substr(0, text.size() - 1)));
  // Small documents still parse on this thread afterwards.
  auto small = parse_webhook_payload(R"({"ref": "refs/heads/small"})");
  ASSERT_TRUE(small) << small.error().message;
  EXPECT_EQ(small->ref, "refs/heads/small");
}

} // namespace idp::sources
