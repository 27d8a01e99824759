variable "cluster_name" {
  description = "Name of the EKS cluster. Its IAM roles are {cluster_name}-eks-cluster and {cluster_name}-eks-node, its KMS alias alias/{cluster_name}-eks-secrets."
  type        = string
  default     = "mini-idp-preview"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be 1-40 chars of lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
  validation {
    condition     = !startswith(var.cluster_name, "idp-")
    error_message = "cluster_name must not start with \"idp-\": the cluster's IAM roles are named after it, and the idp server's policy (terraform/iam/idp-server-policy.json) may change or delete every role named idp-*."
  }
}

variable "network_name" {
  description = "The shared preview network (terraform/shared/preview-networking's network_name) to run in: the cluster and its nodes use its private subnets, found by the tags idp:network and idp:tier."
  type        = string
  default     = "shared-preview"
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and the nodes (EKS picks the patch). Raise it one minor version at a time."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a Kubernetes minor version such as 1.33 (no patch number: EKS picks it)."
  }
}

variable "upgrade_support_type" {
  description = "STANDARD: EKS upgrades the control plane when the version's standard support ends. EXTENDED: keep the version longer, at six times the hourly cluster price."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "EXTENDED"], var.upgrade_support_type)
    error_message = "upgrade_support_type must be STANDARD or EXTENDED."
  }
}

variable "endpoint_private_access" {
  description = "The API server is reachable inside the VPC (the nodes join through it; from elsewhere in the VPC add endpoint_private_access_cidrs)."
  type        = bool
  default     = true
}

variable "endpoint_public_access" {
  description = "The API server is reachable from the internet, from public_access_cidrs only."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "IPv4 networks allowed to reach the public endpoint (the idp server's and operators' egress addresses). Required when endpoint_public_access is true; [\"0.0.0.0/0\"] allows any address (requests still need an IAM identity with an access entry)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c))])
    error_message = "public_access_cidrs must be IPv4 CIDR blocks such as 203.0.113.0/24."
  }
}

variable "endpoint_private_access_cidrs" {
  description = "IPv4 networks in or connected to the VPC allowed to reach the private endpoint on port 443 (e.g. where the idp server runs). The nodes need no entry."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.endpoint_private_access_cidrs : can(cidrnetmask(c))])
    error_message = "endpoint_private_access_cidrs must be IPv4 CIDR blocks such as 10.100.0.0/16."
  }
}

variable "cluster_log_types" {
  description = "Control-plane log types sent to CloudWatch Logs (/aws/eks/{cluster_name}/cluster). Empty: none."
  type        = list(string)
  default     = ["api", "audit", "authenticator"]

  validation {
    condition     = alltrue([for t in var.cluster_log_types : contains(["api", "audit", "authenticator", "controllerManager", "scheduler"], t)])
    error_message = "cluster_log_types may only contain api, audit, authenticator, controllerManager and scheduler."
  }
}

variable "log_retention_days" {
  description = "Retention of the control-plane log group, in days (a CloudWatch-accepted value)."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "idp_server_role_arn" {
  description = "ARN of the IAM role the idp server runs as (docs/aws.md 1.3). It gets an access entry with AmazonEKSClusterAdminPolicy: the kubernetes driver creates and deletes namespaces."
  type        = string

  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/.+$", var.idp_server_role_arn))
    error_message = "idp_server_role_arn must be an IAM role ARN (arn:aws:iam::123456789012:role/idp-server), not an assumed-role session ARN."
  }
}

variable "admin_principal_arns" {
  description = "More IAM role or user ARNs (operators) given cluster admin through access entries. Whoever applies the stack gets no access of its own: list yourself here to use kubectl."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/.+$", a))])
    error_message = "admin_principal_arns must be IAM role or user ARNs (arn:aws:iam::123456789012:role/Admin)."
  }
}

variable "node_instance_types" {
  description = "EC2 instance types of the node group (several spread SPOT capacity over more pools). x86_64 types: the nodes run Amazon Linux 2023 x86_64."
  type        = list(string)
  default     = ["t3.large"]

  validation {
    condition     = length(var.node_instance_types) > 0 && alltrue([for t in var.node_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "node_instance_types must list at least one instance type such as t3.large."
  }
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT (cheaper; nodes can be reclaimed with two minutes' notice)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_scaling" {
  description = "Node count of the node group: min_size <= desired_size <= max_size."
  type        = object({ min_size = optional(number, 1), desired_size = optional(number, 2), max_size = optional(number, 3) })
  default     = {}

  validation {
    condition     = var.node_scaling.min_size >= 0 && var.node_scaling.max_size >= 1 && var.node_scaling.min_size <= var.node_scaling.desired_size && var.node_scaling.desired_size <= var.node_scaling.max_size
    error_message = "node_scaling must have 0 <= min_size <= desired_size <= max_size and max_size >= 1."
  }
  validation {
    condition     = alltrue([for n in [var.node_scaling.min_size, var.node_scaling.desired_size, var.node_scaling.max_size] : floor(n) == n])
    error_message = "node_scaling sizes must be whole numbers."
  }
}

variable "node_disk_size" {
  description = "Root volume of each node in GiB (gp3, encrypted): images and emptyDir volumes live there."
  type        = number
  default     = 50

  validation {
    condition     = var.node_disk_size >= 20 && var.node_disk_size <= 16384 && floor(var.node_disk_size) == var.node_disk_size
    error_message = "node_disk_size must be a whole number of GiB from 20 to 16384."
  }
}

variable "node_labels" {
  description = "Kubernetes labels on every node."
  type        = map(string)
  default     = {}
}

variable "node_taints" {
  description = "Kubernetes taints on every node ({key, value, effect}; effect NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE). The preview pods idp creates carry no tolerations: a NO_SCHEDULE taint here keeps them off these nodes."
  type        = list(object({ key = string, value = optional(string), effect = string }))
  default     = []

  validation {
    condition     = alltrue([for t in var.node_taints : contains(["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"], t.effect)])
    error_message = "node_taints: effect must be NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE."
  }
}
