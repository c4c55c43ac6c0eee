# A tenancy-wide budget whose actual-spend alert fires at the first cent: on Always Free any
# spend at all means something left the free tier.
resource "oci_budget_budget" "this" {
  provider       = oci.home
  compartment_id = var.tenancy_ocid
  amount         = var.budget_amount
  reset_period   = "MONTHLY"
  target_type    = "COMPARTMENT"
  targets        = [var.tenancy_ocid]
  display_name   = "${var.name_prefix}-free-tier"
  description    = "tierzero: any spend means the platform left Always Free"
  freeform_tags  = var.freeform_tags
}

resource "oci_budget_alert_rule" "actual_spend" {
  provider       = oci.home
  budget_id      = oci_budget_budget.this.id
  type           = "ACTUAL"
  threshold_type = "PERCENTAGE"
  threshold      = var.budget_alert_threshold_percent
  recipients     = var.budget_alert_email
  display_name   = "${var.name_prefix}-first-cent"
  message        = "tierzero ${var.name_prefix}: actual spend reached ${var.budget_alert_threshold_percent}% of the budget. Always Free should cost nothing."
}
