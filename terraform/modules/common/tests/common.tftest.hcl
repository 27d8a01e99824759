mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-pr-1-ecs-task"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/app-secrets-AbCdEf"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/ecs/idp-pr-1"
    }
  }
}

variables {
  environment_name = "pr-1"
  aws_region       = "eu-central-1"
}

run "names_and_log_group" {
  command = plan

  variables {
    log_retention_days = 14
  }

  assert {
    condition     = aws_iam_role.execution.name == "idp-pr-1-ecs-task-execution" && aws_iam_role.task.name == "idp-pr-1-ecs-task"
    error_message = "role names"
  }
  assert {
    condition     = aws_cloudwatch_log_group.this.name == "/ecs/idp-pr-1" && aws_cloudwatch_log_group.this.retention_in_days == 14
    error_message = "log group must be /ecs/idp-{env} with the given retention"
  }
  assert {
    condition     = aws_secretsmanager_secret.app.name == "idp-pr-1/app-secrets" && aws_secretsmanager_secret.app.recovery_window_in_days == 0
    error_message = "app secret must be idp-{env}/app-secrets with recovery window 0"
  }
  assert {
    condition     = jsondecode(aws_iam_role.execution.assume_role_policy).Statement[0].Principal.Service == "ecs-tasks.amazonaws.com"
    error_message = "execution role trust"
  }
  assert {
    condition     = aws_iam_role_policy_attachment.execution_managed.policy_arn == "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    error_message = "managed execution policy"
  }
}

run "no_references_only_app_secret" {
  command = apply

  assert {
    condition     = length(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement) == 1
    error_message = "only the Secrets Manager statement without references"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource == ["arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/app-secrets-AbCdEf"]
    error_message = "the execution role must read exactly the app secret"
  }
}

run "exactly_the_referenced_secrets" {
  command = apply

  variables {
    secret_variables = {
      API_KEY     = "arn:aws:secretsmanager:eu-central-1:999999999999:secret:team/api-key-XyZ123"
      DB_USER     = "arn:aws:secretsmanager:eu-central-1:999999999999:secret:team/db-Qw3rty:username::"
      DB_PASSWORD = "arn:aws:secretsmanager:eu-central-1:999999999999:secret:team/db-Qw3rty:password:AWSCURRENT:"
      TOKEN       = "arn:aws:ssm:eu-central-1:999999999999:parameter/team/token"
      PLAIN_PARAM = "/team/plain"
      APP_KEY     = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/app-secrets-AbCdEf:KEY::"
    }
  }

  assert {
    condition = toset(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource) == toset([
      "arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/app-secrets-AbCdEf",
      "arn:aws:secretsmanager:eu-central-1:999999999999:secret:team/api-key-XyZ123",
      "arn:aws:secretsmanager:eu-central-1:999999999999:secret:team/db-Qw3rty",
    ])
    error_message = "GetSecretValue must cover exactly the app secret + referenced secret ARNs (json-key suffix stripped)"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource) == 3
    error_message = "secret ARNs must be de-duplicated"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Action == ["secretsmanager:GetSecretValue"]
    error_message = "secrets statement action"
  }
  assert {
    condition = (
      jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[1].Action == ["ssm:GetParameters"] &&
      toset(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[1].Resource) == toset([
        "arn:aws:ssm:eu-central-1:999999999999:parameter/team/token",
        "arn:aws:ssm:eu-central-1:123456789012:parameter/team/plain",
      ])
    )
    error_message = "ssm:GetParameters must cover exactly the referenced parameters (bare names resolved in the region)"
  }
  assert {
    condition     = length(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement) == 2
    error_message = "no statements beyond secrets + parameters"
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement :
      alltrue([for r in s.Resource : !strcontains(r, "*")])
    ])
    error_message = "no wildcard resources"
  }
}

run "additional_arns_kms_and_pull_through_cache" {
  command = apply

  variables {
    additional_secret_arns          = ["arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/rds/credentials-AAAAAA"]
    secret_kms_key_arns             = ["arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]
    ecr_pull_through_cache_prefixes = ["docker-hub"]
  }

  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, "arn:aws:secretsmanager:eu-central-1:123456789012:secret:idp-pr-1/rds/credentials-AAAAAA")
    error_message = "additional secret ARNs must be readable"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[1].Action == ["kms:Decrypt"]
    error_message = "kms statement"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[2].Resource == ["arn:aws:ecr:eu-central-1:123456789012:repository/docker-hub/*"]
    error_message = "pull-through-cache statement must be scoped to the prefix in the region"
  }
}

run "longest_env_name_fits" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
  }

  assert {
    condition     = length(aws_iam_role.execution.name) <= 64 && length(aws_iam_role.task.name) <= 64
    error_message = "IAM role names must be <= 64 chars"
  }
}

run "china_partition" {
  command = plan

  variables {
    aws_region = "cn-north-1"
  }

  assert {
    condition     = aws_iam_role_policy_attachment.execution_managed.policy_arn == "arn:aws-cn:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    error_message = "partition must follow the region"
  }
}

run "roles_carry_the_permissions_boundary" {
  command = plan

  variables {
    permissions_boundary_arn = "arn:aws:iam::123456789012:policy/idp-preview-boundary"
  }

  assert {
    condition     = aws_iam_role.execution.permissions_boundary == "arn:aws:iam::123456789012:policy/idp-preview-boundary" && aws_iam_role.task.permissions_boundary == "arn:aws:iam::123456789012:policy/idp-preview-boundary"
    error_message = "every role of the module must carry the configured permissions boundary"
  }
}

run "rejects_a_boundary_that_is_no_policy_arn" {
  command = plan

  variables {
    permissions_boundary_arn = "idp-preview-boundary"
  }

  expect_failures = [var.permissions_boundary_arn]
}
