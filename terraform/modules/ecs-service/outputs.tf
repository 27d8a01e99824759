output "endpoint" {
  description = "URL of the environment: https only when a certificate is set; the DNS name when a record was created, else the ALB DNS name."
  value       = local.endpoint
}

output "https_enabled" {
  description = "Whether the HTTPS listener exists."
  value       = local.https_enabled
}

output "dns_name" {
  description = "DNS name of the created Route 53 record, or null."
  value       = local.dns_enabled ? var.dns_name : null
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "container_name" {
  description = "Name of the container in the task definition (for ECS Exec)."
  value       = local.container_name
}

output "task_definition_arn" {
  description = "Task definition ARN (with revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "alb_arn" {
  description = "ALB ARN."
  value       = aws_lb.this.arn
}

output "alb_name" {
  description = "ALB name (<= 32 chars, unique per environment)."
  value       = aws_lb.this.name
}

output "alb_dns_name" {
  description = "ALB DNS name."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone ID of the ALB (for alias records)."
  value       = aws_lb.this.zone_id
}

output "target_group_arn" {
  description = "Target group ARN."
  value       = aws_lb_target_group.this.arn
}

output "target_group_name" {
  description = "Target group name (<= 32 chars, unique per environment)."
  value       = aws_lb_target_group.this.name
}

output "ecs_security_group_id" {
  description = "Security group of the tasks (e.g. to allow them into a database)."
  value       = aws_security_group.tasks.id
}

output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "health_check_path" {
  description = "Path probed by the target group health check."
  value       = aws_lb_target_group.this.health_check[0].path
}

output "container_definition" {
  description = "The container definition (as an object) handed to the task definition."
  value       = local.container_definition
}
