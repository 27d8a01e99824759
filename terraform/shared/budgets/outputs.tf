output "budget_names" {
  description = "Name of each budget in AWS ({name_prefix}-{name}), by its name in budgets."
  value       = { for name, b in aws_budgets_budget.this : name => b.name }
}

output "budget_ids" {
  description = "ID of each budget ({account}:{budget name}, the import ID), by its name in budgets."
  value       = { for name, b in aws_budgets_budget.this : name => b.id }
}

output "sns_topic_arn" {
  description = "ARN of the stack's SNS topic the budget alerts go to (subscribe e.g. the idp server's webhook to it), or \"\" when create_sns_topic = false."
  value       = local.topic_arn

  precondition {
    condition     = var.create_sns_topic || length(var.notify_subscriptions) == 0
    error_message = "notify_subscriptions needs create_sns_topic = true: they subscribe to the stack's topic."
  }
}
