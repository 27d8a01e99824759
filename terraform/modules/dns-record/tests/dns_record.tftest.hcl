mock_provider "aws" {}

variables {
  zone_id = "Z0123456789ABCDEFGHIJ"
  name    = "pr-42.preview.example.com"
  target  = "idp-pr-42-abc123-alb-1234567890.eu-west-1.elb.amazonaws.com"
}

run "cname_by_default" {
  command = plan

  assert {
    condition     = length(aws_route53_record.cname) == 1 && length(aws_route53_record.alias) == 0
    error_message = "a CNAME by default"
  }
  assert {
    condition     = aws_route53_record.cname[0].ttl == 60 && aws_route53_record.cname[0].records == toset([var.target])
    error_message = "CNAME to the target with TTL 60"
  }
}

run "alias_a_and_aaaa" {
  command = plan

  variables {
    alias         = true
    alias_zone_id = "Z2FDTNDATAQYW2"
    ipv6          = true
  }

  assert {
    condition     = length(aws_route53_record.cname) == 0 && length(aws_route53_record.alias) == 2
    error_message = "alias A + AAAA"
  }
  assert {
    condition     = aws_route53_record.alias["A"].alias[0].zone_id == "Z2FDTNDATAQYW2" && aws_route53_record.alias["AAAA"].alias[0].name == var.target
    error_message = "alias target"
  }
}

run "rejects_uppercase_names" {
  command = plan

  variables {
    name = "PR-42.example.com"
  }

  expect_failures = [var.name]
}
