"""Offline client material: a talosconfig and an admin kubeconfig signed by the bundle's CAs."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

from tierzero.render.talos import pki, yamlio
from tierzero.render.talos.secrets import SecretsBundle

TALOS_ADMIN_ROLE = "os:admin"
KUBE_ADMIN_GROUP = "system:masters"


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode()


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)


def talosconfig(
    bundle: SecretsBundle,
    context: str,
    endpoints: Sequence[str],
    nodes: Sequence[str] = (),
    *,
    now: dt.datetime | None = None,
) -> str:
    """A talosconfig whose admin certificate (Ed25519, O=os:admin) is signed by the OS CA."""
    admin = pki.new_client_cert(
        bundle.os_ca, pki.new_ed25519_key(), organization=TALOS_ADMIN_ROLE, common_name=None, now=_now(now)
    )
    entry: dict[str, Any] = {"endpoints": list(endpoints)}
    if nodes:
        entry["nodes"] = list(nodes)
    entry.update(ca=_b64(bundle.os_ca.crt), crt=_b64(admin.crt), key=_b64(admin.key))
    return yamlio.dump_document({"context": context, "contexts": {context: entry}})


def admin_kubeconfig(
    bundle: SecretsBundle, cluster_name: str, endpoint: str, *, now: dt.datetime | None = None
) -> str:
    """A kubeconfig for `admin` in system:masters, client certificate signed by the Kubernetes CA."""
    admin = pki.new_client_cert(
        bundle.k8s_ca, pki.new_ecdsa_key(), organization=KUBE_ADMIN_GROUP, common_name="admin", now=_now(now)
    )
    user = f"admin@{cluster_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": _b64(bundle.k8s_ca.crt)}}
        ],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(admin.crt), "client-key-data": _b64(admin.key)}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_name, "namespace": "default", "user": user}}],
        "current-context": user,
    }
    return yamlio.dump_document(config)
