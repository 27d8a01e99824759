mock_provider "aws" {
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "Xy7!q0mockedPasswordOnly4Tests#1"
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:idp-pr-9/rds/credentials-AbCdEf"
    }
  }
}

variables {
  environment_name          = "pr-9"
  vpc_id                    = "vpc-0123"
  private_subnet_ids        = ["subnet-c", "subnet-d"]
  allowed_security_group_id = "sg-0app"
}

run "secret_recovery_window_zero_and_instance" {
  command = plan

  assert {
    condition     = aws_secretsmanager_secret.db.recovery_window_in_days == 0
    error_message = "the DB secret must have recovery_window_in_days = 0 (original defect)"
  }
  assert {
    condition     = aws_secretsmanager_secret.db.name == "idp-pr-9/rds/credentials"
    error_message = "DB secret name"
  }
  assert {
    condition     = aws_db_instance.this.engine == "postgres" && aws_db_instance.this.engine_version == "16" && aws_db_instance.this.instance_class == "db.t3.micro"
    error_message = "postgres 16 on db.t3.micro"
  }
  assert {
    condition     = aws_db_instance.this.publicly_accessible == false && aws_db_instance.this.skip_final_snapshot && aws_db_instance.this.deletion_protection == false && aws_db_instance.this.storage_encrypted
    error_message = "a private, encrypted, disposable instance"
  }
  assert {
    condition     = aws_db_instance.this.identifier == "idp-pr-9-postgres" && aws_db_instance.this.db_name == "appdb"
    error_message = "identifier / db name"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.from_app.referenced_security_group_id == "sg-0app" && aws_vpc_security_group_ingress_rule.from_app.from_port == 5432
    error_message = "only the app SG may connect on 5432"
  }
}

run "password_from_secrets_manager_generator" {
  command = apply

  assert {
    condition     = jsondecode(aws_secretsmanager_secret_version.db.secret_string).password == "Xy7!q0mockedPasswordOnly4Tests#1"
    error_message = "the secret must hold the generated password"
  }
  assert {
    condition     = aws_db_instance.this.password == jsondecode(aws_secretsmanager_secret_version.db.secret_string).password
    error_message = "the DB password must be the one stored in the secret"
  }
  assert {
    condition     = jsondecode(aws_secretsmanager_secret_version.db.secret_string).username == "dbadmin" && jsondecode(aws_secretsmanager_secret_version.db.secret_string).dbname == "appdb"
    error_message = "secret JSON keys"
  }
  assert {
    condition     = data.aws_secretsmanager_random_password.master.password_length == 32 && strcontains(data.aws_secretsmanager_random_password.master.exclude_characters, "@")
    error_message = "password generator settings (RDS forbids / @ \" and space)"
  }
}

run "longest_env_name_fits" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
  }

  assert {
    condition     = length(aws_db_instance.this.identifier) <= 63 && can(regex("^[a-z][a-z0-9-]*[a-z0-9]$", aws_db_instance.this.identifier))
    error_message = "RDS identifier limits"
  }
  assert {
    condition     = length(aws_db_subnet_group.this.name) <= 255 && length(aws_secretsmanager_secret.db.name) <= 512
    error_message = "other names within limits"
  }
}

run "rejects_bad_db_name" {
  command = plan

  variables {
    db_name = "1-bad"
  }

  expect_failures = [var.db_name]
}
