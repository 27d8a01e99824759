# A shared EKS cluster for the kubernetes runtime (issue 11, docs/kubernetes.md): each
# preview environment is a namespace on it. The cluster and its managed node group run
# in the private subnets of the shared preview network (terraform/shared/preview-networking),
# found by tags like the templates find it. The idp server's role gets cluster admin
# through an access entry (authentication_mode API: no aws-auth ConfigMap).

locals {
  partition  = startswith(var.aws_region, "cn-") ? "aws-cn" : (startswith(var.aws_region, "us-gov-") ? "aws-us-gov" : "aws")
  iam_policy = "arn:${local.partition}:iam::aws:policy"

  cluster_admin_policy_arn = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  node_policies = {
    AmazonEKSWorkerNodePolicy          = "${local.iam_policy}/AmazonEKSWorkerNodePolicy"
    AmazonEKS_CNI_Policy               = "${local.iam_policy}/AmazonEKS_CNI_Policy"
    AmazonEC2ContainerRegistryReadOnly = "${local.iam_policy}/AmazonEC2ContainerRegistryReadOnly"
  }

  # Operators besides the idp server (listing the server here as well is harmless).
  admin_principals = setsubtract(toset(var.admin_principal_arns), [var.idp_server_role_arn])
}

module "network" {
  source = "../../modules/shared-network-lookup"

  network_name = var.network_name
}

# ---------------------------------------------------------------- control plane

resource "aws_iam_role" "cluster" {
  name        = "${var.cluster_name}-eks-cluster"
  description = "Control plane of the EKS cluster ${var.cluster_name} (mini-idp previews)."

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "${local.iam_policy}/AmazonEKSClusterPolicy"
}

# Envelope encryption of Kubernetes Secrets (the driver keeps each environment's
# resolved secrets in a Secret "app-env").
resource "aws_kms_key" "secrets" {
  description             = "Envelope encryption of the Kubernetes secrets of EKS cluster ${var.cluster_name}."
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.cluster_name}-eks-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_iam_role_policy" "cluster_secrets_key" {
  name = "secrets-encryption"
  role = aws_iam_role.cluster.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
      Resource = aws_kms_key.secrets.arn
    }]
  })
}

# Created before the cluster so that EKS does not create it without a retention.
resource "aws_cloudwatch_log_group" "cluster" {
  count = length(var.cluster_log_types) > 0 ? 1 : 0

  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
}

resource "aws_eks_cluster" "preview" {
  name                      = var.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = var.cluster_log_types

  vpc_config {
    subnet_ids              = module.network.private_subnet_ids
    endpoint_private_access = var.endpoint_private_access
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  # Access entries only (below); whoever applies the stack gets no hidden admin entry.
  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = false
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.secrets.arn
    }
  }

  upgrade_policy {
    support_type = var.upgrade_support_type
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_secrets_key,
    aws_cloudwatch_log_group.cluster,
  ]

  lifecycle {
    precondition {
      condition     = var.endpoint_private_access || var.endpoint_public_access
      error_message = "endpoint_private_access and endpoint_public_access cannot both be false: nothing could reach the API server."
    }
    precondition {
      condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
      error_message = "public_access_cidrs is required when endpoint_public_access is true: the networks the idp server and operators reach the API from ([\"0.0.0.0/0\"] for any)."
    }
  }
}

# The private endpoint admits the nodes (cluster security group); these networks too.
resource "aws_vpc_security_group_ingress_rule" "private_endpoint" {
  for_each = toset(var.endpoint_private_access_cidrs)

  security_group_id = aws_eks_cluster.preview.vpc_config[0].cluster_security_group_id
  description       = "Kubernetes API (private endpoint) from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# ---------------------------------------------------------------- access

resource "aws_eks_access_entry" "idp_server" {
  cluster_name  = aws_eks_cluster.preview.name
  principal_arn = var.idp_server_role_arn
  type          = "STANDARD"
}

# Cluster scope: the driver creates, lists and deletes namespaces.
resource "aws_eks_access_policy_association" "idp_server" {
  cluster_name  = aws_eks_cluster.preview.name
  principal_arn = aws_eks_access_entry.idp_server.principal_arn
  policy_arn    = local.cluster_admin_policy_arn

  access_scope {
    type = "cluster"
  }
}

resource "aws_eks_access_entry" "admin" {
  for_each = local.admin_principals

  cluster_name  = aws_eks_cluster.preview.name
  principal_arn = each.value
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = local.admin_principals

  cluster_name  = aws_eks_cluster.preview.name
  principal_arn = aws_eks_access_entry.admin[each.key].principal_arn
  policy_arn    = local.cluster_admin_policy_arn

  access_scope {
    type = "cluster"
  }
}

# ---------------------------------------------------------------- add-ons

# The VPC CNI as a managed add-on with network policy enforcement on: without it, the
# NetworkPolicy "idp-default-deny" the driver puts in every namespace is accepted and
# silently not enforced. Created before the nodes, so they start with this configuration.
resource "aws_eks_addon" "vpc_cni" {
  cluster_name                = aws_eks_cluster.preview.name
  addon_name                  = "vpc-cni"
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  configuration_values = jsonencode({
    enableNetworkPolicy = "true"
  })
}

# ---------------------------------------------------------------- nodes

resource "aws_iam_role" "node" {
  name        = "${var.cluster_name}-eks-node"
  description = "Nodes of the EKS cluster ${var.cluster_name} (mini-idp previews)."

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = local.node_policies

  role       = aws_iam_role.node.name
  policy_arn = each.value
}

# A launch template for what the node group cannot say itself: the idp tags on the
# instances, volumes and network interfaces (default_tags reach neither), an encrypted
# gp3 root volume, and IMDSv2 with a hop limit of 1, so that preview pods (code from
# any pushed branch) cannot take the node role's credentials from the instance
# metadata; the VPC CNI and kube-proxy use the host network and still can.
resource "aws_launch_template" "node" {
  name                   = "${var.cluster_name}-eks-node"
  description            = "Nodes of the EKS cluster ${var.cluster_name}."
  update_default_version = true

  block_device_mappings {
    device_name = "/dev/xvda" # root volume of the Amazon Linux 2023 EKS AMI

    ebs {
      volume_size           = var.node_disk_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  dynamic "tag_specifications" {
    for_each = ["instance", "volume", "network-interface"]

    content {
      resource_type = tag_specifications.value
      tags          = merge(local.tags, { Name = "${var.cluster_name}-eks-node" })
    }
  }
}

resource "aws_eks_node_group" "preview" {
  cluster_name    = aws_eks_cluster.preview.name
  node_group_name = "${var.cluster_name}-nodes"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = module.network.private_subnet_ids
  version         = aws_eks_cluster.preview.version

  ami_type       = "AL2023_x86_64_STANDARD"
  capacity_type  = var.node_capacity_type
  instance_types = var.node_instance_types
  labels         = var.node_labels

  scaling_config {
    min_size     = var.node_scaling.min_size
    desired_size = var.node_scaling.desired_size
    max_size     = var.node_scaling.max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = tostring(aws_launch_template.node.latest_version)
  }

  dynamic "taint" {
    for_each = var.node_taints

    content {
      key    = taint.value.key
      value  = taint.value.value
      effect = taint.value.effect
    }
  }

  # The policies stay attached until the nodes are gone (else they cannot drain), and
  # the nodes start with the CNI add-on's configuration.
  depends_on = [
    aws_iam_role_policy_attachment.node,
    aws_eks_addon.vpc_cni,
  ]
}
