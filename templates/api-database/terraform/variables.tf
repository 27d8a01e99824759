# Variables specific to api-database.

variable "db_name" {
  description = "Name of the initial database (DB_NAME)."
  type        = string
  default     = "appdb"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t3.micro"
}

variable "db_allocated_storage" {
  description = "RDS storage in GiB."
  type        = number
  default     = 20
}

variable "db_engine_version" {
  description = "PostgreSQL major (or major.minor) version."
  type        = string
  default     = "16"
}
