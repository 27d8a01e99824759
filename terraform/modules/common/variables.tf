variable "environment_name" {
  description = "Environment name. Resources are named idp-{environment_name}-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be 1-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "aws_region" {
  description = "AWS region (used to build SSM parameter ARNs from bare parameter names)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of /ecs/idp-{env}, in days (a CloudWatch-accepted value)."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "secret_variables" {
  description = <<-EOT
    The container's secrets map (NAME => valueFrom), exactly as handed to the task definition.
    The execution role may read exactly the secrets referenced here, plus the app secret:
    Secrets Manager ARNs (a trailing ':json-key:version-stage:version-id' is stripped to the
    secret ARN), SSM parameter ARNs, and bare SSM parameter names (resolved in aws_region).
  EOT
  type        = map(string)
  default     = {}
}

variable "additional_secret_arns" {
  description = "Extra Secrets Manager secret ARNs the execution role may read (not referenced in secret_variables)."
  type        = list(string)
  default     = []
}

variable "secret_kms_key_arns" {
  description = "Customer-managed KMS key ARNs that encrypt referenced secrets/parameters (kms:Decrypt is granted on exactly these). Not needed for AWS-managed keys."
  type        = list(string)
  default     = []
}

variable "ecr_pull_through_cache_prefixes" {
  description = "ECR pull-through-cache repository prefixes (e.g. [\"docker-hub\"]) the execution role may import upstream images into on first pull."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Extra tags for this module's resources (environment tags come from the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "IAM policy ARN set as the permissions boundary of every role this module creates (null: none). The shipped server policy only lets idp create roles that carry its boundary."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN like arn:aws:iam::123456789012:policy/idp-preview-boundary."
  }
}
