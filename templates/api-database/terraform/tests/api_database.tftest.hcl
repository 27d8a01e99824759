# Offline tests of the api-database root module (aws provider mocked).

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-2a", "eu-west-2b"]
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
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "mocked-password-for-tests-only-1A"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-mock-role"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-2:123456789012:log-group:/ecs/idp-db-3"
    }
  }
  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/app/idp-db-3/0123456789abcdef"
      dns_name = "idp-db-3-alb-1.eu-west-2.elb.amazonaws.com"
      zone_id  = "ZHURV8PSTC4K8"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:eu-west-2:123456789012:targetgroup/idp-db-3-tg/0123456789abcdef"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:eu-west-2:123456789012:cluster/idp-db-3-cluster"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:eu-west-2:123456789012:task-definition/idp-db-3-task:1"
    }
  }
  mock_resource "aws_db_instance" {
    defaults = {
      address  = "idp-db-3-postgres.abcdefghijkl.eu-west-2.rds.amazonaws.com"
      port     = 5432
      endpoint = "idp-db-3-postgres.abcdefghijkl.eu-west-2.rds.amazonaws.com:5432"
    }
  }
}

override_resource {
  target = module.common.aws_secretsmanager_secret.app
  values = {
    arn = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/app-secrets-AAAAAA"
  }
}

override_resource {
  target = module.rds.aws_secretsmanager_secret.db
  values = {
    arn = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/rds/credentials-BBBBBB"
  }
}

variables {
  environment_name = "db-3"
  owner            = "dev@example.com"
  created_at       = "2026-03-25T10:00:00Z"
  expires_at       = "2026-04-01T10:00:00Z"
  aws_region       = "eu-west-2"
}

run "db_env_and_secrets_injected" {
  command = apply

  variables {
    environment_variables = { DB_NAME = "user-wins", APP_MODE = "preview" }
    secret_variables      = { API_KEY = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:team/api-CCCCCC:key::" }
  }

  assert {
    condition = module.ecs_service.container_definition.environment == [
      { name = "APP_MODE", value = "preview" },
      { name = "DB_HOST", value = "idp-db-3-postgres.abcdefghijkl.eu-west-2.rds.amazonaws.com" },
      { name = "DB_NAME", value = "user-wins" },
      { name = "DB_PORT", value = "5432" },
    ]
    error_message = "DB_HOST/DB_PORT/DB_NAME must be injected, with user values winning"
  }
  assert {
    condition = module.ecs_service.container_definition.secrets == [
      { name = "API_KEY", valueFrom = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:team/api-CCCCCC:key::" },
      { name = "DB_PASSWORD", valueFrom = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/rds/credentials-BBBBBB:password::" },
      { name = "DB_USER", valueFrom = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/rds/credentials-BBBBBB:username::" },
    ]
    error_message = "DB_USER/DB_PASSWORD must come from the DB secret"
  }
  assert {
    condition = toset(module.common.readable_secret_arns) == toset([
      "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/app-secrets-AAAAAA",
      "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/rds/credentials-BBBBBB",
      "arn:aws:secretsmanager:eu-west-2:123456789012:secret:team/api-CCCCCC",
    ]) && length(module.common.readable_secret_arns) == 3
    error_message = "the execution role must read exactly the app secret, the DB secret and the referenced secret"
  }
  assert {
    condition     = output.db_credentials_secret_arn == "arn:aws:secretsmanager:eu-west-2:123456789012:secret:idp-db-3/rds/credentials-BBBBBB" && output.db_port == 5432 && output.db_host == "idp-db-3-postgres.abcdefghijkl.eu-west-2.rds.amazonaws.com"
    error_message = "DB outputs"
  }
  assert {
    condition     = local.tags["idp:template"] == "api-database"
    error_message = "template tag"
  }
}

run "shared_networking" {
  command = apply

  variables {
    use_shared_networking = true
  }

  assert {
    condition     = length(module.networking) == 0 && output.vpc_id == "vpc-0shared"
    error_message = "shared networking: no VPC/NAT, shared VPC used"
  }
}
