"""`tierzero tunnel`: keeps the forwards through the bastion open until Ctrl-C (exit 130, closed
cleanly) and writes a kubeconfig and talosconfig (0600) whose endpoints are the local forwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tierzero.adapters.connections import Endpoint
from tierzero.adapters.kubernetes import Kube
from tierzero.cli import main as cli_main
from tierzero.cli import output
from tierzero.workspace.keys import create_ssh_keypair
from tierzero.workspace.layout import Workspace, write_private
from cloud_state import launched_with
from spec_builder import write_project

NODES = ["10.10.0.11", "10.10.0.12", "10.10.0.13"]


def _platform_files(clusters: Path) -> None:
    """What the platform phase leaves (shapes of talosctl's files); the tunnel rewrites copies of them."""
    write_private(clusters / "kubeconfig", yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@main",
        "clusters": [{"name": "main", "cluster": {"server": "https://10.10.0.10:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin@main", "user": {"token": "sandbox"}}],
        "contexts": [{"name": "admin@main", "context": {"cluster": "main", "user": "admin@main"}}]}))
    write_private(clusters / "talosconfig", yaml.safe_dump({
        "context": "main", "contexts": {"main": {"endpoints": NODES, "nodes": NODES, "ca": "", "crt": "", "key": ""}}}))


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.slow
def test_tunnel_writes_configs_on_the_forwards_and_closes_on_ctrl_c(tmp_path: Path) -> None:
    spec = write_project(tmp_path, "oci-free-tier")
    clusters = tmp_path / ".tierzero" / "clusters" / "main"
    _platform_files(clusters)
    ws = Workspace(tmp_path / ".tierzero")
    if not ws.ssh_public_key.exists():
        create_ssh_keypair(ws)
    launched_with(ws, ws.ssh_public_key.read_text())  # the cloud phase launched the bastion with the workspace key
    proc = subprocess.Popen([sys.executable, "-m", "tierzero", "tunnel", "-f", str(spec), "--target", "sandbox"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the deadline is the communicate() below: a hung tunnel is killed there
            lines.append(line)
            if "Ctrl-C" in line:
                break
        shown = "".join(lines)
        assert "Kubernetes API main" in shown and "->  10.10.0.10:6443" in shown and "->  10.0.1.11:8006" in shown, shown
        assert "Infisical infisical    http://127.0.0.1:" in shown and "->  10.10.0.30:8080" in shown, shown
        kubeconfig, talosconfig = clusters / "tunnel" / "kubeconfig", clusters / "tunnel" / "talosconfig"
        assert {os.stat(f).st_mode & 0o777 for f in (kubeconfig, talosconfig)} == {0o600}
        cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
        assert cluster["tls-server-name"] == "10.10.0.10" and cluster["server"].startswith("https://127.0.0.1:")
        port = int(cluster["server"].rsplit(":", 1)[1])
        assert f"https://127.0.0.1:{port}  ->  10.10.0.10:6443" in shown
        # The written kubeconfig works: the Kubernetes stand-in answers through the bastion.
        assert Kube(Endpoint("127.0.0.1", port, extra={"kubeconfig": str(kubeconfig)})).version().startswith("v1.")
        context = yaml.safe_load(talosconfig.read_text())["contexts"]["main"]
        assert context["nodes"] == NODES and len(context["endpoints"]) == 3
        assert all(e.startswith("127.0.0.1:") and f"{e}  ->  {n}:50000" in shown for e, n in zip(context["endpoints"], NODES))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert out.strip().endswith("tunnel closed") and err == ""
    assert _refused(port)  # the forward is gone with the tunnel


def test_a_spec_without_a_bastion_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_project(tmp_path, "proxmox")
    cli_main._register()
    assert output.invoke(cli_main.app, ["tunnel", "-f", str(spec), "--target", "sandbox"]) == 1
    assert "no bastion to tunnel through" in capsys.readouterr().err
