# Inputs of the cloud layer. tierzero writes them to tierzero.auto.tfvars.json from the spec.
# The twin module (../oci_twin) carries an identical copy of this file; a test keeps them in step.

variable "name_prefix" {
  description = "Prefix for display names (the platform's metadata.name)."
  type        = string
  default     = "tierzero"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix must be a lower-case DNS label."
  }
}

variable "region" {
  description = "OCI region identifier, e.g. eu-frankfurt-1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+-[0-9]+$", var.region))
    error_message = "region must look like eu-frankfurt-1."
  }
}

variable "home_region" {
  description = "The tenancy's home region (compartments and budgets live there); null means region."
  type        = string
  default     = null
}

variable "tenancy_ocid" {
  type = string
  validation {
    condition     = startswith(var.tenancy_ocid, "ocid1.tenancy.")
    error_message = "tenancy_ocid must be a tenancy OCID (ocid1.tenancy....)."
  }
}

variable "config_profile" {
  description = "Profile in ~/.oci/config the provider authenticates with."
  type        = string
  default     = "DEFAULT"
}

variable "compartment_ocid" {
  description = "Existing compartment to build in. Null: create compartment_name, or use the tenancy root."
  type        = string
  default     = null
  validation {
    condition     = var.compartment_ocid == null || can(regex("^ocid1\\.(compartment|tenancy)\\.", var.compartment_ocid))
    error_message = "compartment_ocid must be a compartment or tenancy OCID."
  }
}

variable "compartment_name" {
  description = "Create a compartment of this name under the tenancy when compartment_ocid is null."
  type        = string
  default     = null
}

variable "vcn_cidr" {
  type    = string
  default = "10.0.0.0/16"
  validation {
    condition     = can(cidrhost(var.vcn_cidr, 0))
    error_message = "vcn_cidr must be a CIDR block."
  }
}

variable "subnet_cidr" {
  type    = string
  default = "10.0.1.0/24"
  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be a CIDR block."
  }
}

variable "admin_cidrs" {
  description = "Networks allowed to reach SSH (22), the Talos API (50000) and the Kubernetes API (6443)."
  type        = list(string)
  validation {
    condition     = length(var.admin_cidrs) > 0 && alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "admin_cidrs must be a non-empty list of CIDR blocks."
  }
  validation {
    # A /0 in any family opens the admin ports to the whole internet.
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0)) && tonumber(split("/", c)[1]) > 0])
    error_message = "admin_cidrs must never contain 0.0.0.0/0 or ::/0: admin ports stay closed to the internet."
  }
}

variable "allow_http" {
  description = "Open 80/443 to the world."
  type        = bool
  default     = false
}

variable "ceph_between_hosts" {
  description = "Open Ceph's ports (3300, 6789, 6800-7300/tcp) between the hosts."
  type        = bool
  default     = false
}

variable "allow_icmp" {
  description = "Allow ICMP echo and path-MTU discovery from anywhere."
  type        = bool
  default     = true
}

variable "ssh_authorized_keys" {
  description = "OpenSSH public key(s) installed on every instance."
  type        = string
  validation {
    condition     = can(regex("^(ssh-|ecdsa-|sk-)", trimspace(var.ssh_authorized_keys)))
    error_message = "ssh_authorized_keys must be an OpenSSH public key."
  }
}

variable "image_operating_system" {
  description = "Platform image family the hosts boot before Proxmox VE is installed on top."
  type        = string
  default     = "Canonical Ubuntu"
}

variable "image_operating_system_version" {
  type    = string
  default = "24.04"
}

variable "a1_image_ocid" {
  description = "Pin the aarch64 image; null picks the newest matching platform image."
  type        = string
  default     = null
}

variable "micro_image_ocid" {
  description = "Pin the x86_64 image for E2.1.Micro; null picks the newest matching platform image."
  type        = string
  default     = null
}

variable "a1_instances" {
  description = "VM.Standard.A1.Flex instances (Proxmox VE hosts), by name."
  type = map(object({
    ocpus               = number
    memory_gb           = number
    boot_volume_gb      = number
    availability_domain = string
  }))
  default = {}
  validation {
    condition     = alltrue([for n, i in var.a1_instances : i.ocpus >= 1 && floor(i.ocpus) == i.ocpus])
    error_message = "A1 instances get whole OCPUs (1, 2, ...)."
  }
  validation {
    condition     = alltrue([for n, i in var.a1_instances : i.memory_gb >= 1 && floor(i.memory_gb) == i.memory_gb])
    error_message = "A1 memory_gb must be a whole number of GB."
  }
  validation {
    condition     = alltrue([for n, i in var.a1_instances : i.boot_volume_gb >= 50])
    error_message = "Boot volumes are at least 50 GB."
  }
  validation {
    condition     = alltrue([for n, i in var.a1_instances : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", n)) && i.availability_domain != ""])
    error_message = "A1 instance names must be DNS labels and each needs an availability_domain."
  }
}

variable "micro_instances" {
  description = "VM.Standard.E2.1.Micro instances (bastion, quorum witness), by name."
  type = map(object({
    roles               = list(string)
    boot_volume_gb      = number
    availability_domain = string
  }))
  default = {}
  validation {
    condition     = alltrue([for n, i in var.micro_instances : length(i.roles) > 0 && alltrue([for r in i.roles : contains(["bastion", "quorum-witness"], r)])])
    error_message = "Micro instance roles are bastion and/or quorum-witness."
  }
  validation {
    condition     = alltrue([for n, i in var.micro_instances : i.boot_volume_gb >= 50])
    error_message = "Boot volumes are at least 50 GB."
  }
  validation {
    condition     = alltrue([for n, i in var.micro_instances : can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", n)) && i.availability_domain != ""])
    error_message = "Micro instance names must be DNS labels and each needs an availability_domain."
  }
}

variable "reserved_ips" {
  description = "Reserved public IPs by name, each bound to an instance's primary private IP."
  type = map(object({
    instance = string
  }))
  default = {}
}

variable "block_volumes" {
  description = "Extra block volumes by name, each attached to one instance."
  type = map(object({
    size_gb  = number
    instance = string
  }))
  default = {}
  validation {
    condition     = alltrue([for n, v in var.block_volumes : v.size_gb >= 50 && floor(v.size_gb) == v.size_gb])
    error_message = "Block volumes are whole GB and at least 50 GB."
  }
}

variable "budget_amount" {
  description = "Monthly budget in the tenancy's currency."
  type        = number
  default     = 1
  validation {
    condition     = var.budget_amount > 0
    error_message = "budget_amount must be positive."
  }
}

variable "budget_alert_threshold_percent" {
  description = "Alert on actual spend at this share of the budget (1% of $1 is $0.01)."
  type        = number
  default     = 1
  validation {
    condition     = var.budget_alert_threshold_percent > 0 && var.budget_alert_threshold_percent <= 100
    error_message = "budget_alert_threshold_percent must be in (0, 100]."
  }
}

variable "budget_alert_email" {
  type = string
  validation {
    condition     = can(regex("^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$", var.budget_alert_email))
    error_message = "budget_alert_email must be an e-mail address."
  }
}

variable "freeform_tags" {
  type    = map(string)
  default = {}
}

# Always Free limits. Defaults are the limits in force since 2026-06-15; pass newer values when Oracle changes them.
variable "limit_a1_ocpus" {
  type    = number
  default = 2
}

variable "limit_a1_memory_gb" {
  type    = number
  default = 12
}

variable "limit_micro_instances" {
  type    = number
  default = 2
}

variable "limit_block_storage_gb" {
  description = "Total block storage, boot volumes included."
  type        = number
  default     = 200
}

variable "talos_nodes" {
  description = "a1_instances entries that run Talos directly (no Proxmox), by instance name: its cluster, role, fixed private IP and the Talos custom image."
  type = map(object({
    cluster    = string
    role       = string
    private_ip = string
    image_id   = string
  }))
  default = {}
  validation {
    condition     = alltrue([for n, t in var.talos_nodes : contains(["controlplane", "worker"], t.role)])
    error_message = "A Talos node's role is controlplane or worker."
  }
  validation {
    condition     = alltrue([for n, t in var.talos_nodes : startswith(t.image_id, "ocid1.image.")])
    error_message = "A Talos node's image_id is an image OCID (ocid1.image....)."
  }
}

variable "talos_user_data" {
  description = "Machine config of each Talos node, base64-encoded: Talos' oracle platform reads it from the instance metadata (IMDSv2, user_data)."
  type        = map(string)
  default     = {}
  sensitive   = true
}

variable "talos_instance_principals" {
  description = "Create a dynamic group of the compartment's instances and a policy for the OCI cloud controller manager and CSI driver (instance principals)."
  type        = bool
  default     = false
}

variable "limit_network_load_balancers" {
  description = "Network load balancers Always Free allows (one per cluster on Talos instances is created)."
  type        = number
  default     = 1
}

variable "vm_network" {
  description = <<-EOT
    The Proxmox VMs' network behind the A1 hosts (hypervisors.proxmox.network: one VXLAN network across the hosts)
    and the host that routes it (it carries the network's gateway and NATs it). The VCN gets a route rule sending
    `cidr` to that host's private IP, whose VNIC skips the source/destination check, and the security list admits
    `ports` (TCP: the Talos API, the Kubernetes API on the VIP, the services) from the subnet, so the bastion reaches
    the VMs. null: no VM network on the instances.
  EOT
  type = object({
    cidr         = string
    via_instance = string
    ports        = list(number)
  })
  default = null
  validation {
    condition     = var.vm_network == null ? true : can(cidrhost(var.vm_network.cidr, 0))
    error_message = "vm_network.cidr must be a CIDR block."
  }
  validation {
    condition     = var.vm_network == null ? true : alltrue([for p in var.vm_network.ports : p >= 1 && p <= 65535 && floor(p) == p])
    error_message = "vm_network.ports are TCP ports (1-65535)."
  }
}
