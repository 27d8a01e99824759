output "task_definition_arn" {
  description = "Task definition ARN (with revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "event_rule_arn" {
  description = "EventBridge rule ARN."
  value       = aws_cloudwatch_event_rule.this.arn
}

output "event_rule_name" {
  description = "EventBridge rule name."
  value       = aws_cloudwatch_event_rule.this.name
}

output "task_security_group_id" {
  description = "Security group of the task."
  value       = aws_security_group.task.id
}

output "container_name" {
  description = "Name of the container in the task definition."
  value       = local.container_name
}

output "container_definition" {
  description = "The container definition (as an object) handed to the task definition."
  value       = local.container_definition
}
