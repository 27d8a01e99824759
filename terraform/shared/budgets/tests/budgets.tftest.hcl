mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_resource "aws_sns_topic" {
    defaults = {
      arn = "arn:aws:sns:eu-west-1:123456789012:idp-budgets"
    }
  }
}

variables {
  aws_region = "eu-west-1"
  budgets = [
    { name = "previews", monthly_limit = 500 },
    { name = "team-payments", team = "payments", monthly_limit = 150.5, alert_at = [80, 120], emails = ["payments-leads@example.com"] },
  ]
}

run "budget_per_entry_with_team_filter_and_alerts" {
  command = apply

  assert {
    condition     = length(aws_budgets_budget.this) == 2 && output.budget_names == { "previews" = "idp-previews", "team-payments" = "idp-team-payments" }
    error_message = "one budget per entry, named {name_prefix}-{name}"
  }
  assert {
    condition = alltrue([for b in aws_budgets_budget.this : b.budget_type == "COST" && b.time_unit == "MONTHLY" && b.limit_unit == "USD"]) && (
      aws_budgets_budget.this["previews"].limit_amount == "500" && aws_budgets_budget.this["team-payments"].limit_amount == "150.5"
    )
    error_message = "monthly COST budgets in USD with monthly_limit as the limit"
  }
  assert {
    condition     = [for f in aws_budgets_budget.this["team-payments"].cost_filter : { name = f.name, values = f.values }] == [{ name = "TagKeyValue", values = tolist(["user:idp:team$payments"]) }]
    error_message = "a team budget filters on the cost allocation tag user:idp:team$<team>"
  }
  assert {
    condition     = length(aws_budgets_budget.this["previews"].cost_filter) == 0
    error_message = "a budget without team has no tag filter"
  }
  assert {
    condition = toset([for n in aws_budgets_budget.this["previews"].notification : "${n.notification_type}:${n.threshold}"]) == toset(["ACTUAL:50", "ACTUAL:80", "ACTUAL:100", "FORECASTED:100"]) && (
      toset([for n in aws_budgets_budget.this["team-payments"].notification : "${n.notification_type}:${n.threshold}"]) == toset(["ACTUAL:80", "ACTUAL:120", "FORECASTED:100"])
    )
    error_message = "an ACTUAL notification per alert_at percentage (default 50, 80, 100) plus a FORECASTED one at 100"
  }
  assert {
    condition = alltrue(flatten([for b in aws_budgets_budget.this : [for n in b.notification :
      n.comparison_operator == "GREATER_THAN" && n.threshold_type == "PERCENTAGE" && n.subscriber_sns_topic_arns == toset(["arn:aws:sns:eu-west-1:123456789012:idp-budgets"])
    ]]))
    error_message = "every notification: GREATER_THAN a PERCENTAGE, to the stack's topic"
  }
  assert {
    condition = alltrue([for n in aws_budgets_budget.this["team-payments"].notification : n.subscriber_email_addresses == toset(["payments-leads@example.com"])]) && (
      alltrue([for n in aws_budgets_budget.this["previews"].notification : length(n.subscriber_email_addresses) == 0])
    )
    error_message = "a budget's emails subscribe to each of its notifications (and only to its own)"
  }
  assert {
    condition     = aws_sns_topic.budgets[0].name == "idp-budgets" && aws_sns_topic.budgets[0].kms_master_key_id == null && output.sns_topic_arn == "arn:aws:sns:eu-west-1:123456789012:idp-budgets"
    error_message = "the stack's topic idp-budgets, unencrypted by default, in the output"
  }
  assert {
    condition = jsondecode(aws_sns_topic_policy.budgets[0].policy).Statement == [{
      Sid       = "AWSBudgetsPublish"
      Effect    = "Allow"
      Principal = { Service = "budgets.amazonaws.com" }
      Action    = "SNS:Publish"
      Resource  = "arn:aws:sns:eu-west-1:123456789012:idp-budgets"
      Condition = {
        StringEquals = { "aws:SourceAccount" = "123456789012" }
        ArnLike      = { "aws:SourceArn" = "arn:aws:budgets::123456789012:*" }
      }
    }] && aws_sns_topic_policy.budgets[0].arn == aws_sns_topic.budgets[0].arn
    error_message = "the topic policy lets budgets.amazonaws.com publish for this account only"
  }
  assert {
    condition     = length(aws_sns_topic_subscription.notify) == 0 && local.tags["idp:purpose"] == "budgets"
    error_message = "no subscription by default / stack tags"
  }
}

run "subscriptions_kms_and_prefix" {
  command = apply

  variables {
    name_prefix    = "acme-idp"
    sns_kms_key_id = "alias/idp-budgets"
    notify_subscriptions = [
      { protocol = "https", endpoint = "https://idp.example.com/hooks/budgets", endpoint_auto_confirms = true },
      { protocol = "email", endpoint = "finops@example.com" },
    ]
  }

  assert {
    condition     = aws_sns_topic.budgets[0].name == "acme-idp-budgets" && aws_sns_topic.budgets[0].kms_master_key_id == "alias/idp-budgets"
    error_message = "topic name from name_prefix, encrypted with sns_kms_key_id"
  }
  assert {
    condition     = output.budget_names == { "previews" = "acme-idp-previews", "team-payments" = "acme-idp-team-payments" }
    error_message = "budget names from name_prefix"
  }
  assert {
    condition = length(aws_sns_topic_subscription.notify) == 2 && alltrue([for s in aws_sns_topic_subscription.notify : s.topic_arn == aws_sns_topic.budgets[0].arn]) && (
      aws_sns_topic_subscription.notify["https:https://idp.example.com/hooks/budgets"].endpoint_auto_confirms
      && !aws_sns_topic_subscription.notify["email:finops@example.com"].endpoint_auto_confirms
      && aws_sns_topic_subscription.notify["email:finops@example.com"].protocol == "email"
    )
    error_message = "one subscription to the stack's topic per notify_subscriptions entry"
  }
}

run "own_topic_and_emails_without_stack_topic" {
  command = plan

  variables {
    create_sns_topic = false
    budgets = [
      { name = "ops", monthly_limit = 1000, alert_at = [25, 50, 75, 100, 150], forecast_alert = false, sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:ops-alerts" },
      { name = "team-web", team = "web team/frontend", monthly_limit = 80, emails = ["web@example.com", "lead@example.com"] },
    ]
  }

  assert {
    condition     = length(aws_sns_topic.budgets) == 0 && length(aws_sns_topic_policy.budgets) == 0 && output.sns_topic_arn == ""
    error_message = "no topic (nor policy) with create_sns_topic = false"
  }
  assert {
    condition = alltrue([for n in aws_budgets_budget.this["ops"].notification : n.subscriber_sns_topic_arns == toset(["arn:aws:sns:us-east-1:123456789012:ops-alerts"]) && n.notification_type == "ACTUAL"]) && (
      length(aws_budgets_budget.this["ops"].notification) == 5
    )
    error_message = "a budget's own sns_topic_arn receives its alerts; forecast_alert = false: ACTUAL alerts only"
  }
  assert {
    condition = alltrue([for n in aws_budgets_budget.this["team-web"].notification : length(n.subscriber_sns_topic_arns) == 0 && n.subscriber_email_addresses == toset(["web@example.com", "lead@example.com"])]) && (
      one(aws_budgets_budget.this["team-web"].cost_filter).values == tolist(["user:idp:team$web team/frontend"])
    )
    error_message = "e-mail only budget; a team value with a space and a slash is kept as is"
  }
}

run "rejects_zero_limit" {
  command = plan

  variables {
    budgets = [{ name = "previews", monthly_limit = 0 }]
  }

  expect_failures = [var.budgets]
}

run "rejects_percentage_above_1000" {
  command = plan

  variables {
    budgets = [{ name = "previews", monthly_limit = 100, alert_at = [50, 1001] }]
  }

  expect_failures = [var.budgets]
}

run "rejects_zero_percentage" {
  command = plan

  variables {
    budgets = [{ name = "previews", monthly_limit = 100, alert_at = [0, 100] }]
  }

  expect_failures = [var.budgets]
}

run "rejects_more_than_five_notifications" {
  command = plan

  variables {
    budgets = [{ name = "previews", monthly_limit = 100, alert_at = [20, 40, 60, 80, 100] }]
  }

  expect_failures = [var.budgets]
}

run "rejects_duplicate_names" {
  command = plan

  variables {
    budgets = [
      { name = "previews", monthly_limit = 100 },
      { name = "previews", team = "payments", monthly_limit = 50 },
    ]
  }

  expect_failures = [var.budgets]
}

run "rejects_empty_name" {
  command = plan

  variables {
    budgets = [{ name = "", monthly_limit = 100 }]
  }

  expect_failures = [var.budgets]
}

run "rejects_team_outside_the_tag_value_charset" {
  command = plan

  variables {
    # "$" separates key and value in the TagKeyValue filter; AWS tag values cannot hold it.
    budgets = [{ name = "team-payments", team = "pay$ments", monthly_limit = 100 }]
  }

  expect_failures = [var.budgets]
}

run "rejects_email_that_is_no_address" {
  command = plan

  variables {
    budgets = [{ name = "previews", monthly_limit = 100, emails = ["finops"] }]
  }

  expect_failures = [var.budgets]
}

run "rejects_budget_without_subscriber" {
  command = plan

  variables {
    create_sns_topic = false
    budgets          = [{ name = "previews", monthly_limit = 100 }]
  }

  expect_failures = [aws_budgets_budget.this]
}

run "rejects_subscriptions_without_stack_topic" {
  command = plan

  variables {
    create_sns_topic     = false
    budgets              = [{ name = "previews", monthly_limit = 100, emails = ["finops@example.com"] }]
    notify_subscriptions = [{ protocol = "email", endpoint = "finops@example.com" }]
  }

  expect_failures = [output.sns_topic_arn]
}

run "rejects_plain_http_subscription" {
  command = plan

  variables {
    notify_subscriptions = [{ protocol = "http", endpoint = "http://idp.example.com/hooks/budgets" }]
  }

  expect_failures = [var.notify_subscriptions]
}

run "rejects_aws_managed_sns_key" {
  command = plan

  variables {
    sns_kms_key_id = "alias/aws/sns"
  }

  expect_failures = [var.sns_kms_key_id]
}
