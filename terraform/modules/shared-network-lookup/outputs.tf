output "vpc_id" {
  description = "ID of the shared VPC."
  value       = data.aws_vpc.shared.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the shared VPC."
  value       = data.aws_vpc.shared.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnet IDs of the shared VPC (sorted for a stable plan)."
  value       = sort(data.aws_subnets.public.ids)
}

output "private_subnet_ids" {
  description = "Private subnet IDs of the shared VPC (sorted for a stable plan)."
  value       = sort(data.aws_subnets.private.ids)
}
