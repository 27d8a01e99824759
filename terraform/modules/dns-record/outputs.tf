output "fqdn" {
  description = "The record's fully qualified name."
  value       = var.alias ? aws_route53_record.alias["A"].fqdn : aws_route53_record.cname[0].fqdn
}

output "name" {
  description = "The record name as given."
  value       = var.name
}
