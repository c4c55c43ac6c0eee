"""OCI behind OpenTofu, in the sandbox (`STANDIN`, "tofu-twin"): the cloud phase applies the
`oci_twin` layer (terraform_data only, applied for real by tofu/terraform) instead of `oci`.
Option `oci_full_ads`: availability domains out of A1 capacity (creates there fail with OCI's
"Out of host capacity"); `oci_no_a1_ads`: ADs that do not offer A1 at all ("shape ... not
found"); the capacity hunt backs off on the sandbox's compressed clock."""

from __future__ import annotations

import ipaddress
from typing import Any

from tierzero.sandbox.context import SandboxContext, StandIn, Stop


def twin_addresses(spec: Any) -> dict[str, tuple[str, str]]:
    """name -> (private, public) address of every instance, as the `oci_twin` layer assigns them
    (layers/oci_twin/twin.tf: sorted names; the subnet's host 10+i; TEST-NET-2 for instances with
    a reserved IP, TEST-NET-3 for the rest), so stand-ins can play the machines at those addresses."""
    oci = spec.oci
    if oci is None:
        return {}
    names = sorted([i.name for i in oci.a1_instances] + [i.name for i in oci.micro_instances])
    reserved = {r.instance for r in oci.reserved_ips}
    subnet = ipaddress.ip_network(oci.network.subnet_cidr)
    out = {}
    for i, name in enumerate(names):
        public = ipaddress.ip_network("198.51.100.0/24" if name in reserved else "203.0.113.0/24")[10 + i]
        out[name] = (str(subnet[10 + i]), str(public))
    return out


def _start(box: SandboxContext) -> Stop:
    from tierzero.adapters.backoff import Backoff

    cloud = box.connections.cloud
    cloud.layer = "oci_twin"
    cloud.capacity_backoff = Backoff(base_seconds=0.05, cap_seconds=0.2)
    from tierzero.sandbox import oci

    server = box.get(oci.SERVER)
    if server is not None:  # the twin's Talos instances are launched there, as the provider launches them in OCI
        cloud.env["TIERZERO_TWIN_OCI_URL"] = server.url
    for ads, variable in ((box.options.oci_full_ads, "TIERZERO_TWIN_FULL_ADS"), (box.options.oci_no_a1_ads, "TIERZERO_TWIN_NO_A1_ADS")):
        if ads:
            cloud.env[variable] = " ".join(ads)
    return lambda: None


STANDIN = StandIn("tofu-twin", _start)
