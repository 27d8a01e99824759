output "network_name" {
  description = "Value of the idp:network tag (templates' shared_network_name)."
  value       = var.network_name
}

output "vpc_id" {
  description = "ID of the shared VPC."
  value       = module.network.vpc_id
}

output "vpc_cidr_block" {
  description = "CIDR of the shared VPC."
  value       = module.network.vpc_cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets."
  value       = module.network.public_subnet_ids
}

output "private_subnet_ids" {
  description = "Private subnets."
  value       = module.network.private_subnet_ids
}

output "nat_gateway_ids" {
  description = "NAT gateways."
  value       = module.network.nat_gateway_ids
}
