locals {
  twin_suffix = "oc1.${var.region}.twin"
  compartment_id = (
    var.compartment_ocid != null ? var.compartment_ocid :
    var.compartment_name != null ? "ocid1.compartment.oc1..twin${substr(sha1(var.compartment_name), 0, 32)}" :
    var.tenancy_ocid
  )
  reserved_instances = toset([for r in values(var.reserved_ips) : r.instance])
  vm_router          = var.vm_network == null ? null : var.vm_network.via_instance
  # Addresses follow the sorted instance names: stable while the set of instances is.
  instance_index = { for i, n in sort(local.instance_names) : n => i }

  fake_instances = merge(
    { for n, i in var.a1_instances : n => {
      kind      = "a1"
      shape     = "VM.Standard.A1.Flex"
      roles     = contains(keys(var.talos_nodes), n) ? ["talos-${var.talos_nodes[n].role}"] : ["proxmox-host"]
      ad        = i.availability_domain
      ocpus     = i.ocpus
      memory_gb = i.memory_gb
    } },
    { for n, i in var.micro_instances : n => {
      kind      = "micro"
      shape     = "VM.Standard.E2.1.Micro"
      roles     = i.roles
      ad        = i.availability_domain
      ocpus     = 1
      memory_gb = 1
    } },
  )
  # display_name and hostname_label as ../oci/compute.tf sets them; the sandbox's OCI API lists these.
  fake_instance_outputs = { for n, i in local.fake_instances : n => merge(i, {
    display_name   = "${var.name_prefix}-${n}"
    hostname_label = n
    compartment_id = local.compartment_id
    region         = var.region
    ocid           = "ocid1.instance.${local.twin_suffix}${substr(sha1("${var.name_prefix}/${n}"), 0, 32)}"
    private_ip     = contains(keys(var.talos_nodes), n) ? var.talos_nodes[n].private_ip : cidrhost(var.subnet_cidr, 10 + local.instance_index[n])
    # TEST-NET-2 for reserved addresses, TEST-NET-3 for ephemeral ones: never routable.
    public_ip = contains(local.reserved_instances, n) ? cidrhost("198.51.100.0/24", 10 + local.instance_index[n]) : cidrhost("203.0.113.0/24", 10 + local.instance_index[n])
  }) }

  # OCI's answers live in the environment, not the command: a failed provisioner's diagnostic quotes the command,
  # and only the answer that was given may reach the capacity hunt's classifier.
  # Then the create takes TIERZERO_TWIN_CREATE_SECONDS (default 0); `exec`: an interrupted apply kills
  # the command itself, so no sleeping shell child is orphaned.
  capacity_check = "case \" $${TIERZERO_TWIN_FULL_ADS:-} \" in *\" $AD \"*) echo \"$NO_CAPACITY (twin: $AD is full)\" >&2; exit 1;; esac; exec sleep \"$${TIERZERO_TWIN_CREATE_SECONDS:-0}\""
  # An AD that does not offer A1 to the tenancy answers as OCI does (hitrov/oci-arm-host-capacity issue 96).
  a1_check = "case \" $${TIERZERO_TWIN_NO_A1_ADS:-} \" in *\" $AD \"*) echo \"$NO_SHAPE (twin: $AD has no A1)\" >&2; exit 1;; esac; ${local.capacity_check}"
  # LaunchInstance to the sandbox's OCI stand-in; nothing to do for a twin applied without one (its tests).
  launch = <<-EOT
    [ -z "$${TIERZERO_TWIN_OCI_URL:-}" ] && exit 0
    exec python3 -c 'import os, urllib.request as r; r.urlopen(r.Request(os.environ["TIERZERO_TWIN_OCI_URL"] + "/20160918/instances", data=os.environ["LAUNCH"].encode(), headers={"Content-Type": "application/json"}), timeout=60).read()'
  EOT
  oci_answers = {
    NO_CAPACITY = "500-InternalError, Out of host capacity."
    NO_SHAPE    = "404-NotAuthorizedOrNotFound, shape VM.Standard.A1.Flex not found"
  }
}

resource "terraform_data" "vcn" {
  input = {
    id             = "ocid1.vcn.${local.twin_suffix}${substr(sha1("${var.name_prefix}/vcn"), 0, 32)}"
    cidr           = var.vcn_cidr
    compartment_id = local.compartment_id
  }
}

resource "terraform_data" "subnet" {
  input = {
    id    = "ocid1.subnet.${local.twin_suffix}${substr(sha1("${var.name_prefix}/subnet"), 0, 32)}"
    cidr  = var.subnet_cidr
    vcn   = terraform_data.vcn.output.id
    admin = var.admin_cidrs
    http  = var.allow_http
    icmp  = var.allow_icmp
  }
}

# Like oci_core_instance, a changed availability domain or shape replaces the instance.
resource "terraform_data" "a1" {
  for_each = { for n, i in var.a1_instances : n => i if !contains(keys(var.talos_nodes), n) }
  input = merge(local.fake_instance_outputs[each.key], {
    subnet                 = terraform_data.subnet.output.id
    skip_source_dest_check = local.vm_router == each.key # as ../oci/compute.tf sets it on the VNIC
  })
  triggers_replace = [each.value.availability_domain]

  provisioner "local-exec" {
    command     = local.a1_check
    environment = merge(local.oci_answers, { AD = each.value.availability_domain })
  }

  # A Proxmox VE host boots the image tierzero imported (a1_image_ocid): LaunchInstance goes to the sandbox's OCI,
  # which refuses an image that is not AVAILABLE or lacks the shape, as OCI does. No image given: the real module
  # looks a platform image up instead, which the twin has none of.
  provisioner "local-exec" {
    command = var.a1_image_ocid == null ? "exit 0" : local.launch
    environment = {
      LAUNCH = jsonencode({
        displayName        = each.key
        compartmentId      = local.compartment_id
        availabilityDomain = each.value.availability_domain
        shape              = "VM.Standard.A1.Flex"
        shapeConfig        = { ocpus = each.value.ocpus, memoryInGBs = each.value.memory_gb }
        sourceDetails      = { sourceType = "image", imageId = coalesce(var.a1_image_ocid, "none"), bootVolumeSizeInGBs = each.value.boot_volume_gb }
        createVnicDetails  = { subnetId = terraform_data.subnet.output.id, hostnameLabel = each.key, assignPublicIp = !contains(local.reserved_instances, each.key) }
        instanceOptions    = { areLegacyImdsEndpointsDisabled = true }
        launchOptions      = { networkType = "PARAVIRTUALIZED" }
      })
    }
  }
}

# The VM network's route rule (../oci/network.tf): destination the VM CIDR, target the routing host's private IP,
# whose VNIC must skip the source/destination check; the ports the security list admits from the subnet. The
# sandbox's OCI reads it to decide what the bastion reaches (tierzero.sandbox.oci OciState.vcn_route).
resource "terraform_data" "vm_route" {
  count = local.vm_router == null ? 0 : 1
  input = {
    destination                    = var.vm_network.cidr
    target_instance                = local.vm_router
    target_private_ip              = try(terraform_data.a1[local.vm_router].output.private_ip, null)
    target_skips_source_dest_check = try(terraform_data.a1[local.vm_router].output.skip_source_dest_check, false)
    ports                          = var.vm_network.ports
    source                         = var.subnet_cidr
  }

  lifecycle {
    precondition {
      condition     = contains(keys(terraform_data.a1), local.vm_router)
      error_message = "vm_network.via_instance must be an A1 instance that is a Proxmox host (not a Talos node)."
    }
    precondition {
      condition     = try(terraform_data.a1[local.vm_router].output.skip_source_dest_check, false) == true
      error_message = "The VNIC a private-IP route target sits on must skip the source/destination check."
    }
  }
}

# metadata as ../oci/compute.tf sets it: cloud-init puts ssh_authorized_keys into the image user's
# authorized_keys (OCI API, LaunchInstanceDetails.metadata), which the sandbox's bastion reads.
resource "terraform_data" "micro" {
  for_each = var.micro_instances
  input = merge(local.fake_instance_outputs[each.key], {
    subnet   = terraform_data.subnet.output.id
    metadata = { ssh_authorized_keys = var.ssh_authorized_keys }
  })
  triggers_replace = [each.value.availability_domain]

  provisioner "local-exec" {
    command     = local.capacity_check
    environment = merge(local.oci_answers, { AD = each.value.availability_domain })
  }
}

resource "terraform_data" "reserved_ip" {
  for_each = var.reserved_ips
  input = {
    instance   = each.value.instance
    ip_address = local.fake_instance_outputs[each.value.instance].public_ip
  }
  depends_on = [terraform_data.a1, terraform_data.micro]
}

resource "terraform_data" "volume" {
  for_each = var.block_volumes
  input = {
    id       = "ocid1.volume.${local.twin_suffix}${substr(sha1("${var.name_prefix}/${each.key}"), 0, 32)}"
    size_gb  = each.value.size_gb
    instance = each.value.instance
  }
  depends_on = [terraform_data.a1, terraform_data.micro]
}

resource "terraform_data" "budget" {
  input = {
    id        = "ocid1.budget.${local.twin_suffix}${substr(sha1("${var.name_prefix}/budget"), 0, 32)}"
    amount    = var.budget_amount
    threshold = var.budget_alert_threshold_percent
    email     = var.budget_alert_email
  }
}

# Talos nodes on A1 instances (../oci/talos.tf). The state keeps metadata.user_data as the oracle provider's
# oci_core_instance does (its `metadata` attribute is stored as given): the machine config, with the cluster's
# keys, lands in this state exactly as in the real one, so the sandbox proves tierzero keeps it encrypted at rest.
resource "terraform_data" "talos" {
  for_each = var.talos_nodes
  input = merge(local.fake_instance_outputs[each.key], {
    subnet   = terraform_data.subnet.output.id
    image_id = each.value.image_id
    cluster  = each.value.cluster
    metadata = { user_data = lookup(var.talos_user_data, each.key, "") }
  })
  triggers_replace = [var.a1_instances[each.key].availability_domain]

  provisioner "local-exec" {
    command     = local.a1_check
    environment = merge(local.oci_answers, { AD = var.a1_instances[each.key].availability_domain })
  }

  # LaunchInstance as the provider sends it, to the sandbox's OCI when there is one (TIERZERO_TWIN_OCI_URL).
  provisioner "local-exec" {
    command = local.launch
    environment = {
      LAUNCH = jsonencode({
        displayName        = each.key
        compartmentId      = local.compartment_id
        availabilityDomain = var.a1_instances[each.key].availability_domain
        shape              = "VM.Standard.A1.Flex"
        shapeConfig        = { ocpus = var.a1_instances[each.key].ocpus, memoryInGBs = var.a1_instances[each.key].memory_gb }
        sourceDetails      = { sourceType = "image", imageId = each.value.image_id, bootVolumeSizeInGBs = var.a1_instances[each.key].boot_volume_gb }
        createVnicDetails  = { subnetId = terraform_data.subnet.output.id, privateIp = each.value.private_ip, hostnameLabel = each.key, assignPublicIp = true }
        metadata           = { user_data = lookup(var.talos_user_data, each.key, "") }
        instanceOptions    = { areLegacyImdsEndpointsDisabled = true }
        launchOptions      = { networkType = "PARAVIRTUALIZED" }
      })
    }
  }

  lifecycle {
    ignore_changes = [input] # like source_details and metadata on the real instance: never a replacement
  }
}

resource "terraform_data" "nlb" {
  for_each = toset([for t in values(var.talos_nodes) : t.cluster])
  input = {
    id         = "ocid1.networkloadbalancer.${local.twin_suffix}${substr(sha1("${var.name_prefix}/${each.key}/nlb"), 0, 32)}"
    ip_address = cidrhost("203.0.113.0/24", 200 + index(sort([for t in values(var.talos_nodes) : t.cluster]), each.key))
    listeners  = [6443, 50000]
    backends   = sort([for n, t in var.talos_nodes : n if t.cluster == each.key && t.role == "controlplane"])
  }
}

resource "terraform_data" "instance_principals" {
  count = var.talos_instance_principals && length(var.talos_nodes) > 0 ? 1 : 0
  input = {
    dynamic_group = "${var.name_prefix}-talos-nodes"
    policy        = "${var.name_prefix}-talos-ccm-csi"
  }
}
