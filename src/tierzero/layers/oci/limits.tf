# Cross-variable free-tier checks. Variable validations may only reference other variables from
# OpenTofu 1.8 / Terraform 1.9 on, so the totals live in preconditions, which fail the plan.
# The twin module (../oci_twin) carries an identical copy of this file.

locals {
  a1_ocpus_total  = sum(concat([0], [for i in values(var.a1_instances) : i.ocpus]))
  a1_memory_total = sum(concat([0], [for i in values(var.a1_instances) : i.memory_gb]))
  storage_total_gb = sum(concat([0],
    [for i in values(var.a1_instances) : i.boot_volume_gb],
    [for i in values(var.micro_instances) : i.boot_volume_gb],
    [for v in values(var.block_volumes) : v.size_gb],
  ))
  instance_names = concat(keys(var.a1_instances), keys(var.micro_instances))
  bastions       = sort([for n, i in var.micro_instances : n if contains(i.roles, "bastion")])
}

resource "terraform_data" "free_tier_limits" {
  input = {
    a1_ocpus   = local.a1_ocpus_total
    a1_memory  = local.a1_memory_total
    storage_gb = local.storage_total_gb
    micro      = length(var.micro_instances)
  }

  lifecycle {
    precondition {
      condition     = local.a1_ocpus_total <= var.limit_a1_ocpus
      error_message = "A1 instances ask for ${local.a1_ocpus_total} OCPUs; Always Free allows ${var.limit_a1_ocpus}."
    }
    precondition {
      condition     = local.a1_memory_total <= var.limit_a1_memory_gb
      error_message = "A1 instances ask for ${local.a1_memory_total} GB memory; Always Free allows ${var.limit_a1_memory_gb} GB."
    }
    precondition {
      condition     = length(var.micro_instances) <= var.limit_micro_instances
      error_message = "${length(var.micro_instances)} E2.1.Micro instances; Always Free allows ${var.limit_micro_instances}."
    }
    precondition {
      condition     = local.storage_total_gb <= var.limit_block_storage_gb
      error_message = "Block storage totals ${local.storage_total_gb} GB with boot volumes; Always Free allows ${var.limit_block_storage_gb} GB."
    }
    precondition {
      condition     = length(local.instance_names) == length(distinct(local.instance_names))
      error_message = "Instance names must be unique across a1_instances and micro_instances."
    }
    precondition {
      condition     = alltrue([for r in values(var.reserved_ips) : contains(local.instance_names, r.instance)])
      error_message = "Every reserved IP must name an existing instance."
    }
    precondition {
      condition     = alltrue([for v in values(var.block_volumes) : contains(local.instance_names, v.instance)])
      error_message = "Every block volume must name an existing instance."
    }
    precondition {
      condition     = alltrue([for n in keys(var.talos_nodes) : contains(keys(var.a1_instances), n)])
      error_message = "Every Talos node must name an a1_instances entry."
    }
    precondition {
      condition     = length(distinct([for t in values(var.talos_nodes) : t.cluster])) <= var.limit_network_load_balancers
      error_message = "Each cluster on Talos instances gets a network load balancer; Always Free allows ${var.limit_network_load_balancers}."
    }
    precondition {
      condition     = alltrue([for n in keys(var.talos_nodes) : contains(keys(var.talos_user_data), n)])
      error_message = "Every Talos node needs its machine config in talos_user_data."
    }
    precondition {
      condition     = var.compartment_ocid == null || var.compartment_name == null
      error_message = "Give compartment_ocid or compartment_name, not both."
    }
  }
}
