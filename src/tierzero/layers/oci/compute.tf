# Instances are for_each over maps so adding or removing one never renumbers the others.
#
# No `prevent_destroy` here: it must be a literal, cannot follow a variable, and would make
# `tierzero destroy` impossible. The safety net is tierzero's plan guard instead: every plan is
# shown as JSON first, and one that deletes or replaces an A1 instance is refused unless allowed.
#
# ignore_changes on source_details and metadata: a newer platform image or an edited SSH key must
# never replace a running Proxmox host (both force a new instance in the provider).

locals {
  reserved_instances = toset([for r in values(var.reserved_ips) : r.instance])
  a1_image_id        = var.a1_image_ocid != null ? var.a1_image_ocid : try(data.oci_core_images.a1[0].images[0].id, null)
  micro_image_id     = var.micro_image_ocid != null ? var.micro_image_ocid : try(data.oci_core_images.micro[0].images[0].id, null)
}

data "oci_core_images" "a1" {
  count                    = var.a1_image_ocid == null && length(var.a1_instances) > length(var.talos_nodes) ? 1 : 0
  compartment_id           = local.compartment_id
  operating_system         = var.image_operating_system
  operating_system_version = var.image_operating_system_version
  shape                    = "VM.Standard.A1.Flex"
  state                    = "AVAILABLE"
  sort_by                  = "TIMECREATED"
  sort_order               = "DESC"
}

data "oci_core_images" "micro" {
  count                    = var.micro_image_ocid == null && length(var.micro_instances) > 0 ? 1 : 0
  compartment_id           = local.compartment_id
  operating_system         = var.image_operating_system
  operating_system_version = var.image_operating_system_version
  shape                    = "VM.Standard.E2.1.Micro"
  state                    = "AVAILABLE"
  sort_by                  = "TIMECREATED"
  sort_order               = "DESC"
}

resource "oci_core_instance" "a1" {
  for_each            = { for n, i in var.a1_instances : n => i if !contains(keys(var.talos_nodes), n) } # Talos nodes: talos.tf
  compartment_id      = local.compartment_id
  availability_domain = each.value.availability_domain
  display_name        = "${var.name_prefix}-${each.key}"
  shape               = "VM.Standard.A1.Flex"
  freeform_tags       = merge(var.freeform_tags, { "tierzero-role" = "proxmox-host" })

  shape_config {
    ocpus         = each.value.ocpus
    memory_in_gbs = each.value.memory_gb
  }

  source_details {
    source_type             = "image"
    source_id               = local.a1_image_id
    boot_volume_size_in_gbs = each.value.boot_volume_gb
  }

  create_vnic_details {
    subnet_id        = oci_core_subnet.this.id
    display_name     = "${var.name_prefix}-${each.key}"
    hostname_label   = each.key
    assign_public_ip = !contains(local.reserved_instances, each.key)
    # The host that routes the VM network forwards packets neither from nor to its own address: OCI drops them
    # unless the VNIC skips the source/destination check (Networking docs, "Using a Private IP as a Route Target";
    # SDK CreateVnicDetails.skip_source_dest_check). An update in place (UpdateVnic), never a new instance.
    skip_source_dest_check = local.vm_router == each.key
  }

  metadata = {
    ssh_authorized_keys = var.ssh_authorized_keys
  }

  # IMDSv2 only (checkov CKV_OCI_5): Ubuntu's cloud-init and Talos' oracle platform read metadata through /v2.
  instance_options {
    are_legacy_imds_endpoints_disabled = true
  }

  # In-transit encryption of the paravirtualized boot volume (checkov CKV_OCI_4): OCI offers it on VM shapes
  # launched from platform images (Block Volume docs, "Block Volume Encryption"), which both shapes here are.
  launch_options {
    is_pv_encryption_in_transit_enabled = true
  }

  lifecycle {
    # launch_options too: switching in-transit encryption on a running host is an update OCI applies with a
    # reboot; hosts launched before this setting keep running as they are.
    ignore_changes = [source_details, metadata, launch_options]
    precondition {
      condition     = local.a1_image_id != null
      error_message = "No aarch64 platform image matches ${var.image_operating_system} ${var.image_operating_system_version}."
    }
  }
}

resource "oci_core_instance" "micro" {
  for_each            = var.micro_instances
  compartment_id      = local.compartment_id
  availability_domain = each.value.availability_domain
  display_name        = "${var.name_prefix}-${each.key}"
  shape               = "VM.Standard.E2.1.Micro"
  freeform_tags       = merge(var.freeform_tags, { "tierzero-role" = join("+", each.value.roles) })

  source_details {
    source_type             = "image"
    source_id               = local.micro_image_id
    boot_volume_size_in_gbs = each.value.boot_volume_gb
  }

  create_vnic_details {
    subnet_id        = oci_core_subnet.this.id
    display_name     = "${var.name_prefix}-${each.key}"
    hostname_label   = each.key
    assign_public_ip = !contains(local.reserved_instances, each.key)
  }

  metadata = {
    ssh_authorized_keys = var.ssh_authorized_keys
  }

  instance_options {
    are_legacy_imds_endpoints_disabled = true
  }

  launch_options {
    is_pv_encryption_in_transit_enabled = true
  }

  lifecycle {
    ignore_changes = [source_details, metadata, launch_options]
    precondition {
      condition     = local.micro_image_id != null
      error_message = "No x86_64 platform image matches ${var.image_operating_system} ${var.image_operating_system_version}."
    }
  }
}

locals {
  all_instances = merge(oci_core_instance.a1, oci_core_instance.talos, oci_core_instance.micro)
}

# A reserved public IP is bound to the instance's primary private IP, found through its VNIC.
data "oci_core_vnic_attachments" "reserved" {
  for_each       = var.reserved_ips
  compartment_id = local.compartment_id
  instance_id    = local.all_instances[each.value.instance].id
}

data "oci_core_private_ips" "reserved" {
  for_each = var.reserved_ips
  vnic_id  = data.oci_core_vnic_attachments.reserved[each.key].vnic_attachments[0].vnic_id
}

resource "oci_core_public_ip" "reserved" {
  for_each       = var.reserved_ips
  compartment_id = local.compartment_id
  lifetime       = "RESERVED"
  display_name   = "${var.name_prefix}-${each.key}"
  private_ip_id  = data.oci_core_private_ips.reserved[each.key].private_ips[0].id
  freeform_tags  = var.freeform_tags
}

resource "oci_core_volume" "extra" {
  #checkov:skip=CKV_OCI_2:Oracle's backup policies keep more backups than the 5 Always Free includes (they would be billed); Ceph keeps copies on the other hosts
  for_each            = var.block_volumes
  compartment_id      = local.compartment_id
  availability_domain = local.all_instances[each.value.instance].availability_domain
  display_name        = "${var.name_prefix}-${each.key}"
  size_in_gbs         = each.value.size_gb
  kms_key_id          = one(oci_kms_key.volumes[*].id) # a free software-protected key (kms.tf)
  freeform_tags       = var.freeform_tags

  depends_on = [oci_identity_policy.volume_key]
}

resource "oci_core_volume_attachment" "extra" {
  for_each                            = var.block_volumes
  attachment_type                     = "paravirtualized"
  instance_id                         = local.all_instances[each.value.instance].id
  volume_id                           = oci_core_volume.extra[each.key].id
  display_name                        = "${var.name_prefix}-${each.key}"
  is_pv_encryption_in_transit_enabled = true

  lifecycle {
    # Changing it forces a new attachment: a data disk (a Ceph OSD) would be detached from a running host.
    ignore_changes = [is_pv_encryption_in_transit_enabled]
  }
}
