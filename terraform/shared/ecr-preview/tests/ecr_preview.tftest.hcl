mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"
    }
  }
}

variables {
  aws_region = "eu-west-1"
}

run "repository_and_age_based_lifecycle" {
  command = plan

  assert {
    condition     = aws_ecr_repository.preview.name == "mini-idp-preview" && aws_ecr_repository.preview.force_delete
    error_message = "repository"
  }
  assert {
    condition     = alltrue([for r in jsondecode(aws_ecr_lifecycle_policy.preview.policy).rules : r.selection.countType == "sinceImagePushed"])
    error_message = "lifecycle rules must be age-based only (no imageCountMoreThan across environments)"
  }
  assert {
    condition     = jsondecode(aws_ecr_lifecycle_policy.preview.policy).rules[1].selection.countNumber == 30
    error_message = "tagged images expire after tagged_expire_days"
  }
  assert {
    condition     = length(aws_ecr_pull_through_cache_rule.dockerhub) == 0 && length(aws_secretsmanager_secret.dockerhub) == 0 && output.pull_through_cache_prefix == ""
    error_message = "no pull-through cache without a Docker Hub user"
  }
}

run "pull_through_cache_with_username" {
  command = apply

  variables {
    dockerhub_username     = "idpbot"
    dockerhub_access_token = "dckr_pat_mock"
  }

  assert {
    condition     = aws_ecr_pull_through_cache_rule.dockerhub[0].ecr_repository_prefix == "docker-hub" && aws_ecr_pull_through_cache_rule.dockerhub[0].upstream_registry_url == "registry-1.docker.io"
    error_message = "cache rule"
  }
  assert {
    condition     = aws_secretsmanager_secret.dockerhub[0].name == "ecr-pullthroughcache/docker-hub" && aws_secretsmanager_secret.dockerhub[0].recovery_window_in_days == 0
    error_message = "credentials secret"
  }
  assert {
    condition     = aws_ecr_pull_through_cache_rule.dockerhub[0].credential_arn == aws_secretsmanager_secret.dockerhub[0].arn
    error_message = "the rule uses the secret"
  }
  assert {
    condition     = output.pull_through_cache_prefix == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub"
    error_message = "cache prefix output (region flows in)"
  }
}

run "token_required_with_username" {
  command = plan

  variables {
    dockerhub_username = "idpbot"
  }

  expect_failures = [aws_ecr_pull_through_cache_rule.dockerhub]
}
