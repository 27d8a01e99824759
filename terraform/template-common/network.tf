# Per-environment VPC, or a lookup of the shared one (linked from every ECS
# template). With use_shared_networking = true no VPC, subnet, IGW or NAT is created.

module "networking" {
  source = "../../../terraform/modules/networking"
  count  = var.use_shared_networking ? 0 : 1

  permissions_boundary_arn = var.permissions_boundary_arn
  environment_name         = var.environment_name
  aws_region               = var.aws_region
  vpc_cidr                 = var.vpc_cidr
  az_count                 = var.az_count
  high_availability        = var.high_availability
  enable_flow_logs         = var.enable_flow_logs
  log_retention_days       = var.log_retention_days
}

module "shared_network" {
  source = "../../../terraform/modules/shared-network-lookup"
  count  = var.use_shared_networking ? 1 : 0

  network_name = var.shared_network_name
}

locals {
  vpc_id             = var.use_shared_networking ? module.shared_network[0].vpc_id : module.networking[0].vpc_id
  public_subnet_ids  = var.use_shared_networking ? module.shared_network[0].public_subnet_ids : module.networking[0].public_subnet_ids
  private_subnet_ids = var.use_shared_networking ? module.shared_network[0].private_subnet_ids : module.networking[0].private_subnet_ids
}
