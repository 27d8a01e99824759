# Template api-database: api-service + a PostgreSQL RDS instance. The container gets
# DB_HOST, DB_PORT, DB_NAME (user values win) and DB_USER, DB_PASSWORD from the DB
# secret; the execution role may read exactly the app secret, the DB secret and the
# user's referenced secrets.

locals {
  template_name = coalesce(var.template, "api-database")
  dns_name      = var.preview_domain != "" ? "${var.environment_name}.${var.preview_domain}" : ""

  db_environment = {
    DB_HOST = module.rds.db_instance_address
    DB_PORT = tostring(module.rds.db_port)
    DB_NAME = module.rds.db_name
  }
  db_secrets = {
    DB_USER     = "${module.rds.db_credentials_secret_arn}:username::"
    DB_PASSWORD = "${module.rds.db_credentials_secret_arn}:password::"
  }

  # User values win on conflicts.
  environment_variables = merge(local.db_environment, var.environment_variables)
  secret_variables      = merge(local.db_secrets, var.secret_variables)
}

module "common" {
  source = "../../../terraform/modules/common"

  permissions_boundary_arn = var.permissions_boundary_arn
  environment_name         = var.environment_name
  aws_region               = var.aws_region
  log_retention_days       = var.log_retention_days
  # The full map, so DB_USER/DB_PASSWORD's secret is readable too (suffixes stripped).
  secret_variables = local.secret_variables
  # Also explicitly, in case the user overrides both DB_USER and DB_PASSWORD.
  additional_secret_arns          = [module.rds.db_credentials_secret_arn]
  secret_kms_key_arns             = var.secret_kms_key_arns
  ecr_pull_through_cache_prefixes = var.ecr_pull_through_cache_prefixes
}

module "rds" {
  source = "../../../terraform/modules/rds-postgres"

  environment_name          = var.environment_name
  vpc_id                    = local.vpc_id
  private_subnet_ids        = local.private_subnet_ids
  allowed_security_group_id = module.ecs_service.ecs_security_group_id
  db_name                   = var.db_name
  instance_class            = var.db_instance_class
  allocated_storage         = var.db_allocated_storage
  engine_version            = var.db_engine_version
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
  environment_variables  = local.environment_variables
  secret_variables       = local.secret_variables
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
