output "endpoint" {
  description = "URL of the environment (https only with a certificate)."
  value       = module.ecs_service.endpoint
}

output "aws_region" {
  description = "Region the environment lives in."
  value       = var.aws_region
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = module.ecs_service.cluster_arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.ecs_service.cluster_name
}

output "service_name" {
  description = "ECS service name."
  value       = module.ecs_service.service_name
}

output "container_name" {
  description = "Container name (for ECS Exec)."
  value       = module.ecs_service.container_name
}

output "task_definition_arn" {
  description = "Task definition ARN."
  value       = module.ecs_service.task_definition_arn
}

output "alb_dns_name" {
  description = "ALB DNS name."
  value       = module.ecs_service.alb_dns_name
}

output "alb_name" {
  description = "ALB name."
  value       = module.ecs_service.alb_name
}

output "target_group_name" {
  description = "Target group name."
  value       = module.ecs_service.target_group_name
}

output "log_group" {
  description = "CloudWatch log group of the container (idp logs)."
  value       = module.common.log_group_name
}

output "secret_arn" {
  description = "ARN of the app secret idp-{env}/app-secrets."
  value       = module.common.secret_arn
}

output "vpc_id" {
  description = "VPC the environment runs in (per-environment or shared)."
  value       = local.vpc_id
}

output "db_endpoint" {
  description = "host:port of the database."
  value       = module.rds.db_instance_endpoint
}

output "db_address" {
  description = "Host name of the database."
  value       = module.rds.db_instance_address
}

output "db_port" {
  description = "Port of the database."
  value       = module.rds.db_port
}

output "db_name" {
  description = "Name of the initial database."
  value       = module.rds.db_name
}

output "db_credentials_secret_arn" {
  description = "ARN of the DB credentials secret idp-{env}/rds/credentials."
  value       = module.rds.db_credentials_secret_arn
}

output "db_host" {
  description = "Host name of the database (same as db_address; the name the template manifest uses)."
  value       = module.rds.db_instance_address
}
