# Standard file shared by every AWS template (linked from each).
# The region comes from var.aws_region (never a hard-coded default) and every
# resource gets the idp:* tags through default_tags.

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

locals {
  # idp:* keys win over extra_tags. idp:expires-at changes on every extend, which
  # is an in-place tag update of each taggable resource (no replacement); the
  # driver must pass the ORIGINAL created_at on every apply so idp:created-at
  # never churns. See terraform/README.md "Tags".
  # idp:team (the AWS Budgets of terraform/shared/budgets filter on it) is set only
  # when the environment has a team: no empty-valued tag on every resource. An
  # idp:team in extra_tags is dropped even then, so that no environment can charge
  # its cost to another team's budget.
  tags = merge(
    { for k, v in var.extra_tags : k => v if k != "idp:team" },
    var.team == "" ? {} : { "idp:team" = var.team },
    {
      "idp:environment" = var.environment_name
      "idp:owner"       = var.owner
      "idp:template"    = local.template_name
      "idp:created-at"  = var.created_at
      "idp:expires-at"  = var.expires_at
      "idp:managed"     = "true"
    },
  )
}
