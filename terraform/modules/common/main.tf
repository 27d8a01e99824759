# Per-environment basics every ECS template needs: the ECS task execution role
# (pulls images, writes logs, reads the referenced secrets), the task role (the
# app's own identity, no permissions by default), the log group /ecs/idp-{env} and
# the app secret idp-{env}/app-secrets.

data "aws_caller_identity" "current" {}

locals {
  prefix    = "idp-${var.environment_name}"
  partition = startswith(var.aws_region, "cn-") ? "aws-cn" : (startswith(var.aws_region, "us-gov-") ? "aws-us-gov" : "aws")
  account   = data.aws_caller_identity.current.account_id

  secret_refs = [for name in sort(keys(var.secret_variables)) : var.secret_variables[name]]

  # arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX[:json-key:version-stage:version-id]
  # -> the secret ARN is the first 7 colon-separated fields.
  referenced_secret_arns = [
    for ref in local.secret_refs : regex("^(arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:[^:]+)", ref)[0]
    if can(regex("^arn:[^:]+:secretsmanager:", ref))
  ]
  # SSM: a full parameter ARN, or a bare name (same region and account, as ECS allows).
  referenced_parameter_arns = [
    for ref in local.secret_refs : (
      can(regex("^arn:[^:]+:ssm:", ref))
      ? ref
      : "arn:${local.partition}:ssm:${var.aws_region}:${local.account}:parameter/${trimprefix(ref, "/")}"
    )
    if !can(regex("^arn:[^:]+:secretsmanager:", ref))
  ]

  readable_secret_arns = distinct(concat([aws_secretsmanager_secret.app.arn], local.referenced_secret_arns, var.additional_secret_arns))

  exec_statements = concat(
    [{
      Sid      = "ReadReferencedSecrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = local.readable_secret_arns
    }],
    length(local.referenced_parameter_arns) > 0 ? [{
      Sid      = "ReadReferencedParameters"
      Effect   = "Allow"
      Action   = ["ssm:GetParameters"]
      Resource = distinct(local.referenced_parameter_arns)
    }] : [],
    length(var.secret_kms_key_arns) > 0 ? [{
      Sid      = "DecryptReferencedSecrets"
      Effect   = "Allow"
      Action   = ["kms:Decrypt"]
      Resource = distinct(var.secret_kms_key_arns)
    }] : [],
    length(var.ecr_pull_through_cache_prefixes) > 0 ? [{
      Sid      = "EcrPullThroughCacheImport"
      Effect   = "Allow"
      Action   = ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
      Resource = [for p in var.ecr_pull_through_cache_prefixes : "arn:${local.partition}:ecr:${var.aws_region}:${local.account}:repository/${p}/*"]
    }] : [],
  )

  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account } }
    }]
  })
}

resource "aws_iam_role" "execution" {
  name                 = "${local.prefix}-ecs-task-execution"
  description          = "ECS task execution role of ${local.prefix}: image pull, logs, referenced secrets."
  assume_role_policy   = local.ecs_tasks_trust
  tags                 = var.tags
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy_attachment" "execution_managed" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# Secrets IAM gap fix: exactly the app secret + every secret/parameter referenced by
# the container's secrets map (+ additional_secret_arns). Nothing broader.
resource "aws_iam_role_policy" "execution_secrets" {
  name = "${local.prefix}-ecs-exec-secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.exec_statements
  })
}

resource "aws_iam_role" "task" {
  name                 = "${local.prefix}-ecs-task"
  description          = "Application role of ${local.prefix} (no permissions unless a module adds them)."
  assume_role_policy   = local.ecs_tasks_trust
  tags                 = var.tags
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${local.prefix}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_secretsmanager_secret" "app" {
  name                    = "${local.prefix}/app-secrets"
  description             = "Application secrets for the ${local.prefix} environment."
  recovery_window_in_days = 0
  tags                    = var.tags
}

# An initial empty JSON object so that ':KEY::' references resolve to "missing key"
# rather than "secret has no value". Values written later (console/CLI) are kept.
resource "aws_secretsmanager_secret_version" "app" {
  secret_id     = aws_secretsmanager_secret.app.id
  secret_string = "{}"

  lifecycle {
    ignore_changes = [secret_string, version_stages]
  }
}
