# Preview DNS: the Route 53 zone for {env}.{preview_domain} and a wildcard ACM
# certificate validated through DNS. ACM certificates are regional: apply this stack
# in each region ALBs run in (create_zone = true in one of them only). CloudFront
# (static-site) needs the certificate from the us-east-1 instance of this stack.

resource "aws_route53_zone" "preview" {
  count = var.create_zone ? 1 : 0

  name    = var.preview_domain
  comment = "mini-idp preview environments"
}

data "aws_route53_zone" "existing" {
  count = var.create_zone ? 0 : 1

  name         = var.preview_domain
  private_zone = false
}

locals {
  zone_id      = var.create_zone ? aws_route53_zone.preview[0].zone_id : data.aws_route53_zone.existing[0].zone_id
  zone_name    = var.create_zone ? aws_route53_zone.preview[0].name : data.aws_route53_zone.existing[0].name
  name_servers = var.create_zone ? aws_route53_zone.preview[0].name_servers : data.aws_route53_zone.existing[0].name_servers
  wildcard     = "*.${var.preview_domain}"
  # *.domain and domain share ONE validation record, so a single, statically
  # addressed record is enough (no for_each over values unknown until apply).
  validation = [for o in aws_acm_certificate.wildcard.domain_validation_options : o if o.domain_name == local.wildcard][0]
}

resource "aws_acm_certificate" "wildcard" {
  domain_name               = local.wildcard
  subject_alternative_names = [var.preview_domain]
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "validation" {
  zone_id         = local.zone_id
  name            = local.validation.resource_record_name
  type            = local.validation.resource_record_type
  records         = [local.validation.resource_record_value]
  ttl             = 60
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "wildcard" {
  certificate_arn         = aws_acm_certificate.wildcard.arn
  validation_record_fqdns = [aws_route53_record.validation.fqdn]
}
