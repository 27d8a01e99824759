# Shared one-time stack "budgets". No backend block: pass one with a
# backend_override.tf or -backend-config (state key shared/budgets/{region}/terraform.tfstate,
# see docs/aws.md). AWS Budgets are global to the account: apply this stack once per
# account; aws_region only places the SNS topic.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = merge(var.extra_tags, {
    "idp:managed" = "true"
    "idp:tool"    = "mini-idp"
    "idp:purpose" = "budgets"
  })
}
