# Talos directly on A1 instances (the oci-talos blueprint): the instances boot tierzero's Talos custom
# image and read their machine config from the instance metadata; one network load balancer fronts the
# Kubernetes API (6443) and the Talos API (50000) of the control planes; the OCI cloud controller manager
# and CSI driver authenticate as instance principals through a dynamic group and a policy.
# Sources: Talos docs "Oracle" (v1.11-v1.14: NLB, backend sets, health checks, launch options); OCI
# provider docs for oci_core_instance, oci_network_load_balancer_*, oci_identity_dynamic_group/policy;
# oracle/oci-cloud-controller-manager v1.35.0 manifests/provider-config-instance-principals-example.yaml.

locals {
  talos_clusters       = toset([for t in values(var.talos_nodes) : t.cluster])
  talos_control_planes = { for n, t in var.talos_nodes : n => t if t.role == "controlplane" }
  # backend => {cluster, instance, port} for every control plane and both APIs
  talos_backends = merge([for port in [6443, 50000] : {
    for n, t in local.talos_control_planes : "${n}-${port}" => { cluster = t.cluster, instance = n, port = port }
  }]...)
  policy_scope = local.compartment_id == var.tenancy_ocid ? "tenancy" : "compartment id ${local.compartment_id}"
}

resource "oci_core_instance" "talos" {
  for_each            = var.talos_nodes
  compartment_id      = local.compartment_id
  availability_domain = var.a1_instances[each.key].availability_domain
  display_name        = "${var.name_prefix}-${each.key}"
  shape               = "VM.Standard.A1.Flex"
  freeform_tags       = merge(var.freeform_tags, { "tierzero-role" = "talos-${each.value.role}", "tierzero-cluster" = each.value.cluster })

  shape_config {
    ocpus         = var.a1_instances[each.key].ocpus
    memory_in_gbs = var.a1_instances[each.key].memory_gb
  }

  source_details {
    source_type             = "image"
    source_id               = each.value.image_id
    boot_volume_size_in_gbs = var.a1_instances[each.key].boot_volume_gb
  }

  create_vnic_details {
    subnet_id        = oci_core_subnet.this.id
    display_name     = "${var.name_prefix}-${each.key}"
    hostname_label   = each.key
    private_ip       = each.value.private_ip # the address the machine config and the talosconfig name
    assign_public_ip = true                  # egress without a NAT gateway (Always Free has none); ingress by the security list
  }

  # Talos' oracle platform reads user_data from http://169.254.169.254/opc/v2/instance/metadata/user_data and
  # base64-decodes it (siderolabs/talos platform/oracle/oracle.go). Talos has no SSH, so no ssh_authorized_keys.
  metadata = {
    user_data = lookup(var.talos_user_data, each.key, "") # absent when only destroying
  }

  # IMDSv2 only: the oracle platform reads metadata through /opc/v2 with "Authorization: Bearer Oracle".
  instance_options {
    are_legacy_imds_endpoints_disabled = true
  }

  launch_options {
    network_type                        = "PARAVIRTUALIZED"
    is_pv_encryption_in_transit_enabled = true
  }

  lifecycle {
    # A newer image is a Talos upgrade (over the Talos API), a changed config is applied over the Talos API:
    # neither may replace a running A1 instance (capacity may not come back).
    ignore_changes = [source_details, metadata, launch_options]
  }
}

resource "oci_network_load_balancer_network_load_balancer" "talos" {
  for_each                       = local.talos_clusters
  compartment_id                 = local.compartment_id
  display_name                   = "${var.name_prefix}-${each.key}-nlb"
  subnet_id                      = oci_core_subnet.this.id
  is_private                     = false
  is_preserve_source_destination = false
  freeform_tags                  = merge(var.freeform_tags, { "tierzero-cluster" = each.key })
}

# Talos docs: backend set "talos" with a TCP check on 50000, "controlplane" with an HTTPS check of /readyz on
# 6443 that expects 401 (anonymous requests are refused once the API server is up).
resource "oci_network_load_balancer_backend_set" "kubernetes" {
  for_each                 = local.talos_clusters
  name                     = "kubernetes"
  network_load_balancer_id = oci_network_load_balancer_network_load_balancer.talos[each.key].id
  policy                   = "TWO_TUPLE"
  is_preserve_source       = false

  health_checker {
    protocol           = "HTTPS"
    port               = 6443
    url_path           = "/readyz"
    return_code        = 401
    interval_in_millis = 10000
  }
}

resource "oci_network_load_balancer_backend_set" "talos" {
  for_each                 = local.talos_clusters
  name                     = "talos"
  network_load_balancer_id = oci_network_load_balancer_network_load_balancer.talos[each.key].id
  policy                   = "TWO_TUPLE"
  is_preserve_source       = false

  health_checker {
    protocol           = "TCP"
    port               = 50000
    interval_in_millis = 10000
  }
}

resource "oci_network_load_balancer_listener" "kubernetes" {
  for_each                 = local.talos_clusters
  name                     = "kubernetes"
  network_load_balancer_id = oci_network_load_balancer_network_load_balancer.talos[each.key].id
  default_backend_set_name = oci_network_load_balancer_backend_set.kubernetes[each.key].name
  port                     = 6443
  protocol                 = "TCP"
}

resource "oci_network_load_balancer_listener" "talos" {
  for_each                 = local.talos_clusters
  name                     = "talos"
  network_load_balancer_id = oci_network_load_balancer_network_load_balancer.talos[each.key].id
  default_backend_set_name = oci_network_load_balancer_backend_set.talos[each.key].name
  port                     = 50000
  protocol                 = "TCP"
}

resource "oci_network_load_balancer_backend" "talos" {
  for_each                 = local.talos_backends
  network_load_balancer_id = oci_network_load_balancer_network_load_balancer.talos[each.value.cluster].id
  backend_set_name         = each.value.port == 6443 ? oci_network_load_balancer_backend_set.kubernetes[each.value.cluster].name : oci_network_load_balancer_backend_set.talos[each.value.cluster].name
  target_id                = oci_core_instance.talos[each.value.instance].id
  port                     = each.value.port
}

# Instance principals for the OCI cloud controller manager and the CSI block-volume driver. A dynamic group
# lives in the tenancy (home region) and, created this way, in the Default identity domain.
resource "oci_identity_dynamic_group" "talos" {
  count          = var.talos_instance_principals && length(var.talos_nodes) > 0 ? 1 : 0
  provider       = oci.home
  compartment_id = var.tenancy_ocid
  name           = "${var.name_prefix}-talos-nodes"
  description    = "tierzero: the Talos nodes of ${var.name_prefix} (OCI CCM and CSI instance principals)"
  # By instance OCID: only these nodes, even when the compartment is the tenancy root (freeform tags cannot
  # be matched; OCI docs "Writing Matching Rules to Define Dynamic Groups").
  matching_rule = "ANY {${join(", ", [for n in sort(keys(var.talos_nodes)) : "instance.id = '${oci_core_instance.talos[n].id}'"])}}"
  freeform_tags = var.freeform_tags
}

resource "oci_identity_policy" "talos" {
  count          = var.talos_instance_principals && length(var.talos_nodes) > 0 ? 1 : 0
  provider       = oci.home
  compartment_id = local.compartment_id
  name           = "${var.name_prefix}-talos-ccm-csi"
  description    = "tierzero: OCI cloud controller manager and block-volume CSI driver on the Talos nodes"
  statements = [for verb in [
    "read instance-family",
    "use virtual-network-family",
    "manage load-balancers",
    "manage security-lists",
    "manage volumes",
    "manage volume-attachments",
  ] : "Allow dynamic-group ${oci_identity_dynamic_group.talos[0].name} to ${verb} in ${local.policy_scope}"]
  freeform_tags = var.freeform_tags
}
