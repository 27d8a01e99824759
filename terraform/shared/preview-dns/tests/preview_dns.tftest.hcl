mock_provider "aws" {
  mock_resource "aws_acm_certificate" {
    defaults = {
      arn = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
      domain_validation_options = [
        { domain_name = "*.preview.example.com", resource_record_name = "_abc.preview.example.com.", resource_record_type = "CNAME", resource_record_value = "_def.acm-validations.aws." },
        { domain_name = "preview.example.com", resource_record_name = "_abc.preview.example.com.", resource_record_type = "CNAME", resource_record_value = "_def.acm-validations.aws." },
      ]
    }
  }
  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_route53_zone" {
    defaults = {
      zone_id = "Z0PREVIEWZONE"
    }
  }
  mock_data "aws_route53_zone" {
    defaults = {
      zone_id = "Z0EXISTINGZONE"
      name    = "preview.example.com"
    }
  }
}

variables {
  aws_region     = "eu-west-1"
  preview_domain = "preview.example.com"
}

run "zone_wildcard_cert_dns_validation" {
  command = apply

  assert {
    condition     = aws_route53_zone.preview[0].name == "preview.example.com" && output.preview_zone_id == "Z0PREVIEWZONE"
    error_message = "zone"
  }
  assert {
    condition     = aws_acm_certificate.wildcard.domain_name == "*.preview.example.com" && aws_acm_certificate.wildcard.validation_method == "DNS"
    error_message = "wildcard certificate with DNS validation"
  }
  assert {
    condition     = aws_route53_record.validation.name == "_abc.preview.example.com." && aws_route53_record.validation.zone_id == "Z0PREVIEWZONE"
    error_message = "validation record in the zone"
  }
  assert {
    condition     = output.acm_certificate_arn == "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    error_message = "certificate output comes from the validation"
  }
}

run "existing_zone_in_second_region" {
  command = apply

  variables {
    aws_region  = "eu-central-1"
    create_zone = false
  }

  assert {
    condition     = length(aws_route53_zone.preview) == 0 && output.preview_zone_id == "Z0EXISTINGZONE"
    error_message = "existing zone lookup"
  }
}
