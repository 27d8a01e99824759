variable "repository_name" {
  description = "ECR repository for preview images (tags {env}-{sha7})."
  type        = string
  default     = "mini-idp-preview"
}

variable "scan_on_push" {
  description = "Basic image scanning on push."
  type        = bool
  default     = true
}

variable "untagged_expire_days" {
  description = "Untagged images are deleted this many days after push."
  type        = number
  default     = 1
}

variable "tagged_expire_days" {
  description = "Tagged images are deleted this many days after push. Keep it above the longest environment lifetime: an image is never expired because OTHER environments pushed (no count-based rule)."
  type        = number
  default     = 30

  validation {
    condition     = var.tagged_expire_days >= 1
    error_message = "tagged_expire_days must be >= 1."
  }
}

variable "dockerhub_username" {
  description = "Docker Hub user for the pull-through cache. Empty: no cache rule and no credentials secret."
  type        = string
  default     = ""
}

variable "dockerhub_access_token" {
  description = "Docker Hub access token (required with dockerhub_username)."
  type        = string
  default     = ""
  sensitive   = true
}
