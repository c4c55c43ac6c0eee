"""Pin the Proxmox VE API's TLS certificate: read the cluster CA over the already trusted SSH
connection and verify the API against it, instead of not verifying at all.

A stock install serves the API (pveproxy, port 8006) with /etc/pve/local/pve-ssl.pem, signed by
the cluster's own CA /etc/pve/pve-root-ca.pem, which pve-cluster creates at install and shares
with every node that joins (`pvecm add`). Source: pve-docs 9.1 "Certificate Management"
(sysadmin.adoc: "Certificates for Intra-Cluster Communication"). The hosts' SSH keys are trusted on
first use (tierzero.adapters.ssh), so what is read over SSH is as trustworthy as the host itself.

Not covered: a custom or ACME certificate (/etc/pve/local/pveproxy-ssl.pem) is not signed by that
CA; such a cluster fails the TLS check with a hint, and endpoints reached through the bastion
tunnel (cloud instances) still skip verification (the certificate names the private address).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

from tierzero.engine.step import StepContext
from tierzero.errors import OperationError
from tierzero.phases.hosts import host_ssh
from tierzero.workspace.layout import write_public

CLUSTER_CA = "/etc/pve/pve-root-ca.pem"


def pinned_ca_path(workspace_root: Path) -> Path:
    """Where the cluster CA is kept in the workspace (public data: a certificate)."""
    return Path(workspace_root) / "pve" / "pve-root-ca.pem"


def ca_inputs(ctx: StepContext, first: str) -> Mapping[str, Any]:
    """The node the CA is read from (a file made by the step cannot be part of its own inputs:
    the second run would differ from the first)."""
    return {"node": first, "path": str(pinned_ca_path(ctx.workspace.root))}


def check_certificates(pem: bytes, where: str) -> None:
    """OperationError unless `pem` holds at least one PEM X.509 certificate."""
    from cryptography import x509

    try:
        if x509.load_pem_x509_certificates(pem):
            return
    except ValueError:
        pass
    raise OperationError(f"{where} holds no PEM certificate", hint=f"check {CLUSTER_CA} on the node (`pvecm updatecerts` recreates it)")


def pin_step(first: str):
    async def run(ctx: StepContext, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        pem = (await host_ssh(ctx, first).run(["cat", CLUSTER_CA], hint="is pve-cluster running? `systemctl status pve-cluster`")).stdout.encode()
        check_certificates(pem, f"{CLUSTER_CA} on {first}")
        path = pinned_ca_path(ctx.workspace.root)
        write_public(path, pem)
        return {"path": str(path), "sha256": hashlib.sha256(pem).hexdigest()}

    return run
