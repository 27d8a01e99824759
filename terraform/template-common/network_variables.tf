# Networking variables shared by the ECS templates (linked from each).

variable "use_shared_networking" {
  description = "true: create no VPC/NAT; use the shared VPC tagged idp:network = shared_network_name (terraform/shared/preview-networking) in this region."
  type        = bool
  default     = false
}

variable "shared_network_name" {
  description = "idp:network tag of the shared VPC."
  type        = string
  default     = "shared-preview"
}

variable "vpc_cidr" {
  description = "CIDR of the per-environment VPC (ignored with shared networking)."
  type        = string
  default     = "10.0.0.0/16"
}

variable "az_count" {
  description = "AZs of the per-environment VPC (2 or 3)."
  type        = number
  default     = 2
}

variable "high_availability" {
  description = "One NAT gateway per AZ in the per-environment VPC (seed #17)."
  type        = bool
  default     = false
}

variable "enable_flow_logs" {
  description = "VPC flow logs to /vpc/idp-{env} in the per-environment VPC (seed #18)."
  type        = bool
  default     = false
}
