// Reading what a root module declares, the variables idp passes, options and lock IDs.

#include <gtest/gtest.h>

#include "drivers/terraform/module_inspect.hpp"
#include "drivers/terraform/terraform_driver.hpp"
#include "drivers/terraform/terraform_options.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::terraform {
namespace {

TEST(ModuleInspectTest, ReadsVariablesOutputsProvidersAndSources) {
  ModuleInfo info;
  scan_hcl(R"hcl(
# variable "commented" {}
terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "~> 5.0" }
  }
}
variable "environment_name" {
  type = string
  validation {
    condition     = can(regex("^[a-z]{2}$", var.environment_name))
    error_message = "a { brace } in a string, and ${var.x} interpolation"
  }
}
variable "cpu" {
  type    = number
  default = 256
}
variable "tags" {
  type = object({ default = string })
}
variable "token" {
  sensitive = true
  default   = null
}
locals {
  doc = <<-EOT
    variable "in_heredoc" {}
  EOT
}
module "common" {
  source = "../../../terraform/modules/common"
}
output "endpoint" { value = "x" }
output "password" {
  value     = "y"
  sensitive = true
}
/* output "hidden" {} */
provider "aws" {
  region = var.aws_region
}
)hcl",
           info);
  EXPECT_EQ(info.variables.size(), 4u);
  EXPECT_FALSE(info.variables["environment_name"].has_default);
  EXPECT_TRUE(info.variables["cpu"].has_default);
  EXPECT_FALSE(info.variables["tags"].has_default) << "`default` inside a type expression is not a default";
  EXPECT_TRUE(info.variables["token"].has_default);
  EXPECT_TRUE(info.variables["token"].sensitive);
  EXPECT_EQ(info.outputs.size(), 2u);
  EXPECT_FALSE(info.outputs["endpoint"]);
  EXPECT_TRUE(info.outputs["password"]);
  EXPECT_TRUE(info.providers.count("aws"));
  ASSERT_EQ(info.module_sources.size(), 1u);
  EXPECT_EQ(info.module_sources[0], "../../../terraform/modules/common");
}

TEST(ModuleInspectTest, ReadsTheShippedTemplates) {
  auto tf = inspect_module(idp::testing::source_dir() + "/templates/tf-test/terraform");
  ASSERT_TRUE(tf.has_value()) << tf.error().message;
  EXPECT_TRUE(tf->declares("fail"));
  EXPECT_TRUE(tf->variables.at("aws_region").has_default);
  EXPECT_FALSE(tf->variables.at("created_at").has_default);
  EXPECT_TRUE(tf->providers.empty());
  auto api = inspect_module(idp::testing::source_dir() + "/templates/api-service/terraform");
  ASSERT_TRUE(api.has_value()) << api.error().message;
  EXPECT_FALSE(api->variables.at("aws_region").has_default);
  EXPECT_TRUE(api->declares("use_shared_networking"));
  EXPECT_TRUE(api->declares("container_image"));
  EXPECT_FALSE(api->declares("schedule_expression"));
  EXPECT_TRUE(api->providers.count("aws"));
  EXPECT_TRUE(api->outputs.count("service_name"));
}

TEST(ModuleInspectTest, ReadsJsonSyntax) {
  ModuleInfo info;
  ASSERT_TRUE(
      scan_tf_json(R"({"variable":{"a":{"default":1},"b":{}},"output":{"o":{"value":"x","sensitive":true}}})", info)
          .has_value());
  EXPECT_TRUE(info.variables["a"].has_default);
  EXPECT_FALSE(info.variables["b"].has_default);
  EXPECT_TRUE(info.outputs["o"]);
  EXPECT_FALSE(scan_tf_json("not json", info).has_value());
}

TEST(TfvarsTest, OnlyDeclaredVariablesWithOriginalCreatedAt) {
  ModuleInfo m;
  for (const char* v : {"environment_name", "owner", "created_at", "expires_at", "aws_region", "cpu",
                        "use_shared_networking", "secret_variables", "preview_domain", "shared_network_name"}) {
    m.variables[v];
  }
  core::Environment env;
  env.name = "pr-7";
  env.owner = "bob";
  env.created_at = 1767225600000;
  env.expires_at = 1767830400000;
  core::AppConfig c;
  c.cpu = 512;
  c.secrets["DB_PASSWORD"] = "arn:aws:ssm:eu-west-1:1:parameter/x";
  TerraformOptions o;
  o.use_shared_networking = true;
  o.preview_domain = "preview.example.com";
  o.variables["shared_network_name"] = "net-a";
  o.variables["undeclared"] = "x";
  auto vars = build_tfvars(env, c, nlohmann::json::object(), m, "eu-west-1", o);
  EXPECT_EQ(vars["created_at"], "2026-01-01T00:00:00Z");
  EXPECT_EQ(vars["expires_at"], "2026-01-08T00:00:00Z");
  EXPECT_EQ(vars["aws_region"], "eu-west-1");
  EXPECT_EQ(vars["cpu"], 512);
  EXPECT_EQ(vars["use_shared_networking"], true); // the server default
  EXPECT_EQ(vars["preview_domain"], "preview.example.com");
  EXPECT_EQ(vars["shared_network_name"], "net-a");
  EXPECT_EQ(vars["secret_variables"]["DB_PASSWORD"], "arn:aws:ssm:eu-west-1:1:parameter/x");
  EXPECT_FALSE(vars.contains("undeclared"));
  EXPECT_FALSE(vars.contains("memory"));
  EXPECT_FALSE(vars.contains("template"));
  EXPECT_FALSE(vars.contains("team")) << "bob is in no team";
  m.variables["team"];
  o.team_of = {{"bob", "payments"}};
  vars = build_tfvars(env, c, nlohmann::json::object(), m, "eu-west-1", o);
  EXPECT_EQ(vars["team"], "payments") << "tagged idp:team";

  // An explicit false in the config wins over a server default of true (the original's defect).
  c.use_shared_networking = false;
  vars = build_tfvars(env, c, nlohmann::json::object(), m, "eu-west-1", o);
  EXPECT_EQ(vars["use_shared_networking"], false);
}

TEST(TerraformOptionsTest, ParsesAndRejects) {
  auto o = TerraformOptions::parse({{"backend", "s3"},
                                    {"state_bucket", "b"},
                                    {"state_region", "eu-west-1"},
                                    {"lock_timeout_ms", 30000},
                                    {"var_extra_tags", "x"},
                                    {"binary", "tofu"}});
  ASSERT_TRUE(o.has_value()) << o.error().message;
  EXPECT_EQ(o->backend, "s3");
  EXPECT_EQ(o->lock_timeout_ms, 30000);
  EXPECT_EQ(o->variables.at("extra_tags"), "x");
  auto bad = TerraformOptions::parse({{"backend", "gcs"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_config);
  auto typo = TerraformOptions::parse({{"lock_timout_ms", 1}});
  ASSERT_FALSE(typo.has_value());
  EXPECT_NE(typo.error().message.find("did you mean \"lock_timeout_ms\"?"), std::string::npos) << typo.error().message;
  auto no_bucket = TerraformOptions::parse({{"backend", "s3"}});
  EXPECT_FALSE(no_bucket.has_value());
}

TEST(TerraformOptionsTest, SecretArnsMustMatchTheOperatorsPrefixes) {
  core::AppConfig c;
  c.secrets["OURS"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/api-key";
  // Without configured prefixes no ARN is accepted: a branch cannot grant itself a secret.
  auto none = TerraformOptions::parse(nlohmann::json::object());
  ASSERT_TRUE(none.has_value());
  auto refused = none->check_secret_arns(c.secrets);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_config);
  EXPECT_NE(refused.error().message.find("secret_arn_prefixes"), std::string::npos) << refused.error().message;

  auto o = TerraformOptions::parse(
      {{"secret_arn_prefixes", nlohmann::json::array({"arn:aws:secretsmanager:eu-west-1:123456789012:secret:previews/",
                                                      "arn:aws:ssm:eu-west-1:123456789012:parameter/previews/"})}});
  ASSERT_TRUE(o.has_value()) << o.error().message;
  EXPECT_TRUE(o->check_secret_arns(c.secrets).has_value());
  // Another account's secret, another path of ours, and a prefix trick are all refused.
  for (const char* arn : {"arn:aws:secretsmanager:eu-west-1:999999999999:secret:previews/api-key",
                          "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db",
                          "arn:aws:ssm:eu-west-1:123456789012:parameter/previewsX"}) {
    c.secrets["THEIRS"] = arn;
    auto r = o->check_secret_arns(c.secrets);
    ASSERT_FALSE(r.has_value()) << arn;
    EXPECT_NE(r.error().message.find("\"THEIRS\""), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(arn), std::string::npos) << r.error().message;
  }
  // A comma-separated string is a list too; a prefix that names no account is refused.
  auto csv = TerraformOptions::parse({{"secret_arn_prefixes", "arn:aws:ssm:eu-west-1:123456789012:parameter/a/, "
                                                              "arn:aws:ssm:eu-west-1:123456789012:parameter/b/"}});
  ASSERT_TRUE(csv.has_value()) << csv.error().message;
  EXPECT_EQ(csv->secret_arn_prefixes.size(), 2u);
  for (const char* broad : {"arn:aws:", "arn:aws:secretsmanager:eu-west-1::secret:", "previews/"}) {
    auto b = TerraformOptions::parse({{"secret_arn_prefixes", nlohmann::json::array({broad})}});
    ASSERT_FALSE(b.has_value()) << broad;
    EXPECT_NE(b.error().message.find("account"), std::string::npos) << b.error().message;
  }
}

TEST(TerraformOptionsTest, PermissionsBoundaryReachesTheTemplatesThatDeclareIt) {
  auto bad = TerraformOptions::parse({{"permissions_boundary_arn", "idp-boundary"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("ARN of an IAM policy"), std::string::npos) << bad.error().message;
  auto o =
      TerraformOptions::parse({{"permissions_boundary_arn", "arn:aws:iam::123456789012:policy/idp-preview-boundary"}});
  ASSERT_TRUE(o.has_value()) << o.error().message;
  ModuleInfo m;
  m.variables["environment_name"];
  m.variables["permissions_boundary_arn"];
  core::Environment env;
  env.name = "pr-8";
  auto vars = build_tfvars(env, core::AppConfig{}, nlohmann::json::object(), m, "eu-west-1", *o);
  EXPECT_EQ(vars["permissions_boundary_arn"], "arn:aws:iam::123456789012:policy/idp-preview-boundary");
}

TEST(TerraformEnvironmentTest, OnlyTheAllowlistReachesTerraform) {
  idp::testing::TempDir tmp("idp-tfenv");
  std::string home = tmp.path();
  ASSERT_TRUE(util::ensure_dir(home + "/.aws").has_value());
  ASSERT_TRUE(util::write_file_atomic(home + "/.aws/credentials", "[default]\n").has_value());
  std::map<std::string, std::string> daemon = {{"PATH", "/usr/bin"},
                                               {"HOME", home},
                                               {"AWS_ACCESS_KEY_ID", "AKID"},
                                               {"AWS_REGION", "eu-west-1"},
                                               {"HTTPS_PROXY", "http://proxy:3128"},
                                               {"IDP_GITHUB_TOKEN", "ghp_secret"},
                                               {"IDP_TOKEN", "idp_secret"},
                                               {"DATABASE_URL", "postgres://root@x/db"},
                                               {"TF_VAR_x", "1"},
                                               {"COMPANY_CA", "/etc/ca.pem"}};
  auto env = terraform_environment(daemon, {"COMPANY_CA"}, "/srv/idp/terraform/pr-1");
  EXPECT_EQ(env["PATH"], "/usr/bin");
  EXPECT_EQ(env["AWS_ACCESS_KEY_ID"], "AKID");
  EXPECT_EQ(env["AWS_REGION"], "eu-west-1");
  EXPECT_EQ(env["HTTPS_PROXY"], "http://proxy:3128");
  EXPECT_EQ(env["COMPANY_CA"], "/etc/ca.pem");
  EXPECT_EQ(env["HOME"], "/srv/idp/terraform/pr-1");
  EXPECT_EQ(env["TF_DATA_DIR"], "/srv/idp/terraform/pr-1/data");
  EXPECT_EQ(env["AWS_SHARED_CREDENTIALS_FILE"], home + "/.aws/credentials");
  EXPECT_EQ(env.count("AWS_CONFIG_FILE"), 0u); // no such file
  for (const char* hidden : {"IDP_GITHUB_TOKEN", "IDP_TOKEN", "DATABASE_URL", "TF_VAR_x"}) {
    EXPECT_EQ(env.count(hidden), 0u) << hidden;
  }
}

TEST(LockIdTest, ParsesTerraformLockError) {
  std::string out = "Error: Error acquiring the state lock\n\nError message: ConditionalCheckFailedException\n"
                    "Lock Info:\n  ID:        405e417b-d316-e8ec-5e91-baeb9ae64d9e\n  Path:      b/k\n"
                    "  Operation: OperationTypeApply\n";
  EXPECT_EQ(parse_lock_id(out), "405e417b-d316-e8ec-5e91-baeb9ae64d9e");
  EXPECT_EQ(parse_lock_id("no lock here"), "");
  EXPECT_EQ(parse_lock_id("apply failed: Lock Info:; ID:        abc-1; Path: b/k"), "abc-1");
}

} // namespace
} // namespace idp::drivers::terraform

namespace idp::drivers::terraform {
namespace {

// Issue 15: an approved fork's ECS tasks reach only forks.egress_cidrs (the templates'
// egress_cidrs variable, which neither drivers.terraform.var_* nor template values widen);
// with no networks listed, or on a template that cannot take them, it is not deployed.
TEST(TerraformUntrustedTest, AForksTasksGetOnlyTheEgressCidrsOrAreRefused) {
  ModuleInfo m;
  m.variables["egress_cidrs"];
  core::Environment env;
  env.name = "pr-3";
  env.profile = "untrusted";
  TerraformOptions o;
  o.untrusted_egress_cidrs = {"10.0.0.0/16"};
  o.variables["egress_cidrs"] = nlohmann::json::array({"0.0.0.0/0"});
  nlohmann::json values = {{"egress_cidrs", {"0.0.0.0/0"}}};
  auto vars = build_tfvars(env, core::AppConfig{}, values, m, "eu-west-1", o);
  EXPECT_EQ(vars["egress_cidrs"], nlohmann::json::array({"10.0.0.0/16"}));
  env.profile = "";
  o.variables.clear();
  vars = build_tfvars(env, core::AppConfig{}, nlohmann::json::object(), m, "eu-west-1", o);
  EXPECT_FALSE(vars.contains("egress_cidrs")) << "a trusted environment keeps the module's default";

  idp::testing::TempDir tmp("idp-tf-untrusted");
  auto plan = [&](const std::string& tmpl, std::vector<std::string> cidrs) {
    DriverContext ctx;
    ctx.home = tmp.path();
    ctx.untrusted.egress_cidrs = std::move(cidrs);
    auto opts = TerraformOptions::parse(
        {{"region", "eu-west-1"}, {"templates_dir", idp::testing::source_dir() + "/templates"}});
    EXPECT_TRUE(opts.has_value());
    TerraformDriver driver(ctx, *opts);
    DeploySpec spec;
    spec.env.name = "pr-3";
    spec.env.profile = "untrusted";
    spec.env.template_name = tmpl;
    spec.env.runtime = "terraform";
    spec.config.container_image = "nginx:alpine";
    return driver.plan(spec);
  };
  auto empty = plan("api-service", {});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, ErrorCode::invalid_config);
  EXPECT_NE(empty.error().message.find("forks.egress_cidrs is empty"), std::string::npos) << empty.error().message;
  auto no_var = plan("tf-test", {"10.0.0.0/16"});
  ASSERT_FALSE(no_var.has_value());
  EXPECT_NE(no_var.error().message.find("has no variable \"egress_cidrs\""), std::string::npos)
      << no_var.error().message;
  auto ok = plan("api-service", {"10.0.0.0/16"});
  EXPECT_TRUE(ok.has_value()) << ok.error().message;
  auto worker = plan("scheduled-worker", {"10.0.0.0/16"});
  EXPECT_FALSE(!worker.has_value() && worker.error().message.find("egress_cidrs") != std::string::npos)
      << worker.error().message;
}

} // namespace
} // namespace idp::drivers::terraform
