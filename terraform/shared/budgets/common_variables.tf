variable "aws_region" {
  description = "Region of the SNS topic. Budgets are global to the account: apply the stack once per account, not per region."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "extra_tags" {
  description = "Additional tags on every resource of the stack."
  type        = map(string)
  default     = {}
}
