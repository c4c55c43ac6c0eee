locals {
  # The keys ../oci/outputs.tf gives an instance: the twin's extra inputs (display name, shape config) stay inside.
  real_outputs = ["ocid", "kind", "shape", "roles", "ad", "private_ip", "public_ip"]
  instances_out = merge(
    { for n, r in terraform_data.a1 : n => { for k, v in r.output : k => v if contains(local.real_outputs, k) } },
    { for n, r in terraform_data.talos : n => { for k, v in r.output : k => v if contains(local.real_outputs, k) } },
    { for n, r in terraform_data.micro : n => { for k, v in r.output : k => v if contains(local.real_outputs, k) } },
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
  value = terraform_data.vcn.output.id
}

output "subnet_id" {
  value = terraform_data.subnet.output.id
}

output "budget_id" {
  value = terraform_data.budget.output.id
}

output "network_load_balancers" {
  description = "cluster => {id, ip_address}: the public address fronting 6443 (Kubernetes) and 50000 (Talos)."
  value       = { for c, r in terraform_data.nlb : c => { id = r.output.id, ip_address = r.output.ip_address } }
}
