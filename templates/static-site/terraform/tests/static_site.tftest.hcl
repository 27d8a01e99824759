# Offline tests of the static-site root module (aws provider mocked).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::idp-web-5-site-0000"
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
  environment_name = "web-5"
  owner            = "dev@example.com"
  created_at       = "2026-03-25T10:00:00Z"
  expires_at       = "2026-04-01T10:00:00Z"
  aws_region       = "eu-south-1"
  site_source_dir  = "tests/fixtures/dist"
}

run "s3_cloudfront_only" {
  command = apply

  assert {
    condition     = output.endpoint == "https://d111111abcdef8.cloudfront.net"
    error_message = "CloudFront endpoint"
  }
  assert {
    condition     = module.site.uploaded_files == 1
    error_message = "site files uploaded"
  }
  assert {
    condition     = local.tags["idp:template"] == "static-site" && local.tags["idp:environment"] == "web-5"
    error_message = "tags"
  }
  assert {
    condition     = output.aws_region == "eu-south-1"
    error_message = "region"
  }
}

run "custom_domain" {
  command = apply

  variables {
    preview_domain      = "preview.example.com"
    route53_zone_id     = "Z0123456789ABCDEFGHIJ"
    acm_certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = output.endpoint == "https://web-5.preview.example.com"
    error_message = "custom domain endpoint"
  }
}
