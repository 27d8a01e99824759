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
  description = "VPC of the service."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets for the ALB (at least 2 AZs)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An ALB needs at least 2 public subnets."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks."
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
  description = "ECS task role name (module common); receives the ECS Exec policy when enable_execute_command = true."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the container (module common)."
  type        = string
}

variable "container_image" {
  description = "Container image."
  type        = string
  default     = "nginx:alpine"

  validation {
    condition     = length(trimspace(var.container_image)) > 0
    error_message = "container_image must not be empty."
  }
}

variable "container_port" {
  description = "Port the container listens on."
  type        = number
  default     = 80

  validation {
    condition     = var.container_port >= 1 && var.container_port <= 65535 && floor(var.container_port) == var.container_port
    error_message = "container_port must be an integer in 1-65535."
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
  description = "Secret environment variables of the container: NAME => valueFrom (Secrets Manager ARN[:json-key:stage:version] or SSM parameter ARN/name)."
  type        = map(string)
  default     = {}
}

variable "health_check_path" {
  description = "HTTP path the ALB target group probes (seed #8)."
  type        = string
  default     = "/"

  validation {
    condition     = startswith(var.health_check_path, "/") && length(var.health_check_path) <= 1024 && !can(regex("\\s", var.health_check_path))
    error_message = "health_check_path must start with '/', contain no whitespace and be at most 1024 characters."
  }
}

variable "health_check_matcher" {
  description = "HTTP codes that count as healthy."
  type        = string
  default     = "200-399"
}

variable "health_check_interval" {
  description = "Seconds between health checks (5-300)."
  type        = number
  default     = 30

  validation {
    condition     = var.health_check_interval >= 5 && var.health_check_interval <= 300
    error_message = "health_check_interval must be in 5-300."
  }
}

variable "health_check_grace_period_seconds" {
  description = "Seconds ECS ignores failing ALB health checks after a task starts."
  type        = number
  default     = 60
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

variable "desired_count" {
  description = "Number of tasks."
  type        = number
  default     = 1
}

variable "wait_for_steady_state" {
  description = "Make apply wait until the service is stable (the deployment circuit breaker then fails the apply on a bad image)."
  type        = bool
  default     = false
}

variable "enable_execute_command" {
  description = "Enable ECS Exec (idp exec): sets enable_execute_command and grants ssmmessages:* channel actions to the task role."
  type        = bool
  default     = false
}

variable "acm_certificate_arn" {
  description = "ACM certificate (same region) for the HTTPS listener. Empty: HTTP only."
  type        = string
  default     = ""
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "route53_zone_id" {
  description = "Hosted zone for the environment's DNS record. The record is created only when both this and dns_name are set."
  type        = string
  default     = ""
}

variable "dns_name" {
  description = "DNS name of the environment, e.g. pr-42.preview.example.com."
  type        = string
  default     = ""
}

variable "access_logs_bucket" {
  description = "S3 bucket (same region, with the ELB log-delivery policy: module access-logs) for ALB access logs, written under prefix {environment_name}/. Empty: access logs off."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Extra tags for this module's resources (environment tags come from the provider's default_tags)."
  type        = map(string)
  default     = {}
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
