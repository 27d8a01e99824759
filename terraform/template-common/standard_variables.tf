# Standard variables every template accepts (linked from each).

variable "environment_name" {
  description = "Environment name: 2-32 chars, lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", var.environment_name))
    error_message = "environment_name must be 2-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "owner" {
  description = "Owner of the environment (e-mail or user name); tag idp:owner."
  type        = string

  validation {
    condition     = can(regex("^[\\p{L}\\p{N}\\p{Z}_.:/=+@-]{1,256}$", var.owner))
    error_message = "owner must be 1-256 characters valid in an AWS tag value (letters, digits, spaces, _ . : / = + - @)."
  }
}

variable "team" {
  description = "Team the environment's owner belongs to (server config teams); tag idp:team, for cost allocation and the AWS Budgets of terraform/shared/budgets. \"\" = no team (no idp:team tag)."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[\\p{L}\\p{N}\\p{Z}_.:/=+@-]{0,256}$", var.team))
    error_message = "team must be at most 256 characters valid in an AWS tag value (letters, digits, spaces, _ . : / = + - @)."
  }
}

variable "template" {
  description = "Template name for the idp:template tag. Null: this template's own name."
  type        = string
  default     = null
}

variable "created_at" {
  description = "RFC 3339 creation time of the environment (tag idp:created-at). Pass the ORIGINAL value on every apply."
  type        = string

  validation {
    condition     = can(formatdate("YYYY", var.created_at))
    error_message = "created_at must be an RFC 3339 timestamp, e.g. 2026-03-25T10:00:00Z."
  }
}

variable "expires_at" {
  description = "RFC 3339 expiry time of the environment (tag idp:expires-at)."
  type        = string

  validation {
    condition     = can(formatdate("YYYY", var.expires_at))
    error_message = "expires_at must be an RFC 3339 timestamp, e.g. 2026-04-01T10:00:00Z."
  }
}

variable "aws_region" {
  description = "AWS region of the environment. Required: it configures the provider (the original silently used us-east-1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "extra_tags" {
  description = "Additional tags on every resource (e.g. cost-center, team). The idp:* tags cannot be overridden."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "IAM policy ARN set as the permissions boundary of every role the template creates (idp passes drivers.terraform.permissions_boundary_arn). Null: none."
  type        = string
  default     = null
}
