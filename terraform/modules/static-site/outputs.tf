output "endpoint" {
  description = "https URL of the site (custom domain when its record was created, else the CloudFront domain)."
  value       = local.endpoint
}

output "bucket_name" {
  description = "S3 bucket holding the site files."
  value       = aws_s3_bucket.site.bucket
}

output "bucket_arn" {
  description = "ARN of the site bucket."
  value       = aws_s3_bucket.site.arn
}

output "distribution_id" {
  description = "CloudFront distribution ID (for invalidations)."
  value       = aws_cloudfront_distribution.this.id
}

output "distribution_arn" {
  description = "CloudFront distribution ARN."
  value       = aws_cloudfront_distribution.this.arn
}

output "distribution_domain_name" {
  description = "CloudFront domain name (*.cloudfront.net)."
  value       = aws_cloudfront_distribution.this.domain_name
}

output "uploaded_files" {
  description = "Number of files uploaded from source_dir."
  value       = length(local.site_files)
}
