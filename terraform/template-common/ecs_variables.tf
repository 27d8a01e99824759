# Variables shared by the ECS templates (api-service, api-database, scheduled-worker
# link this file).

variable "cpu" {
  description = "Fargate task CPU units (256, 512, 1024, 2048, 4096, 8192, 16384)."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Fargate task memory in MiB (a valid combination with cpu)."
  type        = number
  default     = 512
}

variable "log_retention_days" {
  description = "Retention of the container (and flow) log groups, in days."
  type        = number
  default     = 3
}

variable "environment_variables" {
  description = "Plain environment variables of the container."
  type        = map(string)
  default     = {}
}

variable "secret_variables" {
  description = "Secret environment variables: NAME => valueFrom (Secrets Manager ARN[:json-key::], SSM parameter ARN or name). The execution role may read exactly these."
  type        = map(string)
  default     = {}
}

variable "secret_kms_key_arns" {
  description = "Customer-managed KMS keys encrypting the referenced secrets (kms:Decrypt on exactly these)."
  type        = list(string)
  default     = []
}

variable "ecr_pull_through_cache_prefixes" {
  description = "ECR pull-through-cache prefixes used by the image (e.g. [\"docker-hub\"]): lets the execution role import upstream images."
  type        = list(string)
  default     = []
}

variable "container_insights" {
  description = "ECS cluster containerInsights: enabled, enhanced or disabled."
  type        = string
  default     = "enabled"
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
