# Variables shared by the web templates (api-service, api-database; each links this file).

variable "container_image" {
  description = "Container image (the driver passes the built image; nginx:alpine is a placeholder that answers on / and port 80)."
  type        = string
  default     = "nginx:alpine"
}

variable "container_port" {
  description = "Port the container listens on."
  type        = number
  default     = 80
}

variable "health_check_path" {
  description = "Path the ALB health check probes (must start with /)."
  type        = string
  default     = "/"
}

variable "health_check_matcher" {
  description = "HTTP codes counted as healthy."
  type        = string
  default     = "200-399"
}

variable "acm_certificate_arn" {
  description = "Certificate (same region) for HTTPS; empty: HTTP only."
  type        = string
  default     = ""
}

variable "route53_zone_id" {
  description = "Hosted zone of preview_domain; a record {env}.{preview_domain} is created when both are set."
  type        = string
  default     = ""
}

variable "preview_domain" {
  description = "Domain under which environments get a name, e.g. preview.example.com."
  type        = string
  default     = ""
}

variable "access_logs_bucket" {
  description = "ALB access-logs bucket (terraform/shared/access-logs); empty: no access logs."
  type        = string
  default     = ""
}

variable "enable_execute_command" {
  description = "Enable ECS Exec (idp exec)."
  type        = bool
  default     = false
}

variable "desired_count" {
  description = "Number of tasks."
  type        = number
  default     = 1
}

variable "wait_for_steady_state" {
  description = "Make apply wait for a stable service (a failing deployment then fails the apply)."
  type        = bool
  default     = false
}
