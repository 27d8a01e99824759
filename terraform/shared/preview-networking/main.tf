# The shared preview VPC (seed #7): deployed once per region, used by every
# environment created with use_shared_networking = true.

module "network" {
  source = "../../modules/networking"

  environment_name   = var.network_name
  aws_region         = var.aws_region
  vpc_cidr           = var.vpc_cidr
  az_count           = var.az_count
  high_availability  = var.high_availability
  enable_flow_logs   = var.enable_flow_logs
  log_retention_days = var.log_retention_days
  tags               = { "idp:shared" = "true" }
}
