variable "environment_name" {
  description = "Environment name. Resources are named idp-{environment_name}-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be 1-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "aws_region" {
  description = "AWS region (awslogs-region of the container)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the task."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets the task runs in."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 1
    error_message = "At least one private subnet is required."
  }
}

variable "task_execution_role_arn" {
  description = "ECS task execution role ARN (module common)."
  type        = string
}

variable "task_role_arn" {
  description = "ECS task role ARN (module common)."
  type        = string
}

variable "task_role_name" {
  description = "ECS task role name (module common); receives the S3 read policy when s3_bucket_arn is set."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the container (module common)."
  type        = string
}

variable "schedule_expression" {
  description = "EventBridge schedule: rate(N minute|minutes|hour|hours|day|days) or cron(min hour day-of-month month day-of-week year)."
  type        = string

  validation {
    condition = (
      can(regex("^rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)$", var.schedule_expression)) ||
      can(regex("^cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\)$", var.schedule_expression))
    )
    error_message = "schedule_expression must be rate(1 minute|hour|day), rate(N minutes|hours|days) with N >= 2, or cron() with 6 fields."
  }
}

variable "schedule_enabled" {
  description = "Whether the rule triggers the task."
  type        = bool
  default     = true
}

variable "container_image" {
  description = "Container image of the job (required: there is no silent default)."
  type        = string

  validation {
    condition     = length(trimspace(var.container_image)) > 0
    error_message = "container_image must not be empty."
  }
}

variable "command" {
  description = "Command override for the container (empty: the image's CMD)."
  type        = list(string)
  default     = []
}

variable "s3_bucket_arn" {
  description = "When set, the task role may read this bucket (s3:GetObject on objects, s3:ListBucket on the bucket)."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_bucket_arn == "" || can(regex("^arn:[^:]+:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_bucket_arn))
    error_message = "s3_bucket_arn must be empty or a bucket ARN (arn:aws:s3:::bucket-name)."
  }
}

variable "cpu" {
  description = "Fargate task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  type        = number
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "memory" {
  description = "Fargate task memory in MiB; must be a valid combination with cpu (checked by a precondition)."
  type        = number
  default     = 512
}

variable "environment_variables" {
  description = "Plain environment variables of the container."
  type        = map(string)
  default     = {}
}

variable "secret_variables" {
  description = "Secret environment variables: NAME => valueFrom."
  type        = map(string)
  default     = {}
}

variable "container_insights" {
  description = "ECS cluster containerInsights setting: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"

  validation {
    condition     = contains(["enabled", "enhanced", "disabled"], var.container_insights)
    error_message = "container_insights must be enabled, enhanced or disabled."
  }
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

variable "egress_cidrs" {
  description = "Networks the tasks may reach (security group egress, all protocols). idp sets it only for an approved fork's pull request (server config forks.egress_cidrs); everything else keeps 0.0.0.0/0."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = alltrue([for c in var.egress_cidrs : can(cidrhost(c, 0))])
    error_message = "egress_cidrs: expected networks in CIDR notation like 10.0.0.0/16."
  }
}
