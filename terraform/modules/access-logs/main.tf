# The S3 bucket ALB access logs go to (seed #12). Each environment's ALB writes under
# the prefix {env}/ (module ecs-service), so the driver can delete one environment's
# logs with `aws s3 rm s3://BUCKET/{env}/ --recursive`; the lifecycle rule expires
# everything else. ALB log delivery supports SSE-S3 only (not SSE-KMS).

data "aws_caller_identity" "current" {}

locals {
  account     = data.aws_caller_identity.current.account_id
  partition   = startswith(var.aws_region, "cn-") ? "aws-cn" : (startswith(var.aws_region, "us-gov-") ? "aws-us-gov" : "aws")
  bucket_name = var.bucket_name != "" ? var.bucket_name : "idp-alb-access-logs-${local.account}-${var.aws_region}"
  bucket_arn  = "arn:${local.partition}:s3:::${local.bucket_name}"
  # Any {env}/ prefix, this account only.
  log_objects = "${local.bucket_arn}/*/AWSLogs/${local.account}/*"

  legacy_elb_account = lookup(local.elb_log_delivery_accounts, var.aws_region, "")

  delivery_statements = concat(
    [{
      Sid       = "ElbLogDeliveryService"
      Effect    = "Allow"
      Principal = { Service = "logdelivery.elasticloadbalancing.amazonaws.com" }
      Action    = "s3:PutObject"
      Resource  = local.log_objects
    }],
    local.legacy_elb_account == "" ? [] : [{
      Sid       = "ElbLogDeliveryRegionalAccount"
      Effect    = "Allow"
      Principal = { AWS = "arn:${local.partition}:iam::${local.legacy_elb_account}:root" }
      Action    = "s3:PutObject"
      Resource  = local.log_objects
    }],
  )
}

resource "aws_s3_bucket" "logs" {
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = length(local.bucket_name) <= 63
      error_message = "The bucket name is longer than 63 characters; set bucket_name."
    }
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.expiration_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.delivery_statements
  })

  depends_on = [aws_s3_bucket_public_access_block.logs]
}
