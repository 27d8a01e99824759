variable "aws_region" {
  description = "Region of the bucket; ALBs can only log to a bucket in their own region."
  type        = string
}

variable "bucket_name" {
  description = "Bucket name. Empty: idp-alb-access-logs-{account}-{region} (<= 63 chars)."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_name == "" || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 chars of lowercase letters, digits and hyphens."
  }
}

variable "expiration_days" {
  description = "Log objects are deleted this many days after they are written."
  type        = number
  default     = 14

  validation {
    condition     = var.expiration_days >= 1
    error_message = "expiration_days must be >= 1."
  }
}

variable "force_destroy" {
  description = "Delete the bucket even when it still holds logs."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for the bucket."
  type        = map(string)
  default     = {}
}
