# Template scheduled-worker: an ECS Fargate task run on a schedule by EventBridge.
# No ALB, no DNS, no HTTPS; endpoint is null.

locals {
  template_name = coalesce(var.template, "scheduled-worker")
}

module "common" {
  source = "../../../terraform/modules/common"

  permissions_boundary_arn        = var.permissions_boundary_arn
  environment_name                = var.environment_name
  aws_region                      = var.aws_region
  log_retention_days              = var.log_retention_days
  secret_variables                = var.secret_variables
  secret_kms_key_arns             = var.secret_kms_key_arns
  ecr_pull_through_cache_prefixes = var.ecr_pull_through_cache_prefixes
}

module "scheduled_task" {
  source = "../../../terraform/modules/scheduled-task"

  permissions_boundary_arn = var.permissions_boundary_arn
  environment_name         = var.environment_name
  aws_region               = var.aws_region
  vpc_id                   = local.vpc_id
  private_subnet_ids       = local.private_subnet_ids
  task_execution_role_arn  = module.common.task_execution_role_arn
  task_role_arn            = module.common.task_role_arn
  task_role_name           = module.common.task_role_name
  log_group_name           = module.common.log_group_name

  schedule_expression   = var.schedule_expression
  schedule_enabled      = var.schedule_enabled
  container_image       = var.container_image
  command               = var.command
  s3_bucket_arn         = var.s3_bucket_arn
  cpu                   = var.cpu
  memory                = var.memory
  environment_variables = var.environment_variables
  secret_variables      = var.secret_variables
  container_insights    = var.container_insights
  egress_cidrs          = var.egress_cidrs
}
