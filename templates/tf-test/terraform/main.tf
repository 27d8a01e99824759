# Test-only template for the C++ Terraform driver's tests: terraform_data resources
# only, no provider, nothing leaves the machine. With fail = true the PLAN succeeds
# and the APPLY fails after one resource was created (a partial apply), like a real
# cloud error half-way through.

terraform {
  required_version = ">= 1.6.0"
}

variable "environment_name" {
  description = "Environment name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$", var.environment_name))
    error_message = "environment_name must be 2-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "owner" {
  description = "Owner of the environment."
  type        = string
}

variable "template" {
  description = "Template name (accepted like every template; unused)."
  type        = string
  default     = "tf-test"
}

variable "created_at" {
  description = "RFC 3339 creation time."
  type        = string
}

variable "expires_at" {
  description = "RFC 3339 expiry time."
  type        = string
}

variable "aws_region" {
  description = "Region (unused; accepted like every template)."
  type        = string
  default     = "local-1"
}

variable "fail" {
  description = "When true, apply fails (after creating terraform_data.environment); plan still succeeds."
  type        = bool
  default     = false
}

resource "terraform_data" "environment" {
  input = {
    environment_name = var.environment_name
    owner            = var.owner
    created_at       = var.created_at
    expires_at       = var.expires_at
    aws_region       = var.aws_region
  }
}

resource "terraform_data" "failure" {
  count = var.fail ? 1 : 0

  input = terraform_data.environment.id

  lifecycle {
    postcondition {
      # self.id is unknown during plan, so this only fails at apply time.
      condition     = self.id == ""
      error_message = "tf-test: apply failed on purpose (fail = true)."
    }
  }
}

output "endpoint" {
  description = "Fake URL of the environment."
  value       = "http://${var.environment_name}.tf-test.invalid"
}

output "id" {
  description = "ID of the environment's terraform_data resource."
  value       = terraform_data.environment.id
}

output "expires_at" {
  description = "The expires_at that was applied (lets tests see an extend)."
  value       = terraform_data.environment.output.expires_at
}
