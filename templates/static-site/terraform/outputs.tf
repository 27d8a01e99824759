output "endpoint" {
  description = "https URL of the site."
  value       = module.site.endpoint
}

output "aws_region" {
  description = "Region of the bucket."
  value       = var.aws_region
}

output "bucket_name" {
  description = "Bucket the site files live in (aws s3 sync target)."
  value       = module.site.bucket_name
}

output "distribution_id" {
  description = "CloudFront distribution ID (for invalidations)."
  value       = module.site.distribution_id
}

output "distribution_domain_name" {
  description = "CloudFront domain name."
  value       = module.site.distribution_domain_name
}
