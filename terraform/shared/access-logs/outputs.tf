output "bucket_name" {
  description = "Access-logs bucket (templates' access_logs_bucket)."
  value       = module.access_logs.bucket_name
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = module.access_logs.bucket_arn
}
