mock_provider "aws" {}

override_data {
  target = data.aws_vpc.shared
  values = {
    id         = "vpc-0shared"
    cidr_block = "10.100.0.0/16"
  }
}

override_data {
  target = data.aws_subnets.public
  values = {
    ids = ["subnet-pub-b", "subnet-pub-a"]
  }
}

override_data {
  target = data.aws_subnets.private
  values = {
    ids = ["subnet-priv-b", "subnet-priv-a"]
  }
}

run "finds_shared_network_by_tag" {
  command = plan

  assert {
    condition     = data.aws_vpc.shared.tags["idp:network"] == "shared-preview"
    error_message = "lookup must filter on idp:network = network_name"
  }
  assert {
    condition     = data.aws_subnets.private.tags["idp:tier"] == "private" && data.aws_subnets.public.tags["idp:tier"] == "public"
    error_message = "subnet lookup must filter on idp:tier"
  }
  assert {
    condition     = output.vpc_id == "vpc-0shared" && output.private_subnet_ids == tolist(["subnet-priv-a", "subnet-priv-b"])
    error_message = "outputs must come from the lookups"
  }
}

run "custom_network_name" {
  command = plan

  variables {
    network_name = "team-a"
  }

  assert {
    condition     = data.aws_vpc.shared.tags["idp:network"] == "team-a"
    error_message = "network_name must drive the tag filter"
  }
}
