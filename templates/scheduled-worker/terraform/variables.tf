# Variables specific to scheduled-worker.

variable "container_image" {
  description = "Image of the job. Required: there is no silent default (the original ran alpine:latest, which does nothing useful)."
  type        = string

  validation {
    condition     = length(trimspace(var.container_image)) > 0
    error_message = "container_image is required for scheduled-worker."
  }
}

variable "command" {
  description = "Command override for the container (empty: the image's CMD)."
  type        = list(string)
  default     = []
}

variable "schedule_expression" {
  description = "EventBridge schedule: rate(N minutes|hours|days) or cron(6 fields). Required."
  type        = string

  validation {
    condition = (
      can(regex("^rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)$", var.schedule_expression)) ||
      can(regex("^cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\)$", var.schedule_expression))
    )
    error_message = "schedule_expression must be rate(1 minute|hour|day), rate(N minutes|hours|days) with N >= 2, or cron() with 6 fields."
  }
}

variable "schedule_enabled" {
  description = "Whether the schedule triggers the task."
  type        = bool
  default     = true
}

variable "s3_bucket_arn" {
  description = "Optional bucket the task may read (s3:GetObject/ListBucket)."
  type        = string
  default     = ""
}
