variable "environment_name" {
  description = "Environment (or shared network) name. Resources are named idp-{environment_name}-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be 1-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "aws_region" {
  description = "AWS region the VPC lives in (used to scope the flow-log trust policy)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC. Public subnets are cidrsubnet(cidr, 8, i), private ones cidrsubnet(cidr, 8, i + 10)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR block of size /20 or larger."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread the subnets over (2 or 3)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "high_availability" {
  description = "When true, one NAT gateway + EIP + private route table per AZ. When false, a single NAT gateway in the first AZ serves every private subnet."
  type        = bool
  default     = false
}

variable "enable_flow_logs" {
  description = "When true, VPC flow logs (traffic type ALL) go to the CloudWatch log group /vpc/idp-{environment_name}."
  type        = bool
  default     = false
}

variable "flow_log_traffic_type" {
  description = "Traffic captured by the flow log: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "log_retention_days" {
  description = "Retention of the flow-log log group, in days (a CloudWatch-accepted value)."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
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
