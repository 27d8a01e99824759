variable "environment_name" {
  description = "Environment name. Resources are named idp-{environment_name}-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be 1-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "aws_region" {
  description = "AWS region of the bucket (part of the bucket-name hash, so one env name can exist in several regions)."
  type        = string
}

variable "index_document" {
  description = "Default root object."
  type        = string
  default     = "index.html"
}

variable "spa_fallback" {
  description = "Single-page-app fallback: 403/404 from S3 are answered with /{index_document} and status 200 (client-side routing)."
  type        = bool
  default     = true
}

variable "cache_policy" {
  description = "CloudFront managed cache policy: \"disabled\" (default: a preview changes on every push, no invalidations needed) or \"optimized\"."
  type        = string
  default     = "disabled"

  validation {
    condition     = contains(["disabled", "optimized"], var.cache_policy)
    error_message = "cache_policy must be disabled or optimized."
  }
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "source_dir" {
  description = "Local directory whose files are uploaded to the bucket (content types by extension). Empty: upload nothing (the driver syncs the files itself)."
  type        = string
  default     = ""
}

variable "acm_certificate_arn" {
  description = "ACM certificate for dns_name. CloudFront requires it to be in us-east-1 (whatever aws_region is). Empty: the *.cloudfront.net certificate."
  type        = string
  default     = ""
}

variable "route53_zone_id" {
  description = "Hosted zone for the alias record. The record is created only with zone, dns_name and certificate."
  type        = string
  default     = ""
}

variable "dns_name" {
  description = "Custom DNS name, e.g. pr-42.preview.example.com (used only together with acm_certificate_arn)."
  type        = string
  default     = ""
}

variable "wait_for_deployment" {
  description = "Wait for the CloudFront distribution to be deployed (several minutes) before apply returns."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for this module's resources (environment tags come from the provider's default_tags)."
  type        = map(string)
  default     = {}
}
