output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "IDs of the public subnets, one per AZ."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets, one per AZ."
  value       = aws_subnet.private[*].id
}

output "availability_zones" {
  description = "AZs the subnets are in."
  value       = local.azs
}

output "nat_gateway_ids" {
  description = "IDs of the NAT gateways (1, or one per AZ with high_availability)."
  value       = aws_nat_gateway.this[*].id
}

output "flow_log_group_name" {
  description = "Flow-log CloudWatch log group name, or null when flow logs are off."
  value       = var.enable_flow_logs ? aws_cloudwatch_log_group.flow_logs[0].name : null
}
