# AWS Budgets on preview cost: one monthly COST budget per entry of var.budgets, with
# ACTUAL alerts at its alert_at percentages and a FORECASTED alert at 100 %, sent to an
# SNS topic (this stack's, or the budget's own) and to e-mail addresses.
#
# A team budget filters on the cost allocation tag idp:team (set by every template from
# its team variable). Budgets can only filter on ACTIVATED cost allocation tags: activate
# idp:team (and idp:environment) in Billing -> Cost allocation tags first (see
# terraform/README.md "Budgets"). The filter cannot also require idp:environment: the
# provider's cost_filter is the Budgets CostFilters map, in which the values of one
# filter (TagKeyValue) are ORed and there is only one TagKeyValue filter. So a team
# budget covers everything tagged idp:team = team; only the templates set that tag.

data "aws_caller_identity" "current" {}

locals {
  partition = startswith(var.aws_region, "cn-") ? "aws-cn" : (startswith(var.aws_region, "us-gov-") ? "aws-us-gov" : "aws")
  account   = data.aws_caller_identity.current.account_id

  # Grouped (name => [budget]) so that duplicate names reach the variable's validation
  # instead of failing here as a duplicate object key.
  budgets = { for name, bs in { for b in var.budgets : b.name => b... } : name => bs[0] }

  topic_arn = var.create_sns_topic ? aws_sns_topic.budgets[0].arn : ""

  # A notification takes ONE SNS subscriber: a budget's own topic replaces the stack's.
  budget_topics = { for name, b in local.budgets : name => (
    b.sns_topic_arn != "" ? [b.sns_topic_arn] : (var.create_sns_topic ? [local.topic_arn] : [])
  ) }

  # Cost Explorer names user-defined cost allocation tags user:{key}; key and value are
  # joined by "$" (AWS Budgets CostFilters "TagKeyValue").
  team_filters = { for name, b in local.budgets : name => format("user:%s$%s", "idp:team", b.team) if b.team != "" }

  notifications = { for name, b in local.budgets : name => concat(
    [for p in b.alert_at : { type = "ACTUAL", threshold = p }],
    b.forecast_alert ? [{ type = "FORECASTED", threshold = 100 }] : [],
  ) }

  subscriptions = { for s in var.notify_subscriptions : "${s.protocol}:${s.endpoint}" => s }
}

resource "aws_sns_topic" "budgets" {
  count = var.create_sns_topic ? 1 : 0

  name              = "${var.name_prefix}-budgets"
  display_name      = "mini-idp budgets"
  kms_master_key_id = var.sns_kms_key_id == "" ? null : var.sns_kms_key_id
}

# Replaces the topic's default policy: principals of this account still manage and
# subscribe through their IAM policies; AWS Budgets may publish for this account only.
resource "aws_sns_topic_policy" "budgets" {
  count = var.create_sns_topic ? 1 : 0

  arn = aws_sns_topic.budgets[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AWSBudgetsPublish"
      Effect    = "Allow"
      Principal = { Service = "budgets.amazonaws.com" }
      Action    = "SNS:Publish"
      Resource  = aws_sns_topic.budgets[0].arn
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:budgets::${local.account}:*" }
      }
    }]
  })
}

resource "aws_sns_topic_subscription" "notify" {
  for_each = var.create_sns_topic ? local.subscriptions : {}

  topic_arn              = aws_sns_topic.budgets[0].arn
  protocol               = each.value.protocol
  endpoint               = each.value.endpoint
  endpoint_auto_confirms = each.value.endpoint_auto_confirms
}

resource "aws_budgets_budget" "this" {
  for_each = local.budgets

  name         = "${var.name_prefix}-${each.key}"
  budget_type  = "COST"
  time_unit    = "MONTHLY"
  limit_amount = tostring(each.value.monthly_limit)
  limit_unit   = "USD"

  dynamic "cost_filter" {
    for_each = contains(keys(local.team_filters), each.key) ? [local.team_filters[each.key]] : []

    content {
      name   = "TagKeyValue"
      values = [cost_filter.value]
    }
  }

  dynamic "notification" {
    for_each = local.notifications[each.key]

    content {
      comparison_operator        = "GREATER_THAN"
      threshold                  = notification.value.threshold
      threshold_type             = "PERCENTAGE"
      notification_type          = notification.value.type
      subscriber_sns_topic_arns  = local.budget_topics[each.key]
      subscriber_email_addresses = each.value.emails
    }
  }

  # The topic must let Budgets publish before the first alert is sent.
  depends_on = [aws_sns_topic_policy.budgets]

  lifecycle {
    precondition {
      condition     = var.create_sns_topic || each.value.sns_topic_arn != "" || length(each.value.emails) > 0
      error_message = "budget ${each.key} has no subscriber: set create_sns_topic = true, or give it sns_topic_arn or emails."
    }
  }
}
