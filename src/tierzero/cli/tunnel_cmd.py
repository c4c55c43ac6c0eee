"""`tierzero tunnel`: keep the forwards through the bastion open, and write a kubeconfig and a
talosconfig that use them, so kubectl and talosctl reach a cloud platform's private addresses.

The forwards are the adapters' own (tierzero.adapters.tunnel): the Proxmox API of each host, the
Kubernetes API at the cluster endpoint, the Talos API of each control plane and Infisical. The files go to
`.tierzero/clusters/<cluster>/tunnel/` (0600), rewritten from the platform phase's kubeconfig and
talosconfig; they hold until Ctrl-C closes the tunnel (exit 130).

TLS: the kubeconfig keeps the original host as `tls-server-name` (kubectl verifies the API
server's certificate against it). talosconfig has no such field; the local end 127.0.0.1 is
verified instead, which Talos' apid certificate always names (Talos v1.14
internal/app/machined/pkg/controllers/secrets/api_cert_sans.go appends 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tierzero.cli.deploy_cmd import FOLLOW_TARGET_OPTION, SPEC_OPTION, _followed_target

if TYPE_CHECKING:
    from tierzero.adapters.connections import Connections, Endpoint
    from tierzero.spec.models import Platform


def register(app: typer.Typer) -> None:
    app.command("tunnel")(tunnel)


def _forwards(spec: Platform, conns: Connections) -> list[tuple[str, str, Endpoint]]:
    """(what, name, local endpoint) for every private address the tunnel carries."""
    from tierzero.adapters.connections import Endpoint, UnknownEndpoint
    from tierzero.render.services.infisical import API_PORT as INFISICAL_PORT

    wanted: list[tuple[str, str, str, Endpoint | None]] = [(f"Proxmox API {n.name}", "proxmox", n.name, None) for n in (spec.proxmox.nodes if spec.has_proxmox else [])]
    for cluster in spec.clusters:
        wanted.append((f"Kubernetes API {cluster.name}", "kubernetes", cluster.name, None))
        for node in cluster.control_planes:
            address = str(node.ip.address)
            wanted.append((f"Talos API {node.name}", "talos", address, Endpoint(address, 50000)))
    for svc in spec.services:
        if svc.kind == "infisical" and svc.ip.address:
            wanted.append((f"Infisical {svc.name}", "infisical", svc.name, Endpoint(str(svc.ip.address), INFISICAL_PORT, scheme="http", verify=False)))
    out = []
    for what, kind, name, default in wanted:
        try:
            endpoint = conns.endpoint(kind, name, default=default)
        except UnknownEndpoint:
            continue  # not known yet (the cloud phase publishes the hosts' addresses)
        if endpoint.extra.get("via"):
            out.append((what, name, endpoint))
    return out


def _kubeconfig(source: Path, local: Endpoint) -> str:
    """The kubeconfig at `source`, every cluster's server the local end, tls-server-name the original host."""
    import yaml

    doc: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
    for entry in doc.get("clusters") or []:
        cluster = entry.get("cluster") or {}
        cluster["tls-server-name"] = str(local.extra["tls_server_name"])
        cluster["server"] = f"https://127.0.0.1:{local.port}"
    return yaml.safe_dump(doc, sort_keys=False)


def _talosconfig(source: Path, talos: dict[str, Endpoint]) -> str:
    """The talosconfig at `source`, each context's endpoints the local ends of their forwards
    (an endpoint with no forward is dropped; `nodes` stay: apid on the endpoint proxies to them)."""
    import yaml

    doc: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
    for context in (doc.get("contexts") or {}).values():
        endpoints = [str(e).rsplit(":", 1)[0] if str(e).count(":") == 1 else str(e) for e in context.get("endpoints") or []]
        context["endpoints"] = [f"127.0.0.1:{talos[e].port}" for e in endpoints if e in talos]
    return yaml.safe_dump(doc, sort_keys=False)


def tunnel(file: Path = SPEC_OPTION, target: str = FOLLOW_TARGET_OPTION) -> None:
    """Keep forwards through the bastion open until Ctrl-C; write a kubeconfig and talosconfig that use them."""
    import threading

    from tierzero.cli import output
    from tierzero.cli.session import Session, kubeconfig_path, talosconfig_path
    from tierzero.errors import RefusedError
    from tierzero.workspace.layout import write_private

    target = _followed_target(file, target)
    session = Session(file, target, lock=False)
    con = output.console()
    try:
        with session as runner:
            runner.context_from_state("tunnel")  # the endpoints finished steps published (the bastion, the hosts)
            conns = runner.connections
            if conns.tunnel is None:
                raise RefusedError("this spec's addresses are reached directly: there is no bastion to tunnel through",
                                   hint="a tunnel is for a cloud spec with a micro instance whose roles include bastion")
            forwards = _forwards(session.spec, conns)
            con.print(f"through the bastion {conns.tunnel.name}:", markup=False)
            for what, _, ep in forwards:
                scheme = "" if what.startswith("Talos") else f"{ep.scheme}://"
                con.print(f"  {what:<22} {scheme}127.0.0.1:{ep.port}  ->  {ep.extra['behind']}", markup=False)
            talos = {str(ep.extra["tls_server_name"]): ep for what, _, ep in forwards if what.startswith("Talos API")}
            for cluster in session.spec.clusters:
                kube = next((ep for what, name, ep in forwards if what.startswith("Kubernetes API") and name == cluster.name), None)
                out_dir = kubeconfig_path(session.workspace, cluster.name).parent / "tunnel"
                sources = {"kubeconfig": kubeconfig_path(session.workspace, cluster.name), "talosconfig": talosconfig_path(session.workspace, cluster.name)}
                for kind, source in sources.items():
                    text = None
                    if source.exists() and kind == "kubeconfig" and kube is not None:
                        text = _kubeconfig(source, kube)
                    elif source.exists() and kind == "talosconfig" and talos:
                        text = _talosconfig(source, talos)
                    if text is None:
                        con.print(f"  {kind} ({cluster.name}): none yet (the platform phase writes it)", markup=False)
                        continue
                    write_private(out_dir / kind, text)
                    con.print(f"  {kind} ({cluster.name}): export {kind.upper()}={out_dir / kind}", markup=False)
            con.print("press Ctrl-C to close the tunnel", markup=False)
            threading.Event().wait()
    except KeyboardInterrupt:
        con.print("tunnel closed", markup=False)
        raise typer.Exit(130) from None
