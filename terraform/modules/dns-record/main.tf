# One DNS name for an environment: a CNAME, or an alias A/AAAA record.
# The record is removed on destroy; allow_overwrite lets a re-created environment
# take over a record a failed destroy left behind.

resource "aws_route53_record" "cname" {
  count = var.alias ? 0 : 1

  zone_id         = var.zone_id
  name            = var.name
  type            = "CNAME"
  ttl             = var.ttl
  records         = [var.target]
  allow_overwrite = true
}

resource "aws_route53_record" "alias" {
  for_each = var.alias ? toset(var.ipv6 ? ["A", "AAAA"] : ["A"]) : toset([])

  zone_id         = var.zone_id
  name            = var.name
  type            = each.key
  allow_overwrite = true

  alias {
    name                   = var.target
    zone_id                = var.alias_zone_id
    evaluate_target_health = false
  }
}
