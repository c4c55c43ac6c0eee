"""The internet, as far as the sandbox needs it: the GitOps phase fetches pinned install manifests
(Flux, Argo CD) over HTTPS; the sandbox is offline, so each fetch answers a stub holding just the
engine's namespace (`STANDIN`, "internet")."""

from __future__ import annotations

from tierzero.sandbox.context import SandboxContext, StandIn, Stop


def offline_install(url: str) -> str:
    namespace = "argocd" if "argo" in url else "flux-system"
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"


def _start(box: SandboxContext) -> Stop:
    box.connections.fetch = offline_install
    return lambda: None


STANDIN = StandIn("internet", _start)
