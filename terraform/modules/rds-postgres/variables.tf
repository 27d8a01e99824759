variable "environment_name" {
  description = "Environment name. Resources are named idp-{environment_name}-*."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$", var.environment_name))
    error_message = "environment_name must be 1-32 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets of the DB subnet group (at least 2 AZs)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "A DB subnet group needs subnets in at least 2 AZs."
  }
}

variable "allowed_security_group_id" {
  description = "Security group allowed to connect on 5432 (the ECS tasks SG)."
  type        = string
}

variable "db_name" {
  description = "Name of the initial database."
  type        = string
  default     = "appdb"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_]{0,62}$", var.db_name))
    error_message = "db_name must start with a letter and contain only letters, digits and underscores (max 63)."
  }
}

variable "username" {
  description = "Master user name."
  type        = string
  default     = "dbadmin"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_]{0,62}$", var.username)) && !contains(["postgres", "admin", "rdsadmin"], lower(var.username))
    error_message = "username must start with a letter, contain only letters, digits and underscores, and not be a reserved name."
  }
}

variable "engine_version" {
  description = "PostgreSQL version. A major version (\"16\") lets RDS pick the current minor version, so a retired minor version never breaks provisioning."
  type        = string
  default     = "16"
}

variable "instance_class" {
  description = "DB instance class."
  type        = string
  default     = "db.t3.micro"
}

variable "allocated_storage" {
  description = "Storage in GiB (gp3)."
  type        = number
  default     = 20

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 65536
    error_message = "allocated_storage must be in 20-65536 GiB."
  }
}

variable "backup_retention_days" {
  description = "Automated backup retention. 0 (default) disables backups: previews are disposable and create faster."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Extra tags for this module's resources (environment tags come from the provider's default_tags)."
  type        = map(string)
  default     = {}
}
