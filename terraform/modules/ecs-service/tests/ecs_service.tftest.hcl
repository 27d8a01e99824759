# Offline unit tests: the aws provider is mocked, nothing reaches AWS.

mock_provider "aws" {
  mock_resource "aws_lb" {
    defaults = {
      arn      = "arn:aws:elasticloadbalancing:ap-southeast-2:123456789012:loadbalancer/app/idp-x/0123456789abcdef"
      dns_name = "idp-x-alb-123456.ap-southeast-2.elb.amazonaws.com"
      zone_id  = "Z1GM3OXH4ZPM65"
    }
  }
  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:ap-southeast-2:123456789012:targetgroup/idp-x-tg/0123456789abcdef"
    }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = {
      arn = "arn:aws:ecs:ap-southeast-2:123456789012:cluster/idp-x-cluster"
    }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn = "arn:aws:ecs:ap-southeast-2:123456789012:task-definition/idp-x-task:1"
    }
  }
}

variables {
  environment_name        = "pr-7"
  aws_region              = "ap-southeast-2"
  vpc_id                  = "vpc-0123"
  public_subnet_ids       = ["subnet-a", "subnet-b"]
  private_subnet_ids      = ["subnet-c", "subnet-d"]
  task_execution_role_arn = "arn:aws:iam::123456789012:role/idp-pr-7-ecs-task-execution"
  task_role_arn           = "arn:aws:iam::123456789012:role/idp-pr-7-ecs-task"
  task_role_name          = "idp-pr-7-ecs-task"
  log_group_name          = "/ecs/idp-pr-7"
}

run "defaults_http_only" {
  command = apply

  assert {
    condition     = aws_lb_target_group.this.health_check[0].path == "/"
    error_message = "default health check path must be /"
  }
  assert {
    condition     = length(aws_lb_listener.https) == 0 && length(aws_vpc_security_group_ingress_rule.alb_https) == 0
    error_message = "no HTTPS listener / 443 ingress without a certificate"
  }
  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "forward" && aws_lb_listener.http.default_action[0].target_group_arn == aws_lb_target_group.this.arn
    error_message = "without a cert the HTTP listener forwards to the target group"
  }
  assert {
    condition     = output.endpoint == "http://idp-x-alb-123456.ap-southeast-2.elb.amazonaws.com"
    error_message = "endpoint must be http://<alb dns> without cert and DNS"
  }
  assert {
    condition     = length(aws_lb.this.access_logs) == 0
    error_message = "access logs must be off without a bucket"
  }
  assert {
    condition     = length(module.dns) == 0
    error_message = "no DNS record without zone + domain"
  }
  assert {
    condition     = aws_ecs_service.this.deployment_circuit_breaker[0].enable && aws_ecs_service.this.deployment_circuit_breaker[0].rollback
    error_message = "deployment circuit breaker with rollback is required"
  }
  assert {
    condition     = aws_ecs_service.this.enable_execute_command == false && length(aws_iam_role_policy.ecs_exec) == 0
    error_message = "ECS Exec must be off by default"
  }
  assert {
    condition     = one(aws_ecs_cluster.this.setting).value == "enabled"
    error_message = "container insights default"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].logConfiguration.options["awslogs-region"] == "ap-southeast-2"
    error_message = "aws_region must flow into the awslogs configuration"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].logConfiguration.options["awslogs-group"] == "/ecs/idp-pr-7"
    error_message = "log group must flow into the awslogs configuration"
  }
  assert {
    condition     = aws_ecs_service.this.network_configuration[0].assign_public_ip == false && aws_ecs_service.this.launch_type == "FARGATE"
    error_message = "tasks run in private subnets without public IPs on Fargate"
  }
}

run "health_check_path_flows_into_target_group" {
  command = plan

  variables {
    health_check_path     = "/api/health"
    health_check_matcher  = "200"
    health_check_interval = 15
  }

  assert {
    condition     = aws_lb_target_group.this.health_check[0].path == "/api/health"
    error_message = "health_check_path must flow into the target group"
  }
  assert {
    condition     = aws_lb_target_group.this.health_check[0].matcher == "200" && aws_lb_target_group.this.health_check[0].interval == 15
    error_message = "matcher/interval must flow into the target group"
  }
}

run "rejects_health_check_path_without_slash" {
  command = plan

  variables {
    health_check_path = "health"
  }

  expect_failures = [var.health_check_path]
}

run "https_with_certificate_and_redirect" {
  command = apply

  variables {
    acm_certificate_arn = "arn:aws:acm:ap-southeast-2:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = length(aws_lb_listener.https) == 1 && aws_lb_listener.https[0].port == 443 && aws_lb_listener.https[0].protocol == "HTTPS"
    error_message = "HTTPS listener must exist with a certificate"
  }
  assert {
    condition     = aws_lb_listener.https[0].certificate_arn == var.acm_certificate_arn && aws_lb_listener.https[0].ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    error_message = "HTTPS listener certificate / TLS policy"
  }
  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "redirect" && aws_lb_listener.http.default_action[0].redirect[0].protocol == "HTTPS" && aws_lb_listener.http.default_action[0].redirect[0].status_code == "HTTP_301"
    error_message = "HTTP must redirect to HTTPS when a certificate is given"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.alb_https) == 1
    error_message = "443 ingress with a certificate"
  }
  assert {
    condition     = output.endpoint == "https://idp-x-alb-123456.ap-southeast-2.elb.amazonaws.com"
    error_message = "endpoint must be https://<alb dns> with a certificate"
  }
}

run "domain_without_certificate_is_http" {
  command = apply

  variables {
    route53_zone_id = "Z0123456789ABCDEFGHIJ"
    dns_name        = "pr-7.preview.example.com"
  }

  assert {
    condition     = output.endpoint == "http://pr-7.preview.example.com"
    error_message = "a domain without a certificate must give an http:// endpoint (the original produced a broken https link)"
  }
  assert {
    condition     = length(module.dns) == 1 && module.dns[0].name == "pr-7.preview.example.com"
    error_message = "a DNS record when zone + domain are given"
  }
}

run "domain_with_certificate_is_https" {
  command = apply

  variables {
    route53_zone_id     = "Z0123456789ABCDEFGHIJ"
    dns_name            = "pr-7.preview.example.com"
    acm_certificate_arn = "arn:aws:acm:ap-southeast-2:123456789012:certificate/11111111-2222-3333-4444-555555555555"
  }

  assert {
    condition     = output.endpoint == "https://pr-7.preview.example.com"
    error_message = "https://{domain} with a certificate and a record"
  }
}

run "access_logs_with_bucket" {
  command = plan

  variables {
    access_logs_bucket = "idp-alb-access-logs-123456789012-ap-southeast-2"
  }

  assert {
    condition     = length(aws_lb.this.access_logs) == 1
    error_message = "access logs block expected with a bucket"
  }
  assert {
    condition     = aws_lb.this.access_logs[0].enabled && aws_lb.this.access_logs[0].bucket == var.access_logs_bucket && aws_lb.this.access_logs[0].prefix == "pr-7"
    error_message = "access logs must be enabled into the bucket with prefix = env name"
  }
}

run "ecs_exec_enabled" {
  command = apply

  variables {
    enable_execute_command = true
  }

  assert {
    condition     = aws_ecs_service.this.enable_execute_command
    error_message = "service must enable execute command"
  }
  assert {
    condition     = length(aws_iam_role_policy.ecs_exec) == 1 && aws_iam_role_policy.ecs_exec[0].role == "idp-pr-7-ecs-task"
    error_message = "ssmmessages policy must be on the task role"
  }
  assert {
    condition     = toset(jsondecode(aws_iam_role_policy.ecs_exec[0].policy).Statement[0].Action) == toset(["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"])
    error_message = "ECS Exec actions"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].linuxParameters.initProcessEnabled
    error_message = "init process recommended for ECS Exec"
  }
}

run "task_definition_contents" {
  command = apply

  variables {
    container_image       = "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/app:pr-7-abc1234"
    container_port        = 8080
    cpu                   = 512
    memory                = 2048
    container_insights    = "disabled"
    environment_variables = { B = "2", A = "1" }
    secret_variables      = { TOKEN = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:x-AbCdEf:token::" }
  }

  assert {
    condition     = aws_ecs_task_definition.this.cpu == "512" && aws_ecs_task_definition.this.memory == "2048"
    error_message = "cpu / memory"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].portMappings[0].containerPort == 8080 && aws_lb_target_group.this.port == 8080
    error_message = "container_port must flow into the task definition and target group"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].environment == [{ name = "A", value = "1" }, { name = "B", value = "2" }]
    error_message = "environment list (sorted)"
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.this.container_definitions)[0].secrets == [{ name = "TOKEN", valueFrom = "arn:aws:secretsmanager:ap-southeast-2:123456789012:secret:x-AbCdEf:token::" }]
    error_message = "secrets must be passed as valueFrom"
  }
  assert {
    condition     = one(aws_ecs_cluster.this.setting).value == "disabled"
    error_message = "container_insights variable must flow into the cluster"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.tasks_from_alb.from_port == 8080 && aws_vpc_security_group_egress_rule.alb_to_tasks.to_port == 8080
    error_message = "SG rules on the container port"
  }
}

run "rejects_invalid_fargate_combination" {
  command = plan

  variables {
    cpu    = 256
    memory = 4096
  }

  expect_failures = [aws_ecs_task_definition.this]
}

run "long_name_a" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwx"
  }

  assert {
    condition     = length(aws_lb.this.name) <= 32 && length(aws_lb_target_group.this.name) <= 32
    error_message = "ALB / target group names must be <= 32 chars for a 32-char env name"
  }
  assert {
    condition     = can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", aws_lb.this.name)) && can(regex("^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$", aws_lb_target_group.this.name))
    error_message = "ALB / target group names must be alphanumeric + hyphens, not starting/ending with a hyphen"
  }
  assert {
    condition     = !startswith(aws_lb.this.name, "internal-")
    error_message = "ALB names must not start with internal-"
  }
  assert {
    condition     = length(aws_security_group.alb.name) <= 255 && length(aws_ecs_cluster.this.name) <= 255 && length(aws_iam_role_policy.ecs_exec) == 0
    error_message = "other names within limits"
  }
}

# Shares the first 31 chars of "idp-{env}" with long_name_a: the names must differ.
run "long_name_b_differs" {
  command = plan

  variables {
    environment_name = "preview-abcdefghijklmnopqrstuvwy"
  }

  assert {
    condition     = length(aws_lb.this.name) <= 32 && length(aws_lb_target_group.this.name) <= 32
    error_message = "ALB / target group names must be <= 32 chars"
  }
  assert {
    condition     = aws_lb.this.name != run.long_name_a.alb_name && aws_lb_target_group.this.name != run.long_name_a.target_group_name
    error_message = "two long env names sharing a 28-char prefix must get different ALB / target group names"
  }
}

run "egress_is_open_by_default" {
  command = plan

  assert {
    condition     = keys(aws_vpc_security_group_egress_rule.tasks_all) == ["0.0.0.0/0"]
    error_message = "without egress_cidrs the tasks keep one rule to 0.0.0.0/0"
  }
}

run "untrusted_tasks_reaches_only_egress_cidrs" {
  command = plan

  variables {
    egress_cidrs = ["10.0.0.0/16", "2001:db8::/32"]
  }

  assert {
    condition     = length(aws_vpc_security_group_egress_rule.tasks_all) == 2
    error_message = "one egress rule per network, and no 0.0.0.0/0"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.tasks_all["10.0.0.0/16"].cidr_ipv4 == "10.0.0.0/16" && aws_vpc_security_group_egress_rule.tasks_all["10.0.0.0/16"].cidr_ipv6 == null
    error_message = "an IPv4 network is a cidr_ipv4 rule"
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.tasks_all["2001:db8::/32"].cidr_ipv6 == "2001:db8::/32" && aws_vpc_security_group_egress_rule.tasks_all["2001:db8::/32"].cidr_ipv4 == null
    error_message = "an IPv6 network is a cidr_ipv6 rule"
  }
}

run "rejects_an_egress_cidr_that_is_no_network" {
  command = plan

  variables {
    egress_cidrs = ["registry.npmjs.org"]
  }

  expect_failures = [var.egress_cidrs]
}
