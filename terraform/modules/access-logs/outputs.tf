output "bucket_name" {
  description = "Name of the access-logs bucket (pass it to templates as access_logs_bucket)."
  value       = aws_s3_bucket.logs.bucket
}

output "bucket_arn" {
  description = "ARN of the access-logs bucket."
  value       = aws_s3_bucket.logs.arn
}
