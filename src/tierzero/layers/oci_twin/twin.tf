locals {
  twin_suffix = "oc1.${var.region}.twin"
  compartment_id = (
    var.compartment_ocid != null ? var.compartment_ocid :
    var.compartment_name != null ? "ocid1.compartment.oc1..twin${substr(sha1(var.compartment_name), 0, 32)}" :
    var.tenancy_ocid
  )
  reserved_instances = toset([for r in values(var.reserved_ips) : r.instance])
  # Addresses follow the sorted instance names: stable while the set of instances is.
  instance_index = { for i, n in sort(local.instance_names) : n => i }

  fake_instances = merge(
    { for n, i in var.a1_instances : n => {
      kind      = "a1"
      shape     = "VM.Standard.A1.Flex"
      roles     = ["proxmox-host"]
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
    private_ip     = cidrhost(var.subnet_cidr, 10 + local.instance_index[n])
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
  for_each         = var.a1_instances
  input            = merge(local.fake_instance_outputs[each.key], { subnet = terraform_data.subnet.output.id })
  triggers_replace = [each.value.availability_domain]

  provisioner "local-exec" {
    command     = local.a1_check
    environment = merge(local.oci_answers, { AD = each.value.availability_domain })
  }
}

resource "terraform_data" "micro" {
  for_each         = var.micro_instances
  input            = merge(local.fake_instance_outputs[each.key], { subnet = terraform_data.subnet.output.id })
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
