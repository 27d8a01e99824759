mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
}

run "legacy_region_policy" {
  command = plan

  variables {
    aws_region = "eu-west-1"
  }

  assert {
    condition     = aws_s3_bucket.logs.bucket == "idp-alb-access-logs-123456789012-eu-west-1" && aws_s3_bucket.logs.force_destroy
    error_message = "default bucket name / force_destroy"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.logs.policy).Statement[0].Principal.Service == "logdelivery.elasticloadbalancing.amazonaws.com"
    error_message = "the ELB log-delivery service principal must be allowed"
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.logs.policy).Statement[1].Principal.AWS == "arn:aws:iam::156460612806:root"
    error_message = "the regional ELB account must be allowed in pre-2022 regions"
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_s3_bucket_policy.logs.policy).Statement : s.Action == "s3:PutObject" && s.Resource == "arn:aws:s3:::idp-alb-access-logs-123456789012-eu-west-1/*/AWSLogs/123456789012/*"])
    error_message = "delivery must be limited to PutObject under */AWSLogs/{account}/"
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.logs.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "SSE-S3 (the only encryption ALB log delivery supports)"
  }
  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.logs.rule[0].expiration[0].days == 14 && aws_s3_bucket_lifecycle_configuration.logs.rule[0].status == "Enabled"
    error_message = "lifecycle expiration"
  }
}

run "new_region_service_principal_only" {
  command = plan

  variables {
    aws_region      = "eu-central-2"
    expiration_days = 3
    bucket_name     = "my-alb-logs"
  }

  assert {
    condition     = length(jsondecode(aws_s3_bucket_policy.logs.policy).Statement) == 1
    error_message = "regions launched after Aug 2022 only use the service principal"
  }
  assert {
    condition     = aws_s3_bucket.logs.bucket == "my-alb-logs" && aws_s3_bucket_lifecycle_configuration.logs.rule[0].expiration[0].days == 3
    error_message = "bucket_name / expiration_days"
  }
}

run "longest_region_name_fits" {
  command = plan

  variables {
    aws_region = "ap-southeast-2"
  }

  assert {
    condition     = length(aws_s3_bucket.logs.bucket) <= 63
    error_message = "bucket name must be <= 63 chars"
  }
}
