variable "network_name" {
  description = "Name of the shared network: VPC and subnets are tagged idp:network = network_name (templates look it up by this tag) and named idp-{network_name}-*."
  type        = string
  default     = "shared-preview"
}

variable "vpc_cidr" {
  description = "CIDR of the shared VPC (different from the per-environment default 10.0.0.0/16)."
  type        = string
  default     = "10.100.0.0/16"
}

variable "az_count" {
  description = "Number of AZs (2 or 3)."
  type        = number
  default     = 2
}

variable "high_availability" {
  description = "One NAT gateway per AZ."
  type        = bool
  default     = false
}

variable "enable_flow_logs" {
  description = "VPC flow logs to /vpc/idp-{network_name}."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the flow-log group."
  type        = number
  default     = 7
}
