output "task_execution_role_arn" {
  description = "ARN of the ECS task execution role."
  value       = aws_iam_role.execution.arn
}

output "task_execution_role_name" {
  description = "Name of the ECS task execution role."
  value       = aws_iam_role.execution.name
}

output "task_role_arn" {
  description = "ARN of the ECS task (application) role."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "Name of the ECS task (application) role."
  value       = aws_iam_role.task.name
}

output "log_group_name" {
  description = "CloudWatch log group of the containers (/ecs/idp-{env})."
  value       = aws_cloudwatch_log_group.this.name
}

output "log_group_arn" {
  description = "ARN of the container log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "secret_arn" {
  description = "ARN of the app secret idp-{env}/app-secrets."
  value       = aws_secretsmanager_secret.app.arn
}

output "secret_name" {
  description = "Name of the app secret."
  value       = aws_secretsmanager_secret.app.name
}

output "readable_secret_arns" {
  description = "Every Secrets Manager ARN the execution role may read."
  value       = local.readable_secret_arns
}
