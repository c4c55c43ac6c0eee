locals {
  compartment_id = (
    var.compartment_ocid != null ? var.compartment_ocid :
    var.compartment_name != null ? oci_identity_compartment.this[0].id :
    var.tenancy_ocid
  )
  # SSH, Kubernetes API, Talos API: reachable from admin_cidrs only (never 0.0.0.0/0, see variables.tf).
  admin_ports = [22, 6443, 50000]
  vm_router   = var.vm_network == null ? null : var.vm_network.via_instance
  vm_ports    = var.vm_network == null ? [] : var.vm_network.ports
  admin_rules = [for pair in setproduct(var.admin_cidrs, local.admin_ports) : { cidr = pair[0], port = pair[1] }]
  http_ports  = var.allow_http ? [80, 443] : []
  # Ports between Proxmox hosts (pve-docs 9.1.3 pve-firewall.adoc "Ports used by Proxmox VE",
  # pvecm.adoc, pvesdn.adoc "VXLAN Zones"): SSH for pvecm, the API, corosync-qnetd on the witness,
  # corosync (kronosnet), VXLAN; Ceph's (its firewall macro) only when Ceph runs.
  host_rules = concat([
    { protocol = "6", min = 22, max = 22 },      # sshd: pvecm add --use_ssh, qdevice setup, migrations
    { protocol = "6", min = 8006, max = 8006 },  # Proxmox VE API
    { protocol = "6", min = 5403, max = 5403 },  # corosync-qnetd (the QDevice witness)
    { protocol = "17", min = 5405, max = 5412 }, # corosync
    { protocol = "17", min = 4789, max = 4789 }, # VXLAN (the SDN zone of the VM network)
    ], var.ceph_between_hosts ? [
    { protocol = "6", min = 3300, max = 3300 },
    { protocol = "6", min = 6789, max = 6789 },
    { protocol = "6", min = 6800, max = 7300 },
  ] : [])
}

resource "oci_identity_compartment" "this" {
  count          = var.compartment_ocid == null && var.compartment_name != null ? 1 : 0
  provider       = oci.home
  compartment_id = var.tenancy_ocid
  name           = var.compartment_name
  description    = "tierzero platform ${var.name_prefix}"
  enable_delete  = true
  freeform_tags  = var.freeform_tags
}

resource "oci_core_vcn" "this" {
  compartment_id = local.compartment_id
  cidr_blocks    = [var.vcn_cidr]
  display_name   = "${var.name_prefix}-vcn"
  dns_label      = "tz${substr(replace(var.name_prefix, "-", ""), 0, 13)}" # a letter first, at most 15
  freeform_tags  = var.freeform_tags
}

resource "oci_core_internet_gateway" "this" {
  compartment_id = local.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name_prefix}-igw"
  enabled        = true
  freeform_tags  = var.freeform_tags
}

resource "oci_core_route_table" "this" {
  compartment_id = local.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name_prefix}-rt"
  freeform_tags  = var.freeform_tags

  route_rules {
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.this.id
  }
}

resource "oci_core_security_list" "this" {
  compartment_id = local.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name_prefix}-sl"
  freeform_tags  = var.freeform_tags

  egress_security_rules {
    destination = "0.0.0.0/0"
    protocol    = "all"
  }

  # Between the hosts (the subnet), exactly what the Proxmox cluster needs; the VMs' own traffic
  # crosses between hosts inside VXLAN (UDP 4789), so no VM port appears here.
  dynamic "ingress_security_rules" {
    for_each = local.host_rules
    content {
      source   = var.subnet_cidr
      protocol = ingress_security_rules.value.protocol
      dynamic "tcp_options" {
        for_each = ingress_security_rules.value.protocol == "6" ? [1] : []
        content {
          min = ingress_security_rules.value.min
          max = ingress_security_rules.value.max
        }
      }
      dynamic "udp_options" {
        for_each = ingress_security_rules.value.protocol == "17" ? [1] : []
        content {
          min = ingress_security_rules.value.min
          max = ingress_security_rules.value.max
        }
      }
    }
  }

  # Path-MTU discovery between hosts too (the VXLAN MTU is 50 bytes under the uplink's).
  ingress_security_rules {
    source   = var.subnet_cidr
    protocol = "1"
    icmp_options {
      type = 3
      code = 4
    }
  }

  dynamic "ingress_security_rules" {
    for_each = local.admin_rules
    content {
      source   = ingress_security_rules.value.cidr
      protocol = "6"
      tcp_options {
        min = ingress_security_rules.value.port
        max = ingress_security_rules.value.port
      }
    }
  }

  dynamic "ingress_security_rules" {
    for_each = local.http_ports
    content {
      source   = "0.0.0.0/0"
      protocol = "6"
      tcp_options {
        min = ingress_security_rules.value
        max = ingress_security_rules.value
      }
    }
  }

  # The VM network's ports from the subnet (the bastion's forwards): packets to a VM enter the routing host's VNIC
  # with the VM's address as destination, and a security list matches on source and port only. Nothing with the VM
  # network as source is needed: the routing host masquerades what the VMs start, and replies are stateful.
  dynamic "ingress_security_rules" {
    for_each = local.vm_ports
    content {
      source   = var.subnet_cidr
      protocol = "6"
      tcp_options {
        min = ingress_security_rules.value
        max = ingress_security_rules.value
      }
    }
  }

  # Path-MTU discovery ("fragmentation needed") always; echo only when allow_icmp.
  ingress_security_rules {
    source   = "0.0.0.0/0"
    protocol = "1"
    icmp_options {
      type = 3
      code = 4
    }
  }

  dynamic "ingress_security_rules" {
    for_each = var.allow_icmp ? [8] : []
    content {
      source   = "0.0.0.0/0"
      protocol = "1"
      icmp_options {
        type = ingress_security_rules.value
      }
    }
  }
}

# The VM network (hypervisors.proxmox.network) lives behind the hosts; the VCN reaches it through the host that
# carries its gateway: a route rule with that host's private IP as target (Networking docs, "Using a Private IP as a
# Route Target": the target's VNIC must skip the source/destination check, compute.tf). A CIDR has one target per
# route table, and the VM network is one VXLAN segment across the hosts, so one rule to one host reaches every VM:
# VMs on the other host are one VXLAN hop further. If that host is down, so is the VMs' gateway anyway.
# The rule lives in its own table (internet + VM network), attached once the host exists: the subnet's own table
# cannot name a private IP of an instance in that very subnet (the subnet would depend on its instance), so the
# subnet is created with `this` (internet only, instances boot with egress) and switched by the attachment.
data "oci_core_vnic_attachments" "vm_router" {
  count          = local.vm_router == null ? 0 : 1
  compartment_id = local.compartment_id
  instance_id    = oci_core_instance.a1[local.vm_router].id
}

data "oci_core_private_ips" "vm_router" {
  count   = local.vm_router == null ? 0 : 1
  vnic_id = data.oci_core_vnic_attachments.vm_router[0].vnic_attachments[0].vnic_id
}

resource "oci_core_route_table" "vm" {
  count          = local.vm_router == null ? 0 : 1
  compartment_id = local.compartment_id
  vcn_id         = oci_core_vcn.this.id
  display_name   = "${var.name_prefix}-rt-vm"
  freeform_tags  = var.freeform_tags

  route_rules {
    destination       = "0.0.0.0/0"
    destination_type  = "CIDR_BLOCK"
    network_entity_id = oci_core_internet_gateway.this.id
  }

  route_rules {
    destination       = var.vm_network.cidr
    destination_type  = "CIDR_BLOCK"
    network_entity_id = data.oci_core_private_ips.vm_router[0].private_ips[0].id
    description       = "the Proxmox VMs' network, through ${local.vm_router}"
  }

  lifecycle {
    precondition {
      condition     = contains(keys(oci_core_instance.a1), local.vm_router)
      error_message = "vm_network.via_instance must be an A1 instance that is a Proxmox host (not a Talos node)."
    }
    precondition {
      condition     = oci_core_instance.a1[local.vm_router].create_vnic_details[0].skip_source_dest_check == true
      error_message = "The VNIC a private-IP route target sits on must skip the source/destination check."
    }
  }
}

resource "oci_core_route_table_attachment" "vm" {
  count          = local.vm_router == null ? 0 : 1
  subnet_id      = oci_core_subnet.this.id
  route_table_id = oci_core_route_table.vm[0].id
}

resource "oci_core_subnet" "this" {
  compartment_id             = local.compartment_id
  vcn_id                     = oci_core_vcn.this.id
  cidr_block                 = var.subnet_cidr
  display_name               = "${var.name_prefix}-subnet"
  dns_label                  = "hosts"
  route_table_id             = oci_core_route_table.this.id
  security_list_ids          = [oci_core_security_list.this.id]
  prohibit_public_ip_on_vnic = false
  freeform_tags              = var.freeform_tags

  lifecycle {
    ignore_changes = [route_table_id] # oci_core_route_table_attachment.vm switches it when there is a VM network
  }
}
