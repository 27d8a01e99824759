# An HTTP service on ECS Fargate behind an internet-facing ALB:
# cluster, task definition, service (circuit breaker with rollback), ALB + target
# group + listeners (HTTPS only with a certificate, then HTTP redirects), security
# groups, optional ECS Exec, optional ALB access logs, optional Route 53 record.

locals {
  prefix         = "idp-${var.environment_name}"
  container_name = "app"

  # ALB and target group names: at most 32 chars, [A-Za-z0-9-], and unique per
  # environment. The original cut "idp-{env}" to 28 chars, so two long names with a
  # common prefix collided. Here: the first 21 chars of "idp-{env}" (trailing
  # hyphens removed) + "-" + 6 hex chars of sha1(env) + "-alb" => <= 32 chars.
  # The target group hash also covers the port: a port change then gets a new name,
  # so create_before_destroy can swap the target group under the listener.
  name_stem = replace(substr(local.prefix, 0, 21), "/-+$/", "")
  alb_name  = "${local.name_stem}-${substr(sha1(var.environment_name), 0, 6)}-alb"
  tg_name   = "${local.name_stem}-${substr(sha1("${var.environment_name}:${var.container_port}"), 0, 6)}-tg"

  https_enabled = var.acm_certificate_arn != ""
  dns_enabled   = var.route53_zone_id != "" && var.dns_name != ""
  endpoint_host = local.dns_enabled ? var.dns_name : aws_lb.this.dns_name
  # Fix for the original's broken link: https only when a certificate exists.
  endpoint = "${local.https_enabled ? "https" : "http"}://${local.endpoint_host}"

  # Valid Fargate (Linux) cpu -> memory combinations, in MiB.
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
    name      = local.container_name
    image     = var.container_image
    essential = true
    portMappings = [{
      containerPort = var.container_port
      hostPort      = var.container_port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(var.environment_variables)) : { name = k, value = var.environment_variables[k] }]
    secrets     = [for k in sort(keys(var.secret_variables)) : { name = k, valueFrom = var.secret_variables[k] }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = var.log_group_name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "ecs"
      }
    }
    linuxParameters = var.enable_execute_command ? { initProcessEnabled = true } : null
  }
}

resource "aws_ecs_cluster" "this" {
  name = "${local.prefix}-cluster"

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Security groups: internet -> ALB (80, and 443 with a cert) -> tasks (container_port).
# ---------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${local.prefix}-alb-sg"
  description = "ALB of ${local.prefix}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${local.prefix}-alb-sg" })
}

resource "aws_security_group" "tasks" {
  name        = "${local.prefix}-ecs-tasks-sg"
  description = "ECS tasks of ${local.prefix}"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${local.prefix}-ecs-tasks-sg" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from anywhere"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  count = local.https_enabled ? 1 : 0

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from anywhere"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks on the container port"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "From the ALB on the container port"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# Environments made before egress_cidrs had one rule at this address.
moved {
  from = aws_vpc_security_group_egress_rule.tasks_all
  to   = aws_vpc_security_group_egress_rule.tasks_all["0.0.0.0/0"]
}

resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  for_each = toset(var.egress_cidrs)

  security_group_id = aws_security_group.tasks.id
  description       = "Image pulls, AWS APIs, databases"
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
  ip_protocol       = "-1"
}

# ---------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------

resource "aws_lb" "this" {
  name                       = local.alb_name
  internal                   = false
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.public_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = false

  dynamic "access_logs" {
    for_each = var.access_logs_bucket != "" ? [var.access_logs_bucket] : []
    content {
      bucket  = access_logs.value
      prefix  = var.environment_name
      enabled = true
    }
  }

  tags = merge(var.tags, { Name = "${local.prefix}-alb" })
}

resource "aws_lb_target_group" "this" {
  name        = local.tg_name
  port        = var.container_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  deregistration_delay = 15

  health_check {
    enabled             = true
    path                = var.health_check_path
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = var.health_check_matcher
    healthy_threshold   = 3
    unhealthy_threshold = 3
    timeout             = 5
    interval            = var.health_check_interval
  }

  tags = merge(var.tags, { Name = "${local.prefix}-tg" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https_enabled ? "redirect" : "forward"
    target_group_arn = local.https_enabled ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https_enabled ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  count = local.https_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.acm_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Task definition and service
# ---------------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = "${local.prefix}-task"
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

  tags = var.tags

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_memory, tostring(var.cpu), []), var.memory)
      error_message = "memory ${var.memory} MiB is not a valid Fargate combination for cpu ${var.cpu} (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720, in 1024 steps; 8192: 16384-61440 in 4096 steps; 16384: 32768-122880 in 8192 steps)."
    }
  }
}

resource "aws_iam_role_policy" "ecs_exec" {
  count = var.enable_execute_command ? 1 : 0

  name = "${local.prefix}-ecs-exec"
  role = var.task_role_name
  # These four actions do not support resource-level permissions.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "EcsExecSessionChannels"
      Effect   = "Allow"
      Action   = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
      Resource = "*"
    }]
  })
}

resource "aws_ecs_service" "this" {
  name                              = "${local.prefix}-service"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  enable_execute_command            = var.enable_execute_command
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  wait_for_steady_state             = var.wait_for_steady_state

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  tags = var.tags

  depends_on = [aws_lb_listener.http, aws_lb_listener.https, aws_iam_role_policy.ecs_exec]
}

module "dns" {
  source = "../dns-record"
  count  = local.dns_enabled ? 1 : 0

  zone_id       = var.route53_zone_id
  name          = var.dns_name
  target        = aws_lb.this.dns_name
  alias         = true
  alias_zone_id = aws_lb.this.zone_id
}
