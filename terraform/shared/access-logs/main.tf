# The ALB access-logs bucket (seed #12), one per region. Pass its name to the web
# templates as access_logs_bucket.

module "access_logs" {
  source = "../../modules/access-logs"

  aws_region      = var.aws_region
  bucket_name     = var.bucket_name
  expiration_days = var.expiration_days
}
