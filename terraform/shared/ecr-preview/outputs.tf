output "repository_url" {
  description = "URL of the preview repository."
  value       = aws_ecr_repository.preview.repository_url
}

output "repository_arn" {
  description = "ARN of the preview repository."
  value       = aws_ecr_repository.preview.arn
}

output "repository_name" {
  description = "Name of the preview repository."
  value       = aws_ecr_repository.preview.name
}

output "pull_through_cache_prefix" {
  description = "Image prefix of the Docker Hub cache ({registry}/docker-hub/library/node:20-alpine), or \"\" when not configured. Pass [\"docker-hub\"] as ecr_pull_through_cache_prefixes to templates using it."
  value       = local.pull_through_cache ? "${local.registry}/${local.cache_prefix}" : ""
}
