locals {
  # As `aws eks update-kubeconfig` writes it (the cluster ARN names cluster, user and
  # context, so files of two regions merge without a clash). No secret in it: the exec
  # plugin asks STS for a short-lived token with the caller's AWS credentials.
  kubeconfig = yamlencode({
    apiVersion = "v1"
    kind       = "Config"
    clusters = [{
      name = aws_eks_cluster.preview.arn
      cluster = {
        server                       = aws_eks_cluster.preview.endpoint
        "certificate-authority-data" = aws_eks_cluster.preview.certificate_authority[0].data
      }
    }]
    users = [{
      name = aws_eks_cluster.preview.arn
      user = {
        exec = {
          apiVersion      = "client.authentication.k8s.io/v1beta1"
          command         = "aws"
          args            = ["eks", "get-token", "--cluster-name", aws_eks_cluster.preview.name, "--region", var.aws_region, "--output", "json"]
          interactiveMode = "Never"
          installHint     = "The AWS CLI v2 (aws) must be on the idp server's PATH: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
        }
      }
    }]
    contexts = [{
      name = aws_eks_cluster.preview.arn
      context = {
        cluster = aws_eks_cluster.preview.arn
        user    = aws_eks_cluster.preview.arn
      }
    }]
    "current-context" = aws_eks_cluster.preview.arn
  })
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.preview.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster (the name of the kubeconfig output's cluster, user and context)."
  value       = aws_eks_cluster.preview.arn
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API server."
  value       = aws_eks_cluster.preview.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 PEM of the cluster's certificate authority."
  value       = aws_eks_cluster.preview.certificate_authority[0].data
}

output "cluster_oidc_issuer_url" {
  description = "OIDC issuer of the cluster's service account tokens (for an IAM OIDC provider, IRSA)."
  value       = aws_eks_cluster.preview.identity[0].oidc[0].issuer
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and the nodes."
  value       = aws_eks_cluster.preview.vpc_config[0].cluster_security_group_id
}

output "node_group_name" {
  description = "Name of the managed node group."
  value       = aws_eks_node_group.preview.node_group_name
}

output "kms_key_arn" {
  description = "KMS key encrypting the cluster's Kubernetes secrets."
  value       = aws_kms_key.secrets.arn
}

output "kubeconfig" {
  description = "kubeconfig (YAML) for the idp server's drivers.kubernetes.kubeconfig: the exec plugin `aws eks get-token` authenticates with the server's AWS credentials (idp_server_role_arn). No secret in it."
  value       = local.kubeconfig
}
