variable "zone_id" {
  description = "Route 53 hosted zone ID."
  type        = string

  validation {
    condition     = length(var.zone_id) > 0
    error_message = "zone_id must not be empty."
  }
}

variable "name" {
  description = "Fully qualified record name, e.g. pr-42.preview.example.com."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9*_]([a-z0-9_.-]*[a-z0-9])?\\.?$", var.name)) && length(var.name) <= 253
    error_message = "name must be a lowercase DNS name of at most 253 characters."
  }
}

variable "target" {
  description = "DNS name the record points at (an ALB or CloudFront domain name)."
  type        = string
}

variable "alias" {
  description = "true: an A (and optionally AAAA) alias record to target in alias_zone_id (free, apex-capable). false: a CNAME with ttl."
  type        = bool
  default     = false
}

variable "alias_zone_id" {
  description = "Hosted zone ID of the alias target (aws_lb.zone_id, aws_cloudfront_distribution.hosted_zone_id). Required when alias = true."
  type        = string
  default     = ""
}

variable "ipv6" {
  description = "With alias = true, also create an AAAA alias (for dual-stack targets such as CloudFront)."
  type        = bool
  default     = false
}

variable "ttl" {
  description = "TTL of the CNAME record in seconds (ignored for alias records)."
  type        = number
  default     = 60
}
