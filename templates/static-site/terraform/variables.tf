# Variables specific to static-site.

variable "site_source_dir" {
  description = "Absolute path of the built site to upload (e.g. the app's dist/). Empty: the driver uploads the files itself (aws s3 sync to bucket_name)."
  type        = string
  default     = ""
}

variable "spa_fallback" {
  description = "Serve /index.html (200) for unknown paths (single-page apps)."
  type        = bool
  default     = true
}

variable "index_document" {
  description = "Default root object."
  type        = string
  default     = "index.html"
}

variable "cache_policy" {
  description = "CloudFront caching: disabled (default for previews) or optimized."
  type        = string
  default     = "disabled"
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string
  default     = "PriceClass_100"
}

variable "acm_certificate_arn" {
  description = "us-east-1 ACM certificate covering {env}.{preview_domain} (CloudFront only uses us-east-1 certificates). Empty: *.cloudfront.net."
  type        = string
  default     = ""
}

variable "route53_zone_id" {
  description = "Hosted zone of preview_domain."
  type        = string
  default     = ""
}

variable "preview_domain" {
  description = "Domain under which environments get a name, e.g. preview.example.com."
  type        = string
  default     = ""
}

variable "wait_for_deployment" {
  description = "Wait until CloudFront has deployed the distribution."
  type        = bool
  default     = true
}
