variable "bucket_name" {
  description = "Bucket name; empty: idp-alb-access-logs-{account}-{region}."
  type        = string
  default     = ""
}

variable "expiration_days" {
  description = "Days after which access logs are deleted."
  type        = number
  default     = 14
}
