output "db_instance_endpoint" {
  description = "host:port of the database."
  value       = aws_db_instance.this.endpoint
}

output "db_instance_address" {
  description = "Host name of the database."
  value       = aws_db_instance.this.address
}

output "db_port" {
  description = "Port of the database."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Name of the initial database."
  value       = var.db_name
}

output "db_instance_identifier" {
  description = "RDS instance identifier."
  value       = aws_db_instance.this.identifier
}

output "db_credentials_secret_arn" {
  description = "ARN of the credentials secret (JSON keys: username, password, dbname, port, engine)."
  value       = aws_secretsmanager_secret.db.arn
}

output "db_security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.db.id
}
