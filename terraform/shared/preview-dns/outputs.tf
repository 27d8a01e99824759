output "preview_zone_id" {
  description = "Hosted zone ID (templates' route53_zone_id)."
  value       = local.zone_id
}

output "preview_zone_name" {
  description = "Zone name (templates' preview_domain)."
  value       = local.zone_name
}

output "acm_certificate_arn" {
  description = "Validated wildcard certificate (templates' acm_certificate_arn, same region)."
  value       = aws_acm_certificate_validation.wildcard.certificate_arn
}

output "name_servers" {
  description = "Name servers to delegate preview_domain to from its parent zone."
  value       = local.name_servers
}
