locals {
  reserved_ip_by_instance = { for k, r in var.reserved_ips : r.instance => oci_core_public_ip.reserved[k].ip_address }

  instances_out = merge(
    { for n, i in oci_core_instance.a1 : n => {
      ocid       = i.id
      kind       = "a1"
      shape      = i.shape
      roles      = ["proxmox-host"]
      ad         = i.availability_domain
      private_ip = i.private_ip
      public_ip  = lookup(local.reserved_ip_by_instance, n, i.public_ip)
    } },
    { for n, i in oci_core_instance.talos : n => {
      ocid       = i.id
      kind       = "a1"
      shape      = i.shape
      roles      = ["talos-${var.talos_nodes[n].role}"]
      ad         = i.availability_domain
      private_ip = i.private_ip
      public_ip  = i.public_ip
    } },
    { for n, i in oci_core_instance.micro : n => {
      ocid       = i.id
      kind       = "micro"
      shape      = i.shape
      roles      = var.micro_instances[n].roles
      ad         = i.availability_domain
      private_ip = i.private_ip
      public_ip  = lookup(local.reserved_ip_by_instance, n, i.public_ip)
    } },
  )
}

output "instances" {
  description = "name => {ocid, kind (a1|micro), shape, roles, ad, private_ip, public_ip}"
  value       = local.instances_out
}

output "bastion_ip" {
  description = "Public IP of the first bastion (its reserved IP when it has one); null without a bastion."
  value       = length(local.bastions) > 0 ? local.instances_out[local.bastions[0]].public_ip : null
}

output "compartment_id" {
  value = local.compartment_id
}

output "vcn_id" {
  value = oci_core_vcn.this.id
}

output "subnet_id" {
  value = oci_core_subnet.this.id
}

output "budget_id" {
  value = oci_budget_budget.this.id
}

output "network_load_balancers" {
  description = "cluster => {id, ip_address}: the public address fronting 6443 (Kubernetes) and 50000 (Talos)."
  value = { for c, nlb in oci_network_load_balancer_network_load_balancer.talos : c => {
    id         = nlb.id
    ip_address = one([for a in nlb.ip_addresses : a.ip_address if a.is_public])
  } }
}
