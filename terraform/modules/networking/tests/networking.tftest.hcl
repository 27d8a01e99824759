# Offline unit tests: the aws provider is mocked, nothing reaches AWS.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-pr-1-vpc-flow-logs"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/idp-pr-1"
    }
  }
}

variables {
  environment_name = "pr-1"
  aws_region       = "eu-west-1"
}

run "defaults_two_azs_single_nat_no_flow_logs" {
  command = plan

  assert {
    condition     = length(aws_subnet.public) == 2 && length(aws_subnet.private) == 2
    error_message = "expected 2 public and 2 private subnets"
  }
  assert {
    condition     = aws_subnet.public[0].availability_zone == "eu-west-1a" && aws_subnet.private[1].availability_zone == "eu-west-1b"
    error_message = "subnets must use the first two AZs"
  }
  assert {
    condition     = aws_subnet.public[1].cidr_block == "10.0.1.0/24" && aws_subnet.private[0].cidr_block == "10.0.10.0/24"
    error_message = "subnet CIDR layout changed"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_eip.nat) == 1 && length(aws_route_table.private) == 1
    error_message = "without HA there must be exactly one NAT, one EIP, one private route table"
  }
  assert {
    condition     = length(aws_flow_log.this) == 0 && length(aws_cloudwatch_log_group.flow_logs) == 0 && length(aws_iam_role.flow_logs) == 0
    error_message = "flow logs must be off by default"
  }
  assert {
    condition     = aws_vpc.this.tags["idp:network"] == "pr-1" && aws_subnet.private[0].tags["idp:tier"] == "private" && aws_subnet.public[0].tags["idp:tier"] == "public"
    error_message = "lookup tags missing"
  }
  assert {
    condition     = aws_vpc.this.tags["Name"] == "idp-pr-1-vpc"
    error_message = "VPC name tag"
  }
}

run "ha_two_azs_one_nat_per_az" {
  command = plan

  variables {
    high_availability = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2 && length(aws_eip.nat) == 2
    error_message = "HA must create one NAT gateway and one EIP per AZ (2)"
  }
  assert {
    condition     = length(aws_route_table.private) == 2 && length(aws_route.private_nat) == 2
    error_message = "HA must create one private route table + default route per AZ"
  }
}

run "ha_three_azs_one_nat_per_az" {
  command = apply

  variables {
    high_availability = true
    az_count          = 3
  }

  assert {
    condition     = length(aws_nat_gateway.this) == length(output.availability_zones) && length(aws_nat_gateway.this) == 3
    error_message = "HA NAT count must equal the number of AZs (3)"
  }
  assert {
    condition     = alltrue([for i in range(3) : aws_nat_gateway.this[i].subnet_id == aws_subnet.public[i].id])
    error_message = "each NAT must sit in its own AZ's public subnet"
  }
  assert {
    condition     = alltrue([for i in range(3) : aws_route_table_association.private[i].route_table_id == aws_route_table.private[i].id])
    error_message = "each private subnet must route through its own AZ's route table"
  }
}

run "flow_logs_enabled" {
  command = apply

  variables {
    enable_flow_logs   = true
    log_retention_days = 7
  }

  assert {
    condition     = length(aws_flow_log.this) == 1 && aws_flow_log.this[0].traffic_type == "ALL" && aws_flow_log.this[0].log_destination_type == "cloud-watch-logs"
    error_message = "flow log must be created when enabled"
  }
  assert {
    condition     = aws_cloudwatch_log_group.flow_logs[0].name == "/vpc/idp-pr-1" && aws_cloudwatch_log_group.flow_logs[0].retention_in_days == 7
    error_message = "flow-log group must be /vpc/idp-{env} with retention = log_retention_days"
  }
  assert {
    condition     = jsondecode(aws_iam_role.flow_logs[0].assume_role_policy).Statement[0].Principal.Service == "vpc-flow-logs.amazonaws.com"
    error_message = "flow-log role must be trusted by vpc-flow-logs.amazonaws.com"
  }
  assert {
    condition     = jsondecode(aws_iam_role.flow_logs[0].assume_role_policy).Statement[0].Condition.ArnLike["aws:SourceArn"] == "arn:aws:ec2:eu-west-1:123456789012:vpc-flow-log/*"
    error_message = "trust policy must be scoped to this account and region (region flows in)"
  }
  assert {
    condition = (
      toset(jsondecode(aws_iam_role_policy.flow_logs[0].policy).Statement[0].Action) == toset(["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups", "logs:DescribeLogStreams"]) &&
      toset(jsondecode(aws_iam_role_policy.flow_logs[0].policy).Statement[0].Resource) == toset(["arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/idp-pr-1", "arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/idp-pr-1:*"]) &&
      length(jsondecode(aws_iam_role_policy.flow_logs[0].policy).Statement) == 1
    )
    error_message = "flow-log policy must be least privilege on the flow-log group only"
  }
  assert {
    condition     = aws_flow_log.this[0].iam_role_arn == aws_iam_role.flow_logs[0].arn && aws_flow_log.this[0].vpc_id == aws_vpc.this.id
    error_message = "flow log wiring"
  }
  assert {
    condition     = length(aws_iam_role.flow_logs[0].name) <= 64
    error_message = "IAM role name too long"
  }
}

run "longest_env_name_fits" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
    enable_flow_logs = true
  }

  assert {
    condition     = length(aws_iam_role.flow_logs[0].name) <= 64 && length(aws_iam_role_policy.flow_logs[0].name) <= 128
    error_message = "IAM names exceed AWS limits for a 32-char env name"
  }
}

run "rejects_bad_env_name" {
  command = plan

  variables {
    environment_name = "Bad_Name"
  }

  expect_failures = [var.environment_name]
}

run "rejects_bad_retention" {
  command = plan

  variables {
    log_retention_days = 2
  }

  expect_failures = [var.log_retention_days]
}

run "flow_logs_role_carries_the_permissions_boundary" {
  command = plan

  variables {
    enable_flow_logs         = true
    permissions_boundary_arn = "arn:aws:iam::123456789012:policy/idp-preview-boundary"
  }

  assert {
    condition     = aws_iam_role.flow_logs[0].permissions_boundary == "arn:aws:iam::123456789012:policy/idp-preview-boundary"
    error_message = "the flow-logs role must carry the configured permissions boundary"
  }
}
