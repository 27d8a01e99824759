#include <gtest/gtest.h>

#include "core/app_config.hpp"

using namespace idp::core;

TEST(AppConfigTest, EmptyMeansDefaults) {
  auto r = parse_app_config("", "c.yml");
  ASSERT_TRUE(r.ok());
  const AppConfig& c = r.config;
  EXPECT_EQ(c.template_name, "api-service");
  EXPECT_EQ(c.container_image, "nginx:alpine");
  EXPECT_EQ(c.container_port, 80);
  EXPECT_EQ(c.health_check_path, "/");
  EXPECT_EQ(c.ttl, "7d");
  EXPECT_EQ(c.cpu, 256);
  EXPECT_EQ(c.memory, 512);
  EXPECT_EQ(c.log_retention_days, 3);
  EXPECT_EQ(c.build_context, ".");
  EXPECT_FALSE(c.use_shared_networking.has_value());
  EXPECT_TRUE(c.keys_set.empty());
  EXPECT_TRUE(parse_app_config("# only a comment\n", "c.yml").ok());
}

TEST(AppConfigTest, ParsesEveryKey) {
  const char* text = R"(template: api-database
container_image: node:20-alpine
container_port: 3000
health_check_path: /api/health
ttl: 4h
cpu: 512
memory: 2048
log_retention_days: 14
dockerfile: docker/Dockerfile
build_context: app
environment:
  NODE_ENV: preview
  RETRIES: 3
  DEBUG: true
secrets:
  API_KEY: arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key
s3_bucket_arn: arn:aws:s3:::my-bucket
use_shared_networking: false
region: eu-west-1
local:
  build: "npm ci"
  start: "node server.js"
database:
  seed: db/seed.sql
)";
  auto r = parse_app_config(text, "c.yml");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  const AppConfig& c = r.config;
  EXPECT_EQ(c.template_name, "api-database");
  EXPECT_EQ(c.container_port, 3000);
  EXPECT_EQ(c.health_check_path, "/api/health");
  EXPECT_EQ(c.ttl_ms, 4 * 3600 * 1000);
  EXPECT_EQ(c.cpu, 512);
  EXPECT_EQ(c.memory, 2048);
  EXPECT_EQ(c.log_retention_days, 14);
  EXPECT_EQ(c.environment.at("RETRIES"), "3");
  EXPECT_EQ(c.environment.at("DEBUG"), "true");
  EXPECT_EQ(c.secrets.size(), 1u);
  ASSERT_TRUE(c.use_shared_networking.has_value());
  EXPECT_FALSE(*c.use_shared_networking) << "false is a value, not 'absent' ([DEFECT] fixed)";
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.local.build, "npm ci");
  EXPECT_EQ(c.local.start, "node server.js");
  EXPECT_EQ(c.database.seed, "db/seed.sql");
  EXPECT_TRUE(c.has_key("local.start"));
  EXPECT_FALSE(c.has_key("static.dir"));
  // Round trip through the stored JSON form.
  auto back = app_config_from_json(to_json(c));
  ASSERT_TRUE(back);
  EXPECT_EQ(to_json(*back), to_json(c));
}

TEST(AppConfigTest, EmptyValueMeansDefault) {
  auto r = parse_app_config("ttl:\ncontainer_port:\n", "c.yml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config.ttl, "7d");
  EXPECT_EQ(r.config.container_port, 80);
}

struct BadCase {
  const char* name;
  const char* text;
  int line;
  int column;
  const char* key;
  const char* message; // substring
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, ReportsPositionKeyAndExpectation) {
  const BadCase& c = GetParam();
  auto r = parse_app_config(c.text, ".idp/config.yml");
  ASSERT_FALSE(r.ok()) << c.name << ": accepted";
  const ConfigError& e = r.errors.front();
  EXPECT_EQ(e.line, c.line) << e.to_string();
  EXPECT_EQ(e.column, c.column) << e.to_string();
  EXPECT_EQ(e.key, c.key) << e.to_string();
  EXPECT_NE(e.message.find(c.message), std::string::npos) << e.to_string();
  std::string s = e.to_string();
  EXPECT_EQ(s.rfind(".idp/config.yml:" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": ", 0), 0u) << s;
  auto loaded = load_app_config(c.text, ".idp/config.yml");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, idp::ErrorCode::invalid_config);
}

// Every key's failure modes. Positions are 1-based line:column of the offending value.
const BadCase k_bad_cases[] = {
    {"unknown_key_typo", "templte: api-service\n", 1, 1, "templte", "did you mean \"template\""},
    {"unknown_key_no_hint", "colour: blue\n", 1, 1, "colour", "unknown key"},
    {"unknown_nested_key", "local:\n  strat: node x.js\n", 2, 3, "local.strat", "did you mean \"local.start\""},
    {"duplicate_key", "ttl: 1d\nttl: 2d\n", 2, 1, "ttl", "duplicate key"},
    {"not_a_map", "- a\n- b\n", 1, 1, "", "expected a map of settings"},
    {"invalid_yaml", "ttl: [1d\n", 2, 1, "", "invalid YAML"},
    {"template_bad_chars", "template: Api_Service\n", 1, 11, "template", "expected a template name"},
    {"template_is_map", "template:\n  a: b\n", 2, 3, "template", "got a map"},
    {"image_with_space", "container_image: \"nginx latest\"\n", 1, 18, "container_image",
     "expected an image reference"},
    {"port_zero", "container_port: 0\n", 1, 17, "container_port", "expected a port number 1-65535, got 0"},
    {"port_too_big", "container_port: 70000\n", 1, 17, "container_port", "got 70000"},
    {"port_text", "container_port: http\n", 1, 17, "container_port", "got \"http\""},
    {"health_no_slash", "health_check_path: health\n", 1, 20, "health_check_path", "expected a path starting with /"},
    {"health_with_space", "health_check_path: \"/a b\"\n", 1, 20, "health_check_path", "without spaces"},
    {"ttl_words", "ttl: 2 days\n", 1, 6, "ttl", "expected a duration like 30m, 4h, 7d or 2w, got \"2 days\""},
    {"ttl_zero", "ttl: 0h\n", 1, 6, "ttl", "expected a positive duration"},
    {"ttl_seconds", "ttl: 30s\n", 1, 6, "ttl", "expected a duration like"},
    {"cpu_not_fargate", "cpu: 300\n", 1, 6, "cpu", "expected CPU units 256, 512"},
    {"memory_too_small", "memory: 100\n", 1, 9, "memory", "between 512 and 122880"},
    {"cpu_memory_combination", "cpu: 256\nmemory: 4096\n", 2, 9, "memory",
     "not a valid Fargate combination with cpu 256"},
    {"cpu_memory_step", "cpu: 1024\nmemory: 2500\n", 2, 9, "memory", "expected 2048 to 8192 in steps of 1024"},
    {"retention_not_cloudwatch", "log_retention_days: 2\n", 1, 21, "log_retention_days", "expected one of 1, 3, 5, 7"},
    {"dockerfile_absolute", "dockerfile: /etc/passwd\n", 1, 13, "dockerfile", "relative to the repository"},
    {"build_context_escape", "build_context: ../other\n", 1, 16, "build_context", "inside the repository"},
    {"environment_list", "environment:\n  - A=1\n", 2, 3, "environment", "expected a map of NAME: value"},
    {"environment_bad_name", "environment:\n  1ABC: x\n", 2, 3, "environment", "expected variable names like API_URL"},
    {"environment_nested", "environment:\n  A:\n    b: c\n", 2, 3, "environment",
     "expected a string, number or boolean"},
    {"environment_reserved", "environment:\n  PORT: 1\n", 2, 3, "environment", "set by the runtime"},
    {"secrets_empty_value", "secrets:\n  KEY: \"\"\n", 2, 3, "secrets",
     "expected the name of a secret in the server's secret store"},
    {"secrets_env_reference", "ttl: 4h\nsecrets:\n  T: env:IDP_GITHUB_TOKEN\n", 3, 3, "secrets",
     "env: references are not allowed"},
    {"secrets_file_reference", "secrets:\n  K: file:/etc/shadow\n", 2, 3, "secrets",
     "file: references are not allowed"},
    {"secrets_not_a_name", "secrets:\n  K: \"pass word\"\n", 2, 3, "secrets", "a value in git is no secret"},
    {"schedule_garbage", "schedule_expression: every hour\n", 1, 22, "schedule_expression", "invalid schedule"},
    {"schedule_bad_cron", "schedule_expression: cron(61 * * * ? *)\n", 1, 22, "schedule_expression", "at column 6"},
    {"s3_not_arn", "s3_bucket_arn: my-bucket\n", 1, 16, "s3_bucket_arn", "expected an S3 bucket ARN"},
    {"shared_networking_text", "use_shared_networking: maybe\n", 1, 24, "use_shared_networking",
     "expected true or false"},
    {"region_bad", "region: europe\n", 1, 9, "region", "expected an AWS region like eu-west-1"},
    {"local_not_map", "local: node x.js\n", 1, 8, "local", "expected a map of settings"},
    {"local_start_unterminated", "local:\n  start: \"node 'x.js\"\n", 2, 10, "local.start",
     "unterminated single quote"},
    {"local_build_list", "local:\n  build: [npm, ci]\n", 2, 10, "local.build", "got a list"},
    {"seed_not_sql", "database:\n  seed: db/seed.txt\n", 2, 9, "database.seed", "expected a path to a .sql file"},
    {"static_dir_escape", "static:\n  dir: ../../etc\n", 2, 8, "static.dir", "inside the repository"},
    {"static_spa_text", "static:\n  spa: sometimes\n", 2, 8, "static.spa", "expected true or false"},
};

INSTANTIATE_TEST_SUITE_P(EveryKey, BadConfigTest, ::testing::ValuesIn(k_bad_cases),
                         [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(AppConfigTest, CollectsEveryErrorNotJustTheFirst) {
  auto r = parse_app_config("ttl: forever\ncpu: 3\ncolour: red\n", "c.yml");
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].key, "ttl");
  EXPECT_EQ(r.errors[1].key, "cpu");
  EXPECT_EQ(r.errors[2].key, "colour");
}

TEST(AppConfigTest, ErrorMessageFormat) {
  auto r = parse_app_config("ttl: 2 days\n", ".idp/config.yml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].to_string(),
            ".idp/config.yml:1:6: key \"ttl\": expected a duration like 30m, 4h, 7d or 2w, got \"2 days\"");
}

TEST(AppConfigTest, FargateTable) {
  EXPECT_TRUE(is_valid_fargate_combination(256, 512));
  EXPECT_TRUE(is_valid_fargate_combination(256, 2048));
  EXPECT_FALSE(is_valid_fargate_combination(256, 3072));
  EXPECT_TRUE(is_valid_fargate_combination(512, 4096));
  EXPECT_FALSE(is_valid_fargate_combination(512, 512));
  EXPECT_TRUE(is_valid_fargate_combination(4096, 30720));
  EXPECT_FALSE(is_valid_fargate_combination(4096, 31744));
  EXPECT_TRUE(is_valid_fargate_combination(16384, 122880));
}

// Issue 9: repository config names secrets of the server's store (or ARNs); the message
// for a bad one names its own variable and never echoes what may be a committed value.
TEST(AppConfigTest, SecretsAreStoreNamesOrArns) {
  auto r = parse_app_config("secrets:\n  DB_PASSWORD: db-password\n  KEY: team.key_2\n"
                            "  AWS: arn:aws:ssm:eu-west-1:1:parameter/x\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  EXPECT_EQ(r.config.secrets.at("DB_PASSWORD"), "db-password");
  EXPECT_EQ(r.config.secrets.at("KEY"), "team.key_2");
  EXPECT_EQ(r.config.secrets.size(), 3u);
  auto bad = parse_app_config("secrets:\n  A: db-password\n  B: env:HOME\n  C: \"hunter2 is my password\"\n");
  ASSERT_EQ(bad.errors.size(), 2u);
  EXPECT_NE(bad.errors[0].message.find("secret \"B\""), std::string::npos) << bad.errors[0].message;
  EXPECT_NE(bad.errors[0].message.find("like B: db-password"), std::string::npos) << bad.errors[0].message;
  EXPECT_NE(bad.errors[1].message.find("like C: db-password"), std::string::npos) << bad.errors[1].message;
  EXPECT_EQ(bad.errors[1].message.find("hunter2"), std::string::npos) << bad.errors[1].message;
  EXPECT_TRUE(is_secret_store_name("db-password"));
  EXPECT_FALSE(is_secret_store_name("-x"));
  EXPECT_FALSE(is_secret_store_name("env:X"));
  EXPECT_FALSE(is_secret_store_name(std::string(65, 'a')));
}

// yaml-cpp passes any bytes through; JSON (the store, the API) needs UTF-8 (fuzz/RESULTS.md
// finding 1). Such text is refused where it is, not accepted and mangled later.
TEST(AppConfigTest, TextThatIsNotUtf8IsRefusedWithItsPosition) {
  auto r = parse_app_config("ttl: 4h\nsecrets:\n  KEY: \"\xa2\"\nenvironment:\n  \xff: x\n", ".idp/config.yml");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].to_string(), ".idp/config.yml:3:8: key \"secrets.KEY\": the value is not valid UTF-8");
  EXPECT_EQ(r.errors[1].to_string(), ".idp/config.yml:5:3: key \"environment\": the key \"\\xff\" is not valid UTF-8");
  EXPECT_TRUE(r.config.secrets.empty());
  auto loaded = load_app_config("local:\n  start: \"node \xc3\x28.js\"\n", ".idp/config.yml");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().message, ".idp/config.yml:2:10: key \"local.start\": the value is not valid UTF-8");
}
