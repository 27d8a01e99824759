mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
}

run "bucket_per_region" {
  command = apply

  variables {
    aws_region = "us-west-2"
  }

  assert {
    condition     = output.bucket_name == "idp-alb-access-logs-123456789012-us-west-2" && local.tags["idp:purpose"] == "access-logs"
    error_message = "bucket / tags"
  }
}
