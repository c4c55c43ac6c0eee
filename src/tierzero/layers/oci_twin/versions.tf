# The twin of ../oci: same variables (staged from ../oci/variables.tf and limits.tf, see shared.txt) and same outputs,
# built from terraform_data only, so a sandbox can plan and apply the cloud layer for real without
# a cloud account or a provider download. Outputs are deterministic fakes derived from names.
#
# Capacity simulation: set TIERZERO_TWIN_FULL_ADS to space-separated availability domains and any
# instance created in one of them fails with OCI's "Out of host capacity" message. Set
# TIERZERO_TWIN_CREATE_SECONDS to make each instance create take that long (a real one takes
# minutes), e.g. to interrupt an apply while it runs.
terraform {
  required_version = ">= 1.10.0"
}
