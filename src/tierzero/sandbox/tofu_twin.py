"""OCI behind OpenTofu, in the sandbox (`STANDIN`, "tofu-twin"): the cloud phase applies the
`oci_twin` layer (terraform_data only, applied for real by tofu/terraform) instead of `oci`.
Option `oci_full_ads`: availability domains out of A1 capacity (creates there fail with OCI's
"Out of host capacity"); `oci_no_a1_ads`: ADs that do not offer A1 at all ("shape ... not
found"); the capacity hunt backs off on the sandbox's compressed clock."""

from __future__ import annotations

from tierzero.sandbox.context import SandboxContext, StandIn, Stop


def _start(box: SandboxContext) -> Stop:
    from tierzero.adapters.capacity import Backoff

    cloud = box.connections.cloud
    cloud.layer = "oci_twin"
    cloud.capacity_backoff = Backoff(base_seconds=0.05, cap_seconds=0.2)
    for ads, variable in ((box.options.oci_full_ads, "TIERZERO_TWIN_FULL_ADS"), (box.options.oci_no_a1_ads, "TIERZERO_TWIN_NO_A1_ADS")):
        if ads:
            cloud.env[variable] = " ".join(ads)
    return lambda: None


STANDIN = StandIn("tofu-twin", _start)
