mock_provider "aws" {
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/mini-idp-preview-eks-cluster"
    }
  }
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      key_id = "11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_launch_template" {
    defaults = {
      id             = "lt-0123456789abcdef0"
      latest_version = 1
    }
  }
  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:123456789012:cluster/mini-idp-preview"
      endpoint              = "https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
      certificate_authority = [{ data = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==" }]
      identity              = [{ oidc = [{ issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF" }] }]
    }
  }
}

# The shared preview network (terraform/shared/preview-networking), found by its tags.
override_data {
  target = module.network.data.aws_vpc.shared
  values = {
    id         = "vpc-0shared"
    cidr_block = "10.100.0.0/16"
  }
}

override_data {
  target = module.network.data.aws_subnets.public
  values = {
    ids = ["subnet-pub-b", "subnet-pub-a"]
  }
}

override_data {
  target = module.network.data.aws_subnets.private
  values = {
    ids = ["subnet-priv-b", "subnet-priv-a"]
  }
}

variables {
  aws_region          = "eu-west-1"
  idp_server_role_arn = "arn:aws:iam::123456789012:role/idp-server"
  public_access_cidrs = ["203.0.113.0/24"]
}

run "cluster_in_the_shared_private_subnets" {
  command = plan

  assert {
    condition     = aws_eks_cluster.preview.name == "mini-idp-preview" && aws_eks_cluster.preview.version == "1.33"
    error_message = "cluster name and Kubernetes version"
  }
  assert {
    condition     = aws_eks_cluster.preview.vpc_config[0].subnet_ids == toset(["subnet-priv-a", "subnet-priv-b"])
    error_message = "the control plane runs in the shared network's private subnets"
  }
  assert {
    condition     = module.network.vpc_id == "vpc-0shared"
    error_message = "the shared network is looked up by its idp:network tag"
  }
  assert {
    condition = (aws_eks_cluster.preview.vpc_config[0].endpoint_private_access && aws_eks_cluster.preview.vpc_config[0].endpoint_public_access
    && aws_eks_cluster.preview.vpc_config[0].public_access_cidrs == toset(["203.0.113.0/24"]))
    error_message = "private and public endpoint, public one limited to public_access_cidrs"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.private_endpoint) == 0
    error_message = "no extra private-endpoint rule by default"
  }
  assert {
    condition     = aws_eks_cluster.preview.upgrade_policy[0].support_type == "STANDARD"
    error_message = "standard support by default (extended support costs six times as much)"
  }
  assert {
    condition     = aws_eks_cluster.preview.enabled_cluster_log_types == toset(["api", "audit", "authenticator"])
    error_message = "default control-plane log types"
  }
  assert {
    condition     = aws_cloudwatch_log_group.cluster[0].name == "/aws/eks/mini-idp-preview/cluster" && aws_cloudwatch_log_group.cluster[0].retention_in_days == 7
    error_message = "the control-plane log group is created with a retention"
  }
  assert {
    condition     = local.tags["idp:purpose"] == "eks-preview" && local.tags["idp:managed"] == "true" && local.tags["idp:tool"] == "mini-idp"
    error_message = "stack tags"
  }
}

run "secrets_envelope_encryption" {
  command = plan

  assert {
    condition     = aws_kms_key.secrets.enable_key_rotation && aws_kms_alias.secrets.name == "alias/mini-idp-preview-eks-secrets"
    error_message = "a KMS key with rotation, and its alias"
  }
  assert {
    condition     = aws_eks_cluster.preview.encryption_config[0].resources == toset(["secrets"])
    error_message = "Kubernetes secrets are envelope-encrypted"
  }
}

run "iam_roles_and_policies" {
  command = plan

  assert {
    condition     = aws_iam_role.cluster.name == "mini-idp-preview-eks-cluster" && aws_iam_role.node.name == "mini-idp-preview-eks-node"
    error_message = "role names (never idp-*: the idp server's policy may change those)"
  }
  assert {
    condition     = jsondecode(aws_iam_role.cluster.assume_role_policy).Statement[0].Principal.Service == "eks.amazonaws.com"
    error_message = "the cluster role is for EKS"
  }
  assert {
    condition     = jsondecode(aws_iam_role.node.assume_role_policy).Statement[0].Principal.Service == "ec2.amazonaws.com"
    error_message = "the node role is for EC2"
  }
  assert {
    condition     = aws_iam_role_policy_attachment.cluster.policy_arn == "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
    error_message = "AmazonEKSClusterPolicy on the cluster role"
  }
  assert {
    condition = toset([for a in aws_iam_role_policy_attachment.node : a.policy_arn]) == toset([
      "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
      "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
      "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    ])
    error_message = "worker, CNI and ECR read-only policies on the node role"
  }
  assert {
    condition     = alltrue([for a in aws_iam_role_policy_attachment.node : a.role == "mini-idp-preview-eks-node"])
    error_message = "node policies are attached to the node role"
  }
}

run "idp_server_is_cluster_admin_through_an_access_entry" {
  command = plan

  assert {
    condition     = aws_eks_cluster.preview.access_config[0].authentication_mode == "API" && aws_eks_cluster.preview.access_config[0].bootstrap_cluster_creator_admin_permissions == false
    error_message = "access entries only, no hidden admin entry for the creator"
  }
  assert {
    condition     = aws_eks_access_entry.idp_server.principal_arn == "arn:aws:iam::123456789012:role/idp-server" && aws_eks_access_entry.idp_server.type == "STANDARD"
    error_message = "access entry for the idp server's role"
  }
  assert {
    condition     = aws_eks_access_policy_association.idp_server.principal_arn == "arn:aws:iam::123456789012:role/idp-server"
    error_message = "the policy is associated with the server's entry"
  }
  assert {
    condition = (aws_eks_access_policy_association.idp_server.policy_arn == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    && aws_eks_access_policy_association.idp_server.access_scope[0].type == "cluster")
    error_message = "AmazonEKSClusterAdminPolicy, cluster scope (the driver creates namespaces)"
  }
  assert {
    condition     = length(aws_eks_access_entry.admin) == 0 && length(aws_eks_access_policy_association.admin) == 0
    error_message = "no other admin by default"
  }
}

run "node_group" {
  command = plan

  assert {
    condition     = aws_eks_node_group.preview.node_group_name == "mini-idp-preview-nodes" && aws_eks_node_group.preview.version == "1.33"
    error_message = "node group name, version of the control plane"
  }
  assert {
    condition     = aws_eks_node_group.preview.subnet_ids == toset(["subnet-priv-a", "subnet-priv-b"])
    error_message = "nodes run in the private subnets"
  }
  assert {
    condition = (aws_eks_node_group.preview.scaling_config[0].min_size == 1 && aws_eks_node_group.preview.scaling_config[0].desired_size == 2
    && aws_eks_node_group.preview.scaling_config[0].max_size == 3)
    error_message = "default scaling 1/2/3"
  }
  assert {
    condition = (aws_eks_node_group.preview.capacity_type == "ON_DEMAND" && aws_eks_node_group.preview.instance_types == tolist(["t3.large"])
    && aws_eks_node_group.preview.ami_type == "AL2023_x86_64_STANDARD")
    error_message = "capacity type, instance types, AMI type"
  }
  assert {
    condition     = length(aws_eks_node_group.preview.taint) == 0 && length(aws_eks_node_group.preview.labels) == 0
    error_message = "no taints or labels by default"
  }
  assert {
    condition = (aws_launch_template.node.block_device_mappings[0].device_name == "/dev/xvda"
      && aws_launch_template.node.block_device_mappings[0].ebs[0].volume_size == 50
    && aws_launch_template.node.block_device_mappings[0].ebs[0].encrypted == "true")
    error_message = "encrypted 50 GiB root volume"
  }
  assert {
    condition     = aws_launch_template.node.metadata_options[0].http_tokens == "required" && aws_launch_template.node.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 out of the pods' reach"
  }
  assert {
    condition = (toset([for t in aws_launch_template.node.tag_specifications : t.resource_type]) == toset(["instance", "volume", "network-interface"])
    && alltrue([for t in aws_launch_template.node.tag_specifications : t.tags["idp:purpose"] == "eks-preview" && t.tags["idp:managed"] == "true"]))
    error_message = "instances, volumes and interfaces carry the stack tags"
  }
  assert {
    condition     = jsondecode(aws_eks_addon.vpc_cni.configuration_values).enableNetworkPolicy == "true"
    error_message = "the VPC CNI enforces NetworkPolicies (the driver's idp-default-deny)"
  }
}

run "custom_nodes_access_and_partition" {
  command = plan

  variables {
    aws_region                    = "cn-north-1"
    idp_server_role_arn           = "arn:aws-cn:iam::123456789012:role/idp-server"
    admin_principal_arns          = ["arn:aws-cn:iam::123456789012:role/idp-server", "arn:aws-cn:iam::123456789012:role/Admin"]
    kubernetes_version            = "1.32"
    node_capacity_type            = "SPOT"
    node_instance_types           = ["m6i.large", "m5.large"]
    node_scaling                  = { min_size = 2, desired_size = 3, max_size = 5 }
    node_disk_size                = 100
    node_labels                   = { "idp.dev/pool" = "previews" }
    node_taints                   = [{ key = "dedicated", value = "previews", effect = "NO_SCHEDULE" }]
    endpoint_public_access        = false
    public_access_cidrs           = []
    endpoint_private_access_cidrs = ["10.20.0.0/16"]
    cluster_log_types             = []
    extra_tags                    = { "cost-center" = "platform", "idp:purpose" = "other" }
  }

  assert {
    condition     = aws_eks_cluster.preview.version == "1.32" && aws_eks_node_group.preview.version == "1.32"
    error_message = "kubernetes_version drives control plane and nodes"
  }
  assert {
    condition = (aws_eks_node_group.preview.capacity_type == "SPOT" && aws_eks_node_group.preview.instance_types == tolist(["m6i.large", "m5.large"])
    && aws_eks_node_group.preview.scaling_config[0].min_size == 2 && aws_eks_node_group.preview.scaling_config[0].desired_size == 3 && aws_eks_node_group.preview.scaling_config[0].max_size == 5)
    error_message = "SPOT, instance types, scaling"
  }
  assert {
    condition     = aws_launch_template.node.block_device_mappings[0].ebs[0].volume_size == 100
    error_message = "node_disk_size"
  }
  assert {
    condition = (aws_eks_node_group.preview.labels["idp.dev/pool"] == "previews"
    && one(aws_eks_node_group.preview.taint).key == "dedicated" && one(aws_eks_node_group.preview.taint).effect == "NO_SCHEDULE")
    error_message = "labels and taints"
  }
  assert {
    condition     = keys(aws_eks_access_entry.admin) == ["arn:aws-cn:iam::123456789012:role/Admin"] && aws_eks_access_policy_association.admin["arn:aws-cn:iam::123456789012:role/Admin"].access_scope[0].type == "cluster"
    error_message = "one entry for the operator; the server listed again gets no second entry"
  }
  assert {
    condition = (aws_eks_access_policy_association.idp_server.policy_arn == "arn:aws-cn:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    && contains([for a in aws_iam_role_policy_attachment.node : a.policy_arn], "arn:aws-cn:iam::aws:policy/AmazonEKSWorkerNodePolicy"))
    error_message = "ARNs follow the region's partition"
  }
  assert {
    condition     = !aws_eks_cluster.preview.vpc_config[0].endpoint_public_access && aws_eks_cluster.preview.vpc_config[0].endpoint_private_access
    error_message = "private endpoint only"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.private_endpoint["10.20.0.0/16"].from_port == 443 && aws_vpc_security_group_ingress_rule.private_endpoint["10.20.0.0/16"].cidr_ipv4 == "10.20.0.0/16"
    error_message = "the private endpoint admits endpoint_private_access_cidrs on 443"
  }
  assert {
    condition     = length(aws_cloudwatch_log_group.cluster) == 0 && length(aws_eks_cluster.preview.enabled_cluster_log_types) == 0
    error_message = "no control-plane logs, no log group"
  }
  assert {
    condition     = local.tags["cost-center"] == "platform" && local.tags["idp:purpose"] == "eks-preview"
    error_message = "extra_tags are added but cannot override idp:*"
  }
}

run "outputs_and_kubeconfig" {
  command = apply

  assert {
    condition = (output.cluster_name == "mini-idp-preview" && output.node_group_name == "mini-idp-preview-nodes"
      && output.cluster_endpoint == "https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
      && output.cluster_certificate_authority_data == "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
    && output.cluster_oidc_issuer_url == "https://oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF")
    error_message = "cluster outputs"
  }
  assert {
    condition     = aws_eks_node_group.preview.launch_template[0].id == "lt-0123456789abcdef0" && aws_eks_node_group.preview.launch_template[0].version == "1"
    error_message = "the node group uses the launch template's latest version"
  }
  assert {
    condition = (yamldecode(output.kubeconfig).clusters[0].cluster.server == output.cluster_endpoint
    && yamldecode(output.kubeconfig).clusters[0].cluster["certificate-authority-data"] == output.cluster_certificate_authority_data)
    error_message = "kubeconfig: server and CA"
  }
  assert {
    condition = (yamldecode(output.kubeconfig).users[0].user.exec.apiVersion == "client.authentication.k8s.io/v1beta1"
      && yamldecode(output.kubeconfig).users[0].user.exec.command == "aws"
      && yamldecode(output.kubeconfig).users[0].user.exec.args == ["eks", "get-token", "--cluster-name", "mini-idp-preview", "--region", "eu-west-1", "--output", "json"]
    && yamldecode(output.kubeconfig).users[0].user.exec.interactiveMode == "Never")
    error_message = "kubeconfig: aws eks get-token for this cluster and region, never interactive"
  }
  assert {
    condition = (yamldecode(output.kubeconfig)["current-context"] == "arn:aws:eks:eu-west-1:123456789012:cluster/mini-idp-preview"
      && yamldecode(output.kubeconfig).contexts[0].context.cluster == yamldecode(output.kubeconfig).clusters[0].name
    && yamldecode(output.kubeconfig).contexts[0].context.user == yamldecode(output.kubeconfig).users[0].name)
    error_message = "kubeconfig: the current context joins cluster and user"
  }
  assert {
    condition     = aws_eks_cluster.preview.role_arn == aws_iam_role.cluster.arn && aws_eks_cluster.preview.encryption_config[0].provider[0].key_arn == aws_kms_key.secrets.arn
    error_message = "the cluster uses its role and the key"
  }
  assert {
    condition = (jsondecode(aws_iam_role_policy.cluster_secrets_key.policy).Statement[0].Resource == aws_kms_key.secrets.arn
    && contains(jsondecode(aws_iam_role_policy.cluster_secrets_key.policy).Statement[0].Action, "kms:Decrypt"))
    error_message = "the cluster role may use the key"
  }
}

# ---------------------------------------------------------------- bad input

run "rejects_cluster_name_with_bad_characters" {
  command = plan
  variables {
    cluster_name = "Preview_Cluster"
  }
  expect_failures = [var.cluster_name]
}

run "rejects_cluster_name_starting_with_idp" {
  command = plan
  variables {
    cluster_name = "idp-preview"
  }
  expect_failures = [var.cluster_name]
}

run "rejects_patch_version" {
  command = plan
  variables {
    kubernetes_version = "1.33.1"
  }
  expect_failures = [var.kubernetes_version]
}

run "rejects_v_prefixed_version" {
  command = plan
  variables {
    kubernetes_version = "v1.33"
  }
  expect_failures = [var.kubernetes_version]
}

run "rejects_unknown_support_type" {
  command = plan
  variables {
    upgrade_support_type = "LTS"
  }
  expect_failures = [var.upgrade_support_type]
}

run "rejects_unknown_capacity_type" {
  command = plan
  variables {
    node_capacity_type = "spot"
  }
  expect_failures = [var.node_capacity_type]
}

run "rejects_min_above_desired" {
  command = plan
  variables {
    node_scaling = { min_size = 3, desired_size = 2, max_size = 4 }
  }
  expect_failures = [var.node_scaling]
}

run "rejects_desired_above_max" {
  command = plan
  variables {
    node_scaling = { desired_size = 4 }
  }
  expect_failures = [var.node_scaling]
}

run "rejects_fractional_sizes" {
  command = plan
  variables {
    node_scaling = { min_size = 1, desired_size = 1.5, max_size = 3 }
  }
  expect_failures = [var.node_scaling]
}

run "rejects_small_disk" {
  command = plan
  variables {
    node_disk_size = 10
  }
  expect_failures = [var.node_disk_size]
}

run "rejects_empty_instance_types" {
  command = plan
  variables {
    node_instance_types = []
  }
  expect_failures = [var.node_instance_types]
}

run "rejects_kubernetes_style_taint_effect" {
  command = plan
  variables {
    node_taints = [{ key = "dedicated", value = "previews", effect = "NoSchedule" }]
  }
  expect_failures = [var.node_taints]
}

run "rejects_unknown_log_type" {
  command = plan
  variables {
    cluster_log_types = ["api", "apiserver"]
  }
  expect_failures = [var.cluster_log_types]
}

run "rejects_log_retention_cloudwatch_does_not_offer" {
  command = plan
  variables {
    log_retention_days = 10
  }
  expect_failures = [var.log_retention_days]
}

run "rejects_public_cidr_without_prefix" {
  command = plan
  variables {
    public_access_cidrs = ["203.0.113.7"]
  }
  expect_failures = [var.public_access_cidrs]
}

run "rejects_private_cidr_without_prefix" {
  command = plan
  variables {
    endpoint_private_access_cidrs = ["10.20.0.0/33"]
  }
  expect_failures = [var.endpoint_private_access_cidrs]
}

run "rejects_assumed_role_session_as_server" {
  command = plan
  variables {
    idp_server_role_arn = "arn:aws:sts::123456789012:assumed-role/idp-server/i-0123456789abcdef0"
  }
  expect_failures = [var.idp_server_role_arn]
}

run "rejects_bad_admin_principal" {
  command = plan
  variables {
    admin_principal_arns = ["Admin"]
  }
  expect_failures = [var.admin_principal_arns]
}

run "public_endpoint_needs_cidrs" {
  command = plan
  variables {
    public_access_cidrs = []
  }
  expect_failures = [aws_eks_cluster.preview]
}

run "some_endpoint_must_be_on" {
  command = plan
  variables {
    endpoint_private_access = false
    endpoint_public_access  = false
  }
  expect_failures = [aws_eks_cluster.preview]
}
