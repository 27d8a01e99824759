variables {
  environment_name = "tf-1"
  owner            = "tester"
  created_at       = "2026-03-25T10:00:00Z"
  expires_at       = "2026-03-26T10:00:00Z"
}

run "applies" {
  assert {
    condition     = output.endpoint == "http://tf-1.tf-test.invalid" && output.id != ""
    error_message = "endpoint / id outputs"
  }
  assert {
    condition     = output.expires_at == "2026-03-26T10:00:00Z" && terraform_data.environment.output.aws_region == "local-1"
    error_message = "inputs are recorded"
  }
}

run "extend_updates_in_place" {
  variables {
    expires_at = "2026-03-27T10:00:00Z"
  }

  assert {
    condition     = output.expires_at == "2026-03-27T10:00:00Z" && output.id == run.applies.id
    error_message = "an extend updates the environment in place (same id, new expires_at)"
  }
}

run "plan_succeeds_when_fail_is_set" {
  command = plan

  variables {
    fail = true
  }

  assert {
    condition     = length(terraform_data.failure) == 1
    error_message = "plan must succeed with fail = true"
  }
}

run "apply_fails_when_fail_is_set" {
  variables {
    fail = true
  }

  expect_failures = [terraform_data.failure]
}
