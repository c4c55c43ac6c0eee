terraform {
  # 1.10 is where both OpenTofu and Terraform gained S3-native state locking (use_lockfile).
  required_version = ">= 1.10.0"

  required_providers {
    oci = {
      source  = "oracle/oci"
      version = "~> 7.30"
    }
  }
  # No backend block here: the local backend is the default. For an S3-compatible state bucket
  # the runner writes backend.tf.json plus a -backend-config file at init time.
}

provider "oci" {
  region              = var.region
  tenancy_ocid        = var.tenancy_ocid
  config_file_profile = var.config_profile
}

# Identity (compartments) and budgets are written in the tenancy's home region.
provider "oci" {
  alias               = "home"
  region              = coalesce(var.home_region, var.region)
  tenancy_ocid        = var.tenancy_ocid
  config_file_profile = var.config_profile
}
