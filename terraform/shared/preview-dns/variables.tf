variable "preview_domain" {
  description = "Domain environments live under, e.g. preview.example.com ({env}.{preview_domain})."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.preview_domain))
    error_message = "preview_domain must be a lowercase DNS domain."
  }
}

variable "create_zone" {
  description = "true: create the hosted zone (delegate it from the parent domain with name_servers). false: look up an existing public zone named preview_domain (e.g. when applying this stack in a second region)."
  type        = bool
  default     = true
}
