# Standard file shared by every AWS template (linked from each; checked by
# tests/terraform/run_terraform_tests.sh). No backend block on purpose: the idp
# driver writes backend_override.tf (local or s3 + DynamoDB) into its per-environment
# working copy; see terraform/README.md.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
