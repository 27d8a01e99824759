# Shared ECR repository for preview images + optional Docker Hub pull-through cache
# (seed #14).

data "aws_caller_identity" "current" {}

locals {
  pull_through_cache = var.dockerhub_username != ""
  cache_prefix       = "docker-hub"
  registry           = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${var.aws_region}.amazonaws.com"
}

resource "aws_ecr_repository" "preview" {
  name                 = var.repository_name
  image_tag_mutability = "MUTABLE"
  force_delete         = true

  image_scanning_configuration {
    scan_on_push = var.scan_on_push
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

# Per-environment safe: only AGE-based expiry. The original kept "the last 50
# preview-* images" in total, so a burst of pushes on other branches could delete
# the image a long-lived environment was still running (its next task start would
# fail). Now an image is only removed once it is older than tagged_expire_days; the
# driver deletes a destroyed environment's images ({env}-*) itself.
resource "aws_ecr_lifecycle_policy" "preview" {
  repository = aws_ecr_repository.preview.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expire_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Expire tagged images older than the longest environment lifetime"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*"]
          countType      = "sinceImagePushed"
          countUnit      = "days"
          countNumber    = var.tagged_expire_days
        }
        action = { type = "expire" }
      },
    ]
  })
}

resource "aws_secretsmanager_secret" "dockerhub" {
  count = local.pull_through_cache ? 1 : 0

  # ECR requires the ecr-pullthroughcache/ prefix.
  name                    = "ecr-pullthroughcache/${local.cache_prefix}"
  description             = "Docker Hub credentials for the ECR pull-through cache."
  recovery_window_in_days = 0
}

resource "aws_secretsmanager_secret_version" "dockerhub" {
  count = local.pull_through_cache ? 1 : 0

  secret_id = aws_secretsmanager_secret.dockerhub[0].id
  secret_string = jsonencode({
    username    = var.dockerhub_username
    accessToken = var.dockerhub_access_token
  })
}

resource "aws_ecr_pull_through_cache_rule" "dockerhub" {
  count = local.pull_through_cache ? 1 : 0

  ecr_repository_prefix = local.cache_prefix
  upstream_registry_url = "registry-1.docker.io"
  credential_arn        = aws_secretsmanager_secret.dockerhub[0].arn

  depends_on = [aws_secretsmanager_secret_version.dockerhub]

  lifecycle {
    precondition {
      condition     = var.dockerhub_access_token != ""
      error_message = "dockerhub_access_token is required when dockerhub_username is set."
    }
  }
}
