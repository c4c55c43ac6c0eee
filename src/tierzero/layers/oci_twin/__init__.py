"""Package marker so the twin module's *.tf files ship as package data (see ../oci_twin/versions.tf)."""
