# A scheduled job: an ECS Fargate task definition run by an EventBridge rule.
# No ALB, no inbound traffic.

locals {
  prefix         = "idp-${var.environment_name}"
  container_name = "scheduled-task"
  tags           = merge(var.tags, { "idp:module" = "scheduled-task" })

  fargate_memory = {
    "256"   = [512, 1024, 2048]
    "512"   = range(1024, 4097, 1024)
    "1024"  = range(2048, 8193, 1024)
    "2048"  = range(4096, 16385, 1024)
    "4096"  = range(8192, 30721, 1024)
    "8192"  = range(16384, 61441, 4096)
    "16384" = range(32768, 122881, 8192)
  }

  container_definition = {
    name        = local.container_name
    image       = var.container_image
    essential   = true
    command     = length(var.command) > 0 ? var.command : null
    environment = [for k in sort(keys(var.environment_variables)) : { name = k, value = var.environment_variables[k] }]
    secrets     = [for k in sort(keys(var.secret_variables)) : { name = k, valueFrom = var.secret_variables[k] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "scheduled"
      }
    }
  }
}

resource "aws_ecs_cluster" "this" {
  name = "${local.prefix}-scheduled-cluster"

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = local.tags
}

resource "aws_security_group" "task" {
  name        = "${local.prefix}-scheduled-task-sg"
  description = "Scheduled task of ${local.prefix} (egress only)"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${local.prefix}-scheduled-task-sg" })
}

# Environments made before egress_cidrs had one rule at this address.
moved {
  from = aws_vpc_security_group_egress_rule.task_all
  to   = aws_vpc_security_group_egress_rule.task_all["0.0.0.0/0"]
}

resource "aws_vpc_security_group_egress_rule" "task_all" {
  for_each = toset(var.egress_cidrs)

  security_group_id = aws_security_group.task.id
  description       = "Image pulls, AWS APIs, outbound calls"
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
  ip_protocol       = "-1"
}

resource "aws_iam_role_policy" "s3_read" {
  count = var.s3_bucket_arn != "" ? 1 : 0

  name = "${local.prefix}-scheduled-task-s3-read"
  role = var.task_role_name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.s3_bucket_arn]
      },
      {
        Sid      = "ReadObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${var.s3_bucket_arn}/*"]
      },
    ]
  })
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${local.prefix}-scheduled-task"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.cpu)
  memory                   = tostring(var.memory)
  execution_role_arn       = var.task_execution_role_arn
  task_role_arn            = var.task_role_arn
  container_definitions    = jsonencode([local.container_definition])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_memory, tostring(var.cpu), []), var.memory)
      error_message = "memory ${var.memory} MiB is not a valid Fargate combination for cpu ${var.cpu}."
    }
  }
}

resource "aws_iam_role" "events" {
  name        = "${local.prefix}-events-ecs-role"
  description = "Lets EventBridge run the ${local.prefix} scheduled task."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags                 = local.tags
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "events_run_task" {
  name = "${local.prefix}-events-run-task"
  role = aws_iam_role.events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "RunThisTask"
        Effect   = "Allow"
        Action   = ["ecs:RunTask"]
        Resource = ["${aws_ecs_task_definition.this.arn_without_revision}:*"]
        Condition = {
          ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn }
        }
      },
      {
        Sid      = "PassTaskRoles"
        Effect   = "Allow"
        Action   = ["iam:PassRole"]
        Resource = [var.task_execution_role_arn, var.task_role_arn]
        Condition = {
          StringLike = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" }
        }
      },
    ]
  })
}

resource "aws_cloudwatch_event_rule" "this" {
  name                = "${local.prefix}-scheduled-task"
  description         = "Triggers the ${local.prefix} scheduled ECS task."
  schedule_expression = var.schedule_expression
  state               = var.schedule_enabled ? "ENABLED" : "DISABLED"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "this" {
  rule      = aws_cloudwatch_event_rule.this.name
  target_id = "ecs-task"
  arn       = aws_ecs_cluster.this.arn
  role_arn  = aws_iam_role.events.arn

  ecs_target {
    task_count              = 1
    task_definition_arn     = aws_ecs_task_definition.this.arn
    launch_type             = "FARGATE"
    propagate_tags          = "TASK_DEFINITION"
    enable_ecs_managed_tags = true

    network_configuration {
      subnets          = var.private_subnet_ids
      security_groups  = [aws_security_group.task.id]
      assign_public_ip = false
    }
  }

  depends_on = [aws_iam_role_policy.events_run_task]
}
