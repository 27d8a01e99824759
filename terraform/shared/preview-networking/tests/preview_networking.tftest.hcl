mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-3a", "eu-west-3b", "eu-west-3c"]
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/idp-shared-preview-vpc-flow-logs"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-3:123456789012:log-group:/vpc/idp-shared-preview"
    }
  }
}

variables {
  aws_region = "eu-west-3"
}

run "defaults" {
  command = apply

  assert {
    condition     = output.network_name == "shared-preview" && output.vpc_cidr_block == "10.100.0.0/16"
    error_message = "shared network defaults"
  }
  assert {
    condition     = length(output.nat_gateway_ids) == 1 && length(output.private_subnet_ids) == 2
    error_message = "one NAT, two AZs by default"
  }
  assert {
    condition     = local.tags["idp:purpose"] == "preview-networking" && local.tags["idp:managed"] == "true"
    error_message = "stack tags"
  }
}

run "ha_and_flow_logs" {
  command = apply

  variables {
    high_availability = true
    az_count          = 3
    enable_flow_logs  = true
  }

  assert {
    condition     = length(output.nat_gateway_ids) == 3
    error_message = "HA: one NAT per AZ"
  }
  assert {
    condition     = module.network.flow_log_group_name == "/vpc/idp-shared-preview"
    error_message = "flow logs"
  }
}
