mock_provider "aws" {
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:us-west-2:123456789012:cluster/idp-job-1-scheduled-cluster"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:us-west-2:123456789012:task-definition/idp-job-1-scheduled-task:3"
      arn_without_revision = "arn:aws:ecs:us-west-2:123456789012:task-definition/idp-job-1-scheduled-task"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-job-1-events-ecs-role"
    }
  }
}

variables {
  environment_name        = "job-1"
  aws_region              = "us-west-2"
  vpc_id                  = "vpc-0123"
  private_subnet_ids      = ["subnet-c", "subnet-d"]
  task_execution_role_arn = "arn:aws:iam::123456789012:role/idp-job-1-ecs-task-execution"
  task_role_arn           = "arn:aws:iam::123456789012:role/idp-job-1-ecs-task"
  task_role_name          = "idp-job-1-ecs-task"
  log_group_name          = "/ecs/idp-job-1"
  schedule_expression     = "cron(0 6 ? * MON-FRI *)"
  container_image         = "busybox:1.36"
}

run "rule_uses_the_expression" {
  command = apply

  assert {
    condition     = aws_cloudwatch_event_rule.this.schedule_expression == "cron(0 6 ? * MON-FRI *)" && aws_cloudwatch_event_rule.this.state == "ENABLED"
    error_message = "the rule must use schedule_expression"
  }
  assert {
    condition     = aws_cloudwatch_event_target.this.ecs_target[0].task_definition_arn == aws_ecs_task_definition.this.arn && aws_cloudwatch_event_target.this.arn == aws_ecs_cluster.this.arn
    error_message = "the target runs this task definition on this cluster"
  }
  assert {
    condition     = aws_cloudwatch_event_target.this.role_arn == aws_iam_role.events.arn && jsondecode(aws_iam_role.events.assume_role_policy).Statement[0].Principal.Service == "events.amazonaws.com"
    error_message = "events role wiring / trust"
  }
  assert {
    condition = (
      jsondecode(aws_iam_role_policy.events_run_task.policy).Statement[0].Action == ["ecs:RunTask"] &&
      jsondecode(aws_iam_role_policy.events_run_task.policy).Statement[0].Resource == ["arn:aws:ecs:us-west-2:123456789012:task-definition/idp-job-1-scheduled-task:*"]
    )
    error_message = "ecs:RunTask on this task family only"
  }
  assert {
    condition = (
      jsondecode(aws_iam_role_policy.events_run_task.policy).Statement[1].Action == ["iam:PassRole"] &&
      toset(jsondecode(aws_iam_role_policy.events_run_task.policy).Statement[1].Resource) == toset([var.task_execution_role_arn, var.task_role_arn])
    )
    error_message = "iam:PassRole on exactly the two task roles"
  }
  assert {
    condition     = length(aws_iam_role_policy.s3_read) == 0
    error_message = "no S3 policy without s3_bucket_arn"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].logConfiguration.options["awslogs-region"] == "us-west-2"
    error_message = "aws_region must flow into the awslogs configuration"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].image == "busybox:1.36"
    error_message = "image"
  }
}

run "rate_expression_and_s3_access" {
  command = apply

  variables {
    schedule_expression = "rate(15 minutes)"
    s3_bucket_arn       = "arn:aws:s3:::team-data-bucket"
  }

  assert {
    condition     = aws_cloudwatch_event_rule.this.schedule_expression == "rate(15 minutes)"
    error_message = "rate expression"
  }
  assert {
    condition     = length(aws_iam_role_policy.s3_read) == 1 && aws_iam_role_policy.s3_read[0].role == "idp-job-1-ecs-task"
    error_message = "S3 read policy must be attached to the task role"
  }
  assert {
    condition = (
      jsondecode(aws_iam_role_policy.s3_read[0].policy).Statement[0].Resource == ["arn:aws:s3:::team-data-bucket"] &&
      jsondecode(aws_iam_role_policy.s3_read[0].policy).Statement[1].Resource == ["arn:aws:s3:::team-data-bucket/*"] &&
      jsondecode(aws_iam_role_policy.s3_read[0].policy).Statement[1].Action == ["s3:GetObject"]
    )
    error_message = "S3 read policy scope"
  }
}

run "rejects_invalid_schedule" {
  command = plan

  variables {
    schedule_expression = "every 5 minutes"
  }

  expect_failures = [var.schedule_expression]
}

run "rejects_rate_with_wrong_unit_plural" {
  command = plan

  variables {
    schedule_expression = "rate(1 hours)"
  }

  expect_failures = [var.schedule_expression]
}

run "longest_env_name_fits" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
  }

  assert {
    condition     = length(aws_cloudwatch_event_rule.this.name) <= 64 && length(aws_iam_role.events.name) <= 64
    error_message = "EventBridge rule / IAM role names must be <= 64 chars"
  }
}

run "events_role_carries_the_permissions_boundary" {
  command = plan

  variables {
    permissions_boundary_arn = "arn:aws:iam::123456789012:policy/idp-preview-boundary"
  }

  assert {
    condition     = aws_iam_role.events.permissions_boundary == "arn:aws:iam::123456789012:policy/idp-preview-boundary"
    error_message = "the EventBridge role must carry the configured permissions boundary"
  }
}

run "egress_is_open_by_default" {
  command = plan

  assert {
    condition     = keys(aws_vpc_security_group_egress_rule.task_all) == ["0.0.0.0/0"]
    error_message = "without egress_cidrs the task keeps one rule to 0.0.0.0/0"
  }
}

run "an_untrusted_task_reaches_only_egress_cidrs" {
  command = plan

  variables {
    egress_cidrs = ["10.0.0.0/16", "2001:db8::/32"]
  }

  assert {
    condition     = length(aws_vpc_security_group_egress_rule.task_all) == 2
    error_message = "one egress rule per network, and no 0.0.0.0/0"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.task_all["10.0.0.0/16"].cidr_ipv4 == "10.0.0.0/16" && aws_vpc_security_group_egress_rule.task_all["10.0.0.0/16"].cidr_ipv6 == null
    error_message = "an IPv4 network is a cidr_ipv4 rule"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.task_all["2001:db8::/32"].cidr_ipv6 == "2001:db8::/32" && aws_vpc_security_group_egress_rule.task_all["2001:db8::/32"].cidr_ipv4 == null
    error_message = "an IPv6 network is a cidr_ipv6 rule"
  }
}

run "rejects_an_egress_cidr_that_is_no_network" {
  command = plan

  variables {
    egress_cidrs = ["registry.npmjs.org"]
  }

  expect_failures = [var.egress_cidrs]
}
