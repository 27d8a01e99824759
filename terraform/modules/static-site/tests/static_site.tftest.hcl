mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn                         = "arn:aws:s3:::idp-web-1-site-0000"
      bucket_regional_domain_name = "idp-web-1-site-0000.s3.eu-north-1.amazonaws.com"
    }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      arn            = "arn:aws:cloudfront::123456789012:distribution/E2QWRUHAPOMQZL"
      domain_name    = "d111111abcdef8.cloudfront.net"
      hosted_zone_id = "Z2FDTNDATAQYW2"
    }
  }
}

variables {
  environment_name = "web-1"
  aws_region       = "eu-north-1"
}

run "defaults_spa_oac_force_destroy" {
  command = apply

  assert {
    condition     = aws_s3_bucket.site.force_destroy
    error_message = "the bucket must be force_destroy so destroy leaves nothing"
  }
  assert {
    condition     = aws_cloudfront_origin_access_control.site.signing_behavior == "always" && aws_cloudfront_origin_access_control.site.origin_access_control_origin_type == "s3"
    error_message = "CloudFront must read S3 through an OAC"
  }
  assert {
    condition     = one(aws_cloudfront_distribution.this.origin).origin_access_control_id == aws_cloudfront_origin_access_control.site.id
    error_message = "the origin must use the OAC"
  }
  assert {
    condition     = length(aws_cloudfront_distribution.this.custom_error_response) == 2 && alltrue([for r in aws_cloudfront_distribution.this.custom_error_response : r.response_page_path == "/index.html" && r.response_code == 200])
    error_message = "SPA fallback maps 403/404 to /index.html with 200"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.site.policy).Statement[0].Condition.StringEquals["AWS:SourceArn"] == "arn:aws:cloudfront::123456789012:distribution/E2QWRUHAPOMQZL"
    error_message = "the bucket policy must only let this distribution read"
  }
  assert {
    condition     = aws_s3_bucket_public_access_block.site.block_public_policy && aws_s3_bucket_public_access_block.site.restrict_public_buckets
    error_message = "the bucket must not be public"
  }
  assert {
    condition     = output.endpoint == "https://d111111abcdef8.cloudfront.net"
    error_message = "endpoint is the CloudFront domain without a custom domain"
  }
  assert {
    condition     = length(module.dns) == 0 && length(aws_s3_object.site) == 0
    error_message = "no DNS record, no uploads by default"
  }
  assert {
    condition     = one(aws_cloudfront_distribution.this.default_cache_behavior).cache_policy_id == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    error_message = "caching disabled by default for previews"
  }
}

run "no_spa_fallback" {
  command = plan

  variables {
    spa_fallback = false
  }

  assert {
    condition     = length(aws_cloudfront_distribution.this.custom_error_response) == 0
    error_message = "no fallback when spa_fallback = false"
  }
}

run "uploads_source_dir_with_content_types" {
  command = plan

  variables {
    source_dir = "tests/fixtures/site"
  }

  assert {
    condition     = length(aws_s3_object.site) == 3
    error_message = "every file of source_dir must be uploaded"
  }
  assert {
    condition     = aws_s3_object.site["index.html"].content_type == "text/html; charset=utf-8" && aws_s3_object.site["assets/app.js"].content_type == "text/javascript; charset=utf-8"
    error_message = "content types by extension"
  }
}

run "custom_domain" {
  command = apply

  variables {
    dns_name            = "web-1.preview.example.com"
    route53_zone_id     = "Z0123456789ABCDEFGHIJ"
    acm_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = output.endpoint == "https://web-1.preview.example.com"
    error_message = "custom-domain endpoint"
  }
  assert {
    condition     = aws_cloudfront_distribution.this.aliases == toset(["web-1.preview.example.com"]) && one(aws_cloudfront_distribution.this.viewer_certificate).ssl_support_method == "sni-only"
    error_message = "alias + SNI certificate"
  }
  assert {
    condition     = length(module.dns) == 1
    error_message = "alias record"
  }
}

run "longest_env_name_bucket_fits" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
  }

  assert {
    condition     = length(aws_s3_bucket.site.bucket) <= 63 && can(regex("^[a-z0-9][a-z0-9-]*[a-z0-9]$", aws_s3_bucket.site.bucket))
    error_message = "S3 bucket names must be <= 63 chars and lowercase"
  }
  assert {
    condition     = length(aws_cloudfront_origin_access_control.site.name) <= 64
    error_message = "OAC names must be <= 64 chars"
  }
}
