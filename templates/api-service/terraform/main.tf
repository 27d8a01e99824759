# Template api-service: an HTTP container on ECS Fargate behind an ALB.
# Modules: networking (or shared-network-lookup) + common + ecs-service.

locals {
  template_name = coalesce(var.template, "api-service")
  dns_name      = var.preview_domain != "" ? "${var.environment_name}.${var.preview_domain}" : ""
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

module "ecs_service" {
  source = "../../../terraform/modules/ecs-service"

  environment_name        = var.environment_name
  aws_region              = var.aws_region
  vpc_id                  = local.vpc_id
  public_subnet_ids       = local.public_subnet_ids
  private_subnet_ids      = local.private_subnet_ids
  task_execution_role_arn = module.common.task_execution_role_arn
  task_role_arn           = module.common.task_role_arn
  task_role_name          = module.common.task_role_name
  log_group_name          = module.common.log_group_name

  container_image        = var.container_image
  container_port         = var.container_port
  cpu                    = var.cpu
  memory                 = var.memory
  environment_variables  = var.environment_variables
  secret_variables       = var.secret_variables
  health_check_path      = var.health_check_path
  health_check_matcher   = var.health_check_matcher
  container_insights     = var.container_insights
  egress_cidrs           = var.egress_cidrs
  desired_count          = var.desired_count
  wait_for_steady_state  = var.wait_for_steady_state
  enable_execute_command = var.enable_execute_command
  acm_certificate_arn    = var.acm_certificate_arn
  route53_zone_id        = var.route53_zone_id
  dns_name               = local.dns_name
  access_logs_bucket     = var.access_logs_bucket
}
