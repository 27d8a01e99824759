# Finds the shared preview VPC (terraform/shared/preview-networking) by tags, in the
# provider's region. Read-only: creates nothing. Tag lookup (instead of
# terraform_remote_state) needs only ec2:Describe* permissions, no access to another
# stack's state, follows the provider region (multi-region), and is mockable offline.

data "aws_vpc" "shared" {
  tags = {
    "idp:network" = var.network_name
  }
}

data "aws_subnets" "public" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.shared.id]
  }

  tags = {
    "idp:network" = var.network_name
    "idp:tier"    = "public"
  }
}

data "aws_subnets" "private" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.shared.id]
  }

  tags = {
    "idp:network" = var.network_name
    "idp:tier"    = "private"
  }
}

check "shared_network_complete" {
  assert {
    condition     = length(data.aws_subnets.public.ids) >= var.min_subnets && length(data.aws_subnets.private.ids) >= var.min_subnets
    error_message = "The shared network '${var.network_name}' has fewer than ${var.min_subnets} public or private subnets. Deploy terraform/shared/preview-networking in this region first."
  }
}
