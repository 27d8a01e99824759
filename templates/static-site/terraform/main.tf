# Template static-site: S3 + CloudFront only. No VPC, no ECS, no IAM roles, no log
# group (so idp logs has nothing to show for it).

locals {
  template_name = coalesce(var.template, "static-site")
  dns_name      = var.preview_domain != "" ? "${var.environment_name}.${var.preview_domain}" : ""
}

module "site" {
  source = "../../../terraform/modules/static-site"

  environment_name    = var.environment_name
  aws_region          = var.aws_region
  source_dir          = var.site_source_dir
  spa_fallback        = var.spa_fallback
  index_document      = var.index_document
  cache_policy        = var.cache_policy
  price_class         = var.price_class
  acm_certificate_arn = var.acm_certificate_arn
  route53_zone_id     = var.route53_zone_id
  dns_name            = local.dns_name
  wait_for_deployment = var.wait_for_deployment
}
