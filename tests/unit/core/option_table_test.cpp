// core::OptionTable and core::ConfigDocument: one key table read from YAML (positions),
// JSON (driver options) and the environment, with the same parsers for all three.
#include "core/option_table.hpp"

#include <climits>
#include <gtest/gtest.h>

namespace idp::core {

struct OptionTableTarget {
  long long workers = 4;
  bool verbose = false;
  std::string domain = "preview.localhost";
  std::vector<std::string> paths;
};

namespace {

const OptionTable<OptionTableTarget>& option_table_under_test() {
  static const OptionTable<OptionTableTarget> k_table({
      {.key = "workers",
       .env = "IDP_T_WORKERS",
       .default_text = "4",
       .parse =
           [](const nlohmann::json& v, OptionTableTarget& t) {
             return option_values::whole_number(v, 1, 256, "a number of workers from 1 to 256", t.workers);
           }},
      {.key = "log.verbose",
       .env = "IDP_T_VERBOSE",
       .parse = [](const nlohmann::json& v, OptionTableTarget& t) { return option_values::boolean(v, t.verbose); }},
      {.key = "router.domain",
       .env = "IDP_T_DOMAIN",
       .parse = [](const nlohmann::json& v, OptionTableTarget& t) -> OptionMessage {
         std::string s;
         if (auto m = option_values::text(v, "a domain", s)) {
           return m;
         }
         if (s.find(' ') != std::string::npos) {
           return "expected a domain, got " + util::quote(s);
         }
         t.domain = s;
         return std::nullopt;
       }},
      {.key = "paths",
       .env = "IDP_T_PATHS",
       .parse = [](const nlohmann::json& v,
                   OptionTableTarget& t) { return option_values::string_list(v, "directories", t.paths); },
       .env_separator = ':'},
  });
  return k_table;
}

std::string option_table_errors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += e.to_string() + "\n";
  }
  return out;
}

// Parses `text` as a file; the errors, in the file's order.
std::vector<ConfigError> option_table_parse(const std::string& text, OptionTableTarget& t,
                                            std::vector<std::string>* applied = nullptr) {
  ConfigDocument doc = ConfigDocument::from_yaml(text, "f.yml");
  auto keys = option_table_under_test().apply(doc, doc.root(), t);
  if (applied) {
    *applied = keys;
  }
  return doc.sorted_errors();
}

} // namespace

TEST(OptionTableTest, AppliesDottedKeysAsNestedMapsInTheFilesOrder) {
  OptionTableTarget t;
  std::vector<std::string> applied;
  auto errors = option_table_parse("workers: 8\nrouter:\n  domain: example.com\nlog: {verbose: yes}\npaths: [a, b]\n",
                                   t, &applied);
  ASSERT_TRUE(errors.empty()) << option_table_errors(errors);
  EXPECT_EQ(t.workers, 8);
  EXPECT_EQ(t.domain, "example.com");
  EXPECT_TRUE(t.verbose);
  EXPECT_EQ(t.paths, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(applied, (std::vector<std::string>{"workers", "router.domain", "log.verbose", "paths"}));
}

TEST(OptionTableTest, UnknownKeysSuggestTheClosestWithTheirPosition) {
  OptionTableTarget t;
  auto errors = option_table_parse("wrokers: 8\nrouter:\n  domian: x\n", t);
  ASSERT_EQ(errors.size(), 2u) << option_table_errors(errors);
  EXPECT_EQ(errors[0].to_string(), "f.yml:1:1: key \"wrokers\": unknown key, did you mean \"workers\"?");
  EXPECT_EQ(errors[1].to_string(), "f.yml:3:3: key \"router.domian\": unknown key, did you mean \"router.domain\"?");
}

TEST(OptionTableTest, TypeErrorsNameWhatWasExpectedAndTheValuesPosition) {
  OptionTableTarget t;
  auto errors = option_table_parse("router:\n  domain: [a]\nworkers: many\nlog: 3\n", t);
  ASSERT_EQ(errors.size(), 3u) << option_table_errors(errors);
  EXPECT_EQ(errors[0].to_string(), "f.yml:2:11: key \"router.domain\": expected a domain, got a list");
  EXPECT_EQ(errors[1].to_string(),
            "f.yml:3:10: key \"workers\": expected a number of workers from 1 to 256, got \"many\"");
  EXPECT_EQ(errors[2].to_string(), "f.yml:4:6: key \"log\": expected a map of settings, got \"3\"");
  EXPECT_EQ(t.workers, 4);
}

TEST(OptionTableTest, DuplicateAndNonScalarKeysAreErrors) {
  OptionTableTarget t;
  auto errors = option_table_parse("workers: 2\nworkers: 3\n? [a]\n: b\n", t);
  ASSERT_EQ(errors.size(), 2u) << option_table_errors(errors);
  EXPECT_EQ(errors[0].to_string(), "f.yml:2:1: key \"workers\": duplicate key");
  EXPECT_EQ(errors[1].line, 3);
  EXPECT_NE(errors[1].message.find("expected a key name, got a list"), std::string::npos);
  EXPECT_EQ(t.workers, 2) << "the first one counts";
}

TEST(OptionTableTest, TextThatIsNotUtf8IsAPositionedErrorAndLeftOut) {
  OptionTableTarget t;
  auto errors =
      option_table_parse("workers: 2\nrouter:\n  domain: \"ex\xa2mple\"\n\xff\xfe: 1\npaths: [ok, \"b\xc0\"]\n", t);
  ASSERT_EQ(errors.size(), 3u) << option_table_errors(errors);
  EXPECT_EQ(errors[0].to_string(), "f.yml:3:11: key \"router.domain\": the value is not valid UTF-8");
  EXPECT_EQ(errors[1].to_string(), "f.yml:4:1: the key \"\\xff\\xfe\" is not valid UTF-8");
  EXPECT_EQ(errors[2].to_string(), "f.yml:5:13: key \"paths[1]\": the value is not valid UTF-8");
  EXPECT_EQ(t.domain, "preview.localhost") << "a value that is not UTF-8 is never applied";
  EXPECT_TRUE(t.paths.empty()) << "nor a list holding one";
}

TEST(OptionTableTest, AliasesExpandedPastTheBoundAreAnErrorNotAHang) {
  // Each level doubles: 2^20 values from a few lines (the "billion laughs").
  std::string text = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 20; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) + ", *a" +
            std::to_string(i - 1) + "]\n";
  }
  ConfigDocument doc = ConfigDocument::from_yaml(text, "f.yml");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.errors().front().message.find("the document is too large"), std::string::npos)
      << doc.errors().front().to_string();
}

TEST(OptionTableTest, EnvironmentAliasesAreParsedLikeFileValues) {
  std::map<std::string, std::string> env = {
      {"IDP_T_WORKERS", "16"}, {"IDP_T_VERBOSE", "on"}, {"IDP_T_PATHS", "/a::/b"}};
  auto getenv = [&](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  OptionTableTarget t;
  OptionOrigins origins;
  ASSERT_TRUE(option_table_under_test().apply_env(t, getenv, origins));
  EXPECT_EQ(t.workers, 16);
  EXPECT_TRUE(t.verbose);
  EXPECT_EQ(t.paths, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(origins["workers"], "env IDP_T_WORKERS");
  EXPECT_EQ(origins.count("router.domain"), 0u);

  // The same check and the same words as the file's key, naming the variable.
  env = {{"IDP_T_WORKERS", "-1"}};
  OptionTableTarget bad;
  auto r = option_table_under_test().apply_env(bad, getenv, origins);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_EQ(r.error().message,
            "environment variable IDP_T_WORKERS: expected a number of workers from 1 to 256, got \"-1\"");
  OptionTableTarget file;
  auto errors = option_table_parse("workers: -1\n", file);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "expected a number of workers from 1 to 256, got \"-1\"");

  env = {{"IDP_T_DOMAIN", "a b"}};
  r = option_table_under_test().apply_env(bad, getenv, origins);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "environment variable IDP_T_DOMAIN: expected a domain, got \"a b\"");
}

TEST(OptionTableTest, JsonOptionsNameTheOwnerAndTheOption) {
  OptionTableTarget t;
  ASSERT_TRUE(option_table_under_test().apply_json({{"workers", 7}, {"paths", {"x"}}}, t, "driver \"t\""));
  EXPECT_EQ(t.workers, 7);
  auto typo = option_table_under_test().apply_json({{"wrokers", 7}}, t, "driver \"t\"");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().message, "driver \"t\": unknown key \"wrokers\"; did you mean \"workers\"?");
  auto wrong = option_table_under_test().apply_json({{"workers", 0}}, t, "driver \"t\"");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().message, "driver \"t\": key \"workers\": expected a number of workers from 1 to 256, got 0");
  EXPECT_FALSE(option_table_under_test().apply_json(nlohmann::json::array(), t, "driver \"t\""));
  EXPECT_TRUE(option_table_under_test().apply_json(nullptr, t, "driver \"t\""));
}

// whole_number_into: the one helper the tables use to fill an integer field of any width;
// the bounds are checked on the whole number, before it is narrowed to the field.
TEST(OptionTableTest, WholeNumberIntoChecksBoundsBeforeNarrowing) {
  int small = 7;
  EXPECT_EQ(option_values::whole_number_into(nlohmann::json("4294967297"), 0, INT_MAX, "a count", small),
            OptionMessage("expected a count, got \"4294967297\""));
  EXPECT_EQ(small, 7) << "unchanged on error";
  EXPECT_FALSE(option_values::whole_number_into(nlohmann::json("42"), 0, INT_MAX, "a count", small));
  EXPECT_EQ(small, 42);
  size_t size = 0;
  EXPECT_FALSE(option_values::whole_number_into(nlohmann::json(65535), 0, 65535, "a port", size));
  EXPECT_EQ(size, 65535u);
  EXPECT_TRUE(option_values::whole_number_into(nlohmann::json("-1"), 0, 65535, "a port", size));
  int64_t big = 0;
  EXPECT_TRUE(option_values::whole_number_into(nlohmann::json("1e3"), 0, INT64_MAX, "milliseconds", big));
  EXPECT_TRUE(option_values::whole_number_into(nlohmann::json(true), 0, INT64_MAX, "milliseconds", big));
}

} // namespace idp::core
