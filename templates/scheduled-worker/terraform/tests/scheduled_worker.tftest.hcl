# Offline tests of the scheduled-worker root module (aws provider mocked).

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["sa-east-1a", "sa-east-1b", "sa-east-1c"]
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_vpc" {
    defaults = {
      id = "vpc-0shared"
    }
  }
  mock_data "aws_subnets" {
    defaults = {
      ids = ["subnet-shared-1", "subnet-shared-2"]
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-mock-role"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:sa-east-1:123456789012:secret:idp-job-2/app-secrets-AbCdEf"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:sa-east-1:123456789012:log-group:/ecs/idp-job-2"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:sa-east-1:123456789012:cluster/idp-job-2-scheduled-cluster"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:sa-east-1:123456789012:task-definition/idp-job-2-scheduled-task:1"
      arn_without_revision = "arn:aws:ecs:sa-east-1:123456789012:task-definition/idp-job-2-scheduled-task"
    }
  }
}

variables {
  environment_name    = "job-2"
  owner               = "dev@example.com"
  created_at          = "2026-03-25T10:00:00Z"
  expires_at          = "2026-04-01T10:00:00Z"
  aws_region          = "sa-east-1"
  container_image     = "ghcr.io/example/report-job:1.4.2"
  schedule_expression = "rate(1 hour)"
}

run "schedule_and_no_endpoint" {
  command = apply

  assert {
    condition     = output.endpoint == null
    error_message = "a scheduled worker has no endpoint"
  }
  assert {
    condition     = output.schedule_expression == "rate(1 hour)" && startswith(output.event_rule_name, "idp-job-2-")
    error_message = "the rule must use the expression"
  }
  assert {
    condition     = module.scheduled_task.container_definition.image == "ghcr.io/example/report-job:1.4.2"
    error_message = "the given image, never a silent alpine:latest"
  }
  assert {
    condition     = module.scheduled_task.container_definition.logConfiguration.options["awslogs-region"] == "sa-east-1"
    error_message = "region flows into the awslogs configuration"
  }
  assert {
    condition     = local.tags["idp:template"] == "scheduled-worker" && local.tags["idp:managed"] == "true"
    error_message = "tags"
  }
  assert {
    condition     = length(module.networking) == 1
    error_message = "per-environment VPC by default"
  }
}

run "shared_networking_creates_no_vpc" {
  command = apply

  variables {
    use_shared_networking = true
  }

  assert {
    condition     = length(module.networking) == 0 && output.vpc_id == "vpc-0shared"
    error_message = "shared networking: no VPC/NAT, shared VPC used"
  }
}

run "invalid_schedule_rejected" {
  command = plan

  variables {
    schedule_expression = "hourly"
  }

  expect_failures = [var.schedule_expression]
}

run "image_is_required" {
  command = plan

  variables {
    container_image = " "
  }

  expect_failures = [var.container_image]
}
