variable "budgets" {
  description = "Monthly cost budgets (USD), one per entry, named {name_prefix}-{name}. team: only cost tagged idp:team = team (templates' team variable); \"\" = no tag filter, the whole account's cost (an account given to previews). alert_at: ACTUAL alerts at these percentages of monthly_limit; forecast_alert adds a FORECASTED alert at 100 %. Subscribers of every alert: sns_topic_arn (an existing topic whose policy lets budgets.amazonaws.com publish) or else the stack's topic, plus emails (at most 10)."
  type        = list(object({ name = string, team = optional(string, ""), monthly_limit = number, alert_at = optional(list(number), [50, 80, 100]), forecast_alert = optional(bool, true), emails = optional(list(string), []), sns_topic_arn = optional(string, "") }))

  validation {
    condition     = length(var.budgets) > 0
    error_message = "budgets must list at least one budget."
  }
  validation {
    condition     = alltrue([for b in var.budgets : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$", b.name))])
    error_message = "budgets: every name must be 1-50 letters, digits, _ . or -, starting with a letter or digit."
  }
  validation {
    condition     = length(distinct([for b in var.budgets : b.name])) == length(var.budgets)
    error_message = "budgets: names must be unique (they name the budgets {name_prefix}-{name})."
  }
  validation {
    condition     = alltrue([for b in var.budgets : b.monthly_limit > 0])
    error_message = "budgets: monthly_limit must be greater than 0 (USD)."
  }
  validation {
    condition     = alltrue([for b in var.budgets : can(regex("^[\\p{L}\\p{N}\\p{Z}_.:/=+@-]{0,256}$", b.team))])
    error_message = "budgets: team must be at most 256 characters valid in an AWS tag value (letters, digits, spaces, _ . : / = + - @), like the templates' team variable."
  }
  validation {
    condition     = alltrue([for b in var.budgets : alltrue([for p in b.alert_at : p > 0 && p <= 1000])])
    error_message = "budgets: every alert_at percentage must be greater than 0 and at most 1000."
  }
  validation {
    condition     = alltrue([for b in var.budgets : length(distinct(b.alert_at)) == length(b.alert_at)])
    error_message = "budgets: alert_at must not repeat a percentage."
  }
  validation {
    condition     = alltrue([for b in var.budgets : length(b.alert_at) + (b.forecast_alert ? 1 : 0) >= 1 && length(b.alert_at) + (b.forecast_alert ? 1 : 0) <= 5])
    error_message = "budgets: a budget needs 1 to 5 alerts (AWS Budgets allows 5 notifications per budget): at most 4 alert_at percentages with forecast_alert, 5 without."
  }
  validation {
    condition     = alltrue([for b in var.budgets : length(b.emails) <= 10 && alltrue([for e in b.emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])])
    error_message = "budgets: emails must be at most 10 e-mail addresses (AWS Budgets allows 10 e-mail subscribers per notification)."
  }
  validation {
    condition     = alltrue([for b in var.budgets : b.sns_topic_arn == "" || can(regex("^arn:aws(-cn|-us-gov)?:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$", b.sns_topic_arn))])
    error_message = "budgets: sns_topic_arn must be \"\" or an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:alerts (standard topics only: Budgets cannot publish to FIFO topics)."
  }
}

variable "name_prefix" {
  description = "Prefix of every name: the SNS topic {name_prefix}-budgets and the budgets {name_prefix}-{name}."
  type        = string
  default     = "idp"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits, _ or -, starting with a letter or digit."
  }
}

variable "create_sns_topic" {
  description = "Create the SNS topic {name_prefix}-budgets (its policy lets budgets.amazonaws.com of this account publish) and send every budget's alerts to it, unless the budget names its own sns_topic_arn. false: no topic; each budget then needs sns_topic_arn or emails."
  type        = bool
  default     = true
}

variable "sns_kms_key_id" {
  description = "Customer-managed KMS key (ID, ARN or alias) encrypting the topic. Its key policy must allow budgets.amazonaws.com kms:GenerateDataKey* and kms:Decrypt. \"\": no encryption."
  type        = string
  default     = ""

  validation {
    condition     = !contains(["alias/aws/sns", "aws/sns"], var.sns_kms_key_id)
    error_message = "sns_kms_key_id must not be the AWS managed key alias/aws/sns: its key policy cannot be changed to let AWS Budgets publish, so every alert would be lost. Use a customer-managed key or \"\"."
  }
}

variable "notify_subscriptions" {
  description = "Subscriptions to the stack's topic (create_sns_topic): {protocol, endpoint}, e.g. {protocol = \"https\", endpoint = \"https://idp.example.com/...\"} or {protocol = \"email\", endpoint = \"finops@example.com\"}. https and email subscriptions must be confirmed by their endpoint (endpoint_auto_confirms = true when it does so by itself); sqs and lambda endpoints need a queue policy or a lambda permission of their own."
  type        = list(object({ protocol = string, endpoint = string, endpoint_auto_confirms = optional(bool, false) }))
  default     = []

  validation {
    condition     = alltrue([for s in var.notify_subscriptions : contains(["https", "email", "email-json", "sqs", "lambda", "sms"], s.protocol)])
    error_message = "notify_subscriptions: protocol must be https, email, email-json, sqs, lambda or sms (no plain http)."
  }
  validation {
    condition = alltrue([for s in var.notify_subscriptions : (
      s.protocol == "https" ? startswith(s.endpoint, "https://") :
      contains(["email", "email-json"], s.protocol) ? can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", s.endpoint)) :
      s.protocol == "sqs" ? can(regex("^arn:aws(-cn|-us-gov)?:sqs:", s.endpoint)) :
      s.protocol == "lambda" ? can(regex("^arn:aws(-cn|-us-gov)?:lambda:", s.endpoint)) :
      can(regex("^\\+[0-9]{6,15}$", s.endpoint))
    )])
    error_message = "notify_subscriptions: endpoint must match its protocol: an https:// URL, an e-mail address, an SQS queue or Lambda function ARN, or a phone number in E.164 format (+4915112345678)."
  }
  validation {
    condition     = length(distinct([for s in var.notify_subscriptions : "${s.protocol}:${s.endpoint}"])) == length(var.notify_subscriptions)
    error_message = "notify_subscriptions: every {protocol, endpoint} must be listed once."
  }
}
