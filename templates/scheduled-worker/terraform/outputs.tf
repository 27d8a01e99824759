output "endpoint" {
  description = "Always null: a scheduled worker serves no traffic."
  value       = null
}

output "aws_region" {
  description = "Region the environment lives in."
  value       = var.aws_region
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = module.scheduled_task.cluster_arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.scheduled_task.cluster_name
}

output "task_definition_arn" {
  description = "Task definition ARN."
  value       = module.scheduled_task.task_definition_arn
}

output "event_rule_name" {
  description = "EventBridge rule name."
  value       = module.scheduled_task.event_rule_name
}

output "event_rule_arn" {
  description = "EventBridge rule ARN."
  value       = module.scheduled_task.event_rule_arn
}

output "schedule_expression" {
  description = "The schedule."
  value       = var.schedule_expression
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
  description = "VPC the task runs in (per-environment or shared)."
  value       = local.vpc_id
}
