# Offline tests of the api-service root module (aws provider mocked).

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["ca-central-1a", "ca-central-1b", "ca-central-1d"]
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_vpc" {
    defaults = {
      id         = "vpc-0shared"
      cidr_block = "10.100.0.0/16"
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
      arn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:idp-pr-12/app-secrets-AbCdEf"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:ca-central-1:123456789012:log-group:/ecs/idp-pr-12"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:ca-central-1:123456789012:loadbalancer/app/idp-pr-12/0123456789abcdef"
      dns_name = "idp-pr-12-alb-1.ca-central-1.elb.amazonaws.com"
      zone_id  = "ZQSVJUPU6J1EY"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:ca-central-1:123456789012:targetgroup/idp-pr-12-tg/0123456789abcdef"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:ca-central-1:123456789012:cluster/idp-pr-12-cluster"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:ca-central-1:123456789012:task-definition/idp-pr-12-task:1"
    }
  }
}

variables {
  environment_name = "pr-12"
  owner            = "dev@example.com"
  created_at       = "2026-03-25T10:00:00Z"
  expires_at       = "2026-04-01T10:00:00Z"
  aws_region       = "ca-central-1"
}

run "per_env_vpc_by_default" {
  command = apply

  assert {
    condition     = length(module.networking) == 1 && length(module.shared_network) == 0
    error_message = "a per-environment VPC by default"
  }
  assert {
    condition     = length(module.networking[0].nat_gateway_ids) == 1
    error_message = "one NAT without HA"
  }
  assert {
    condition     = output.endpoint == "http://idp-pr-12-alb-1.ca-central-1.elb.amazonaws.com"
    error_message = "http endpoint without certificate"
  }
  assert {
    condition     = output.aws_region == "ca-central-1" && module.ecs_service.container_definition.logConfiguration.options["awslogs-region"] == "ca-central-1"
    error_message = "aws_region must flow into the outputs and the awslogs configuration"
  }
  assert {
    condition     = output.log_group == "/ecs/idp-pr-12" && module.ecs_service.health_check_path == "/"
    error_message = "log group / default health check"
  }
}

run "tags_on_everything_via_default_tags" {
  command = plan

  variables {
    extra_tags = { "cost-center" = "eng", "idp:owner" = "spoofed" }
  }

  assert {
    condition = local.tags == {
      "idp:environment" = "pr-12"
      "idp:owner"       = "dev@example.com"
      "idp:template"    = "api-service"
      "idp:created-at"  = "2026-03-25T10:00:00Z"
      "idp:expires-at"  = "2026-04-01T10:00:00Z"
      "idp:managed"     = "true"
      "cost-center"     = "eng"
    }
    error_message = "provider default_tags must carry the six idp:* tags (which extra_tags cannot override)"
  }
}

run "team_is_tagged_and_cannot_be_spoofed" {
  command = plan

  variables {
    team       = "payments"
    extra_tags = { "idp:team" = "someone-else" }
  }

  assert {
    condition     = local.tags["idp:team"] == "payments"
    error_message = "the owner's team (server config teams) is tagged idp:team, whatever extra_tags say"
  }
}

run "no_team_no_team_tag" {
  command = plan

  variables {
    extra_tags = { "idp:team" = "someone-else" }
  }

  assert {
    condition     = !contains(keys(local.tags), "idp:team")
    error_message = "without a team there is no idp:team tag, and extra_tags cannot add one"
  }
}

run "shared_networking_creates_no_vpc_and_no_nat" {
  command = apply

  variables {
    use_shared_networking = true
  }

  assert {
    condition     = length(module.networking) == 0
    error_message = "shared networking must not create a VPC / subnets / IGW / NAT"
  }
  assert {
    condition     = length(module.shared_network) == 1 && output.vpc_id == "vpc-0shared"
    error_message = "the shared VPC must be looked up"
  }
}

run "health_check_https_dns_and_access_logs" {
  command = apply

  variables {
    health_check_path   = "/healthz"
    acm_certificate_arn = "arn:aws:acm:ca-central-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    route53_zone_id     = "Z0123456789ABCDEFGHIJ"
    preview_domain      = "preview.example.com"
    access_logs_bucket  = "idp-alb-access-logs-123456789012-ca-central-1"
  }

  assert {
    condition     = module.ecs_service.health_check_path == "/healthz"
    error_message = "health_check_path must flow from the template into the target group"
  }
  assert {
    condition     = output.endpoint == "https://pr-12.preview.example.com"
    error_message = "https://{env}.{domain} with certificate and zone"
  }
  assert {
    condition     = module.ecs_service.https_enabled
    error_message = "HTTPS listener with a certificate"
  }
}

run "domain_without_certificate_is_http" {
  command = apply

  variables {
    route53_zone_id = "Z0123456789ABCDEFGHIJ"
    preview_domain  = "preview.example.com"
  }

  assert {
    condition     = output.endpoint == "http://pr-12.preview.example.com"
    error_message = "no broken https link without a certificate"
  }
}

run "ha_and_flow_logs_flow_through" {
  command = apply

  variables {
    high_availability = true
    az_count          = 3
    enable_flow_logs  = true
  }

  assert {
    condition     = length(module.networking[0].nat_gateway_ids) == 3
    error_message = "HA: one NAT per AZ"
  }
  assert {
    condition     = module.networking[0].flow_log_group_name == "/vpc/idp-pr-12"
    error_message = "flow logs enabled"
  }
}

run "region_is_required" {
  command = plan

  variables {
    aws_region = "not a region"
  }

  expect_failures = [var.aws_region]
}

run "rejects_too_long_env_name" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwxy"
  }

  expect_failures = [var.environment_name]
}
