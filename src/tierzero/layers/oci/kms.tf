# Block volumes are encrypted at rest with a customer-managed key (checkov CKV_OCI_3) at no cost: a DEFAULT
# (virtual) vault and SOFTWARE-protected keys carry no charge; only HSM-protected key versions beyond the
# Always Free 20 and virtual private vaults are billed (tierzero.freetier prices both from its dated data).
# Created only when the spec has block volumes. Destroying a vault or key schedules its deletion (7-30 days).

locals {
  volume_key = length(var.block_volumes) > 0
}

resource "oci_kms_vault" "this" {
  count          = local.volume_key ? 1 : 0
  compartment_id = local.compartment_id
  display_name   = "${var.name_prefix}-vault"
  vault_type     = "DEFAULT"
  freeform_tags  = var.freeform_tags
}

resource "oci_kms_key" "volumes" {
  count               = local.volume_key ? 1 : 0
  compartment_id      = local.compartment_id
  display_name        = "${var.name_prefix}-volumes"
  management_endpoint = oci_kms_vault.this[0].management_endpoint
  protection_mode     = "SOFTWARE"
  freeform_tags       = var.freeform_tags

  key_shape {
    algorithm = "AES"
    length    = 32
  }
}

# The Block Volume service encrypts with the key on the volume's behalf (Block Volume docs, "Block Volume
# Encryption": a policy must let the service use the key).
resource "oci_identity_policy" "volume_key" {
  count          = local.volume_key ? 1 : 0
  provider       = oci.home
  compartment_id = local.compartment_id
  name           = "${var.name_prefix}-volume-key"
  description    = "tierzero: the Block Volume service may use the volume key"
  statements     = ["Allow service blockstorage to use keys in compartment id ${local.compartment_id} where target.key.id = '${oci_kms_key.volumes[0].id}'"]
  freeform_tags  = var.freeform_tags
}
