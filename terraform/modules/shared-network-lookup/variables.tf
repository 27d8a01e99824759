variable "network_name" {
  description = "Value of the idp:network tag on the shared VPC and its subnets (the preview-networking stack's network_name)."
  type        = string
  default     = "shared-preview"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.network_name))
    error_message = "network_name must be 1-32 chars of lowercase letters, digits and hyphens."
  }
}

variable "min_subnets" {
  description = "Minimum number of public and of private subnets the shared VPC must have (an ALB needs 2 AZs)."
  type        = number
  default     = 2
}
