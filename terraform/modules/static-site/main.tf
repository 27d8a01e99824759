# A static site: private S3 bucket (force_destroy, so destroy leaves nothing) served
# by CloudFront through an Origin Access Control, optional SPA fallback, optional
# custom domain (us-east-1 ACM certificate + Route 53 alias).

data "aws_caller_identity" "current" {}

locals {
  prefix = "idp-${var.environment_name}"
  # S3 names are global: <= 63 chars, lowercase. "idp-{env}" (<= 36) + "-site-" + 8 hex
  # chars of sha1(account/region) <= 50 chars, unique per account, region and env.
  bucket_name = "${local.prefix}-site-${substr(sha1("${data.aws_caller_identity.current.account_id}/${var.aws_region}"), 0, 8)}"

  cache_policy_ids = {
    # AWS managed policies (fixed IDs in every account).
    optimized = "658327ea-f89d-4fab-a63d-7e88639e58f6" # Managed-CachingOptimized
    disabled  = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad" # Managed-CachingDisabled
  }

  custom_domain = var.dns_name != "" && var.acm_certificate_arn != ""
  dns_enabled   = local.custom_domain && var.route53_zone_id != ""
  endpoint      = "https://${local.dns_enabled ? var.dns_name : aws_cloudfront_distribution.this.domain_name}"

  content_types = {
    html        = "text/html; charset=utf-8"
    htm         = "text/html; charset=utf-8"
    css         = "text/css; charset=utf-8"
    js          = "text/javascript; charset=utf-8"
    mjs         = "text/javascript; charset=utf-8"
    json        = "application/json"
    map         = "application/json"
    txt         = "text/plain; charset=utf-8"
    xml         = "application/xml"
    svg         = "image/svg+xml"
    png         = "image/png"
    jpg         = "image/jpeg"
    jpeg        = "image/jpeg"
    gif         = "image/gif"
    webp        = "image/webp"
    ico         = "image/x-icon"
    woff        = "font/woff"
    woff2       = "font/woff2"
    ttf         = "font/ttf"
    wasm        = "application/wasm"
    pdf         = "application/pdf"
    webmanifest = "application/manifest+json"
  }
  site_files = var.source_dir == "" ? toset([]) : fileset(var.source_dir, "**")
}

resource "aws_s3_bucket" "site" {
  bucket        = local.bucket_name
  force_destroy = true
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "site" {
  bucket                  = aws_s3_bucket.site.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "site" {
  bucket = aws_s3_bucket.site.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "site" {
  bucket = aws_s3_bucket.site.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_cloudfront_origin_access_control" "site" {
  name                              = "${local.prefix}-oac"
  description                       = "CloudFront -> S3 for ${local.prefix}"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

resource "aws_cloudfront_distribution" "this" {
  enabled             = true
  is_ipv6_enabled     = true
  comment             = "${local.prefix} static site"
  default_root_object = var.index_document
  price_class         = var.price_class
  aliases             = local.custom_domain ? [var.dns_name] : []
  wait_for_deployment = var.wait_for_deployment

  origin {
    origin_id                = "s3-site"
    domain_name              = aws_s3_bucket.site.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.site.id
  }

  default_cache_behavior {
    target_origin_id       = "s3-site"
    viewer_protocol_policy = "redirect-to-https"
    allowed_methods        = ["GET", "HEAD", "OPTIONS"]
    cached_methods         = ["GET", "HEAD"]
    compress               = true
    cache_policy_id        = local.cache_policy_ids[var.cache_policy]
  }

  # S3 behind an OAC answers 403 (not 404) for missing keys: map both.
  dynamic "custom_error_response" {
    for_each = var.spa_fallback ? [403, 404] : []
    content {
      error_code            = custom_error_response.value
      response_code         = 200
      response_page_path    = "/${var.index_document}"
      error_caching_min_ttl = 0
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = !local.custom_domain
    acm_certificate_arn            = local.custom_domain ? var.acm_certificate_arn : null
    ssl_support_method             = local.custom_domain ? "sni-only" : null
    minimum_protocol_version       = local.custom_domain ? "TLSv1.2_2021" : "TLSv1"
  }

  tags = var.tags
}

resource "aws_s3_bucket_policy" "site" {
  bucket = aws_s3_bucket.site.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudFrontOacRead"
        Effect    = "Allow"
        Principal = { Service = "cloudfront.amazonaws.com" }
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.site.arn}/*"
        Condition = { StringEquals = { "AWS:SourceArn" = aws_cloudfront_distribution.this.arn } }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.site.arn, "${aws_s3_bucket.site.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.site]
}

resource "aws_s3_object" "site" {
  for_each = local.site_files

  bucket       = aws_s3_bucket.site.id
  key          = each.value
  source       = "${var.source_dir}/${each.value}"
  source_hash  = filemd5("${var.source_dir}/${each.value}")
  content_type = lookup(local.content_types, lower(reverse(split(".", each.value))[0]), "application/octet-stream")
}

module "dns" {
  source = "../dns-record"
  count  = local.dns_enabled ? 1 : 0

  zone_id       = var.route53_zone_id
  name          = var.dns_name
  target        = aws_cloudfront_distribution.this.domain_name
  alias         = true
  alias_zone_id = aws_cloudfront_distribution.this.hosted_zone_id
  ipv6          = true
}
