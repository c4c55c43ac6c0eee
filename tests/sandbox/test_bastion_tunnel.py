"""The way in: on a cloud spec, private addresses are reached only through SSH forwards over the
bastion (tierzero.adapters.tunnel); the sandbox's bastion is a stock sshd that accepts the keys
the instance was launched with, forwards anywhere, and records the channels it opened."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tierzero.adapters.connections import Connections, Endpoint
from tierzero.adapters.kubernetes import Kube
from tierzero.adapters.retry import Policy
from tierzero.adapters.tunnel import BastionTunnel, BastionUnreachable, is_private
from tierzero.sandbox import bastion
from tierzero.sandbox.harness import Sandbox
from tierzero.workspace.layout import Workspace
from cloud_state import launched_with
from spec_builder import build_spec

SPEC = build_spec("oci-free-tier")


@pytest.fixture
def box(ws: Workspace) -> Iterator[Sandbox]:
    launched_with(ws, ws.ssh_public_key.read_text())
    sandbox = Sandbox(SPEC, ws, persist=False, bastion=True)
    sandbox.start(only=["kubernetes", "talos", "pve-hosts", "fakepve", "bastion"])
    sandbox.connections.retry.ssh = Policy(base=0.05, cap=0.1, deadline=0.5)
    yield sandbox
    sandbox.stop()


def _server(box: Sandbox) -> bastion.BastionServer:
    assert box.context is not None
    return box.context[bastion.SERVER]


def tunnel_ports(box: Sandbox) -> list[int]:
    assert box.connections.tunnel is not None
    return [f.local_port for f in box.connections.tunnel.forwards.values()]


def test_a_kubernetes_call_travels_through_the_bastion_to_the_vip(box: Sandbox) -> None:
    server = _server(box)
    assert server.opened() == []
    version = Kube.connect(box.connections, "main").version()
    assert version.startswith("v1.")
    assert server.opened() == [("10.10.0.10", 6443)]  # the VIP on the VM network, nothing else
    endpoint = box.connections.endpoint("kubernetes", "main")
    assert (endpoint.host, endpoint.extra["via"], endpoint.extra["tls_server_name"]) == ("127.0.0.1", "bastion", "10.10.0.10")
    assert tunnel_ports(box) == [endpoint.port]  # one forward, kept for the next calls


def test_the_bastion_forwards_anywhere_like_a_stock_sshd(box: Sandbox) -> None:
    # sshd_config(5): AllowTcpForwarding yes, PermitOpen any; tierzero sets no restriction. An address
    # outside the VCN is forwarded; nothing plays it here, so the connect fails behind the bastion.
    tunnel = box.connections.tunnel
    assert tunnel is not None
    fwd = tunnel.forward("192.168.1.1", 443)
    with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=10) as sock:
        sock.settimeout(10)
        assert sock.recv(1) == b""  # the channel failed: the local connection is closed
    server = _server(box)
    assert [(c.host, c.port, c.opened) for c in server.channels] == [("192.168.1.1", 443, False)]
    assert not hasattr(server, "permitted")  # no allow-list to consult


def test_the_bastion_accepts_only_the_keys_the_instance_was_launched_with(box: Sandbox, ws: Workspace) -> None:
    from tierzero.workspace.keys import create_ssh_keypair

    other = Workspace(ws.root.parent / "other")
    other.root.mkdir()
    create_ssh_keypair(other)
    server = _server(box)
    assert server.accepts(ws.ssh_public_key.read_text().split()[1])
    launched_with(ws, other.ssh_public_key.read_text())  # the instance got the spec's other key
    assert not server.accepts(ws.ssh_public_key.read_text().split()[1])
    with pytest.raises(BastionUnreachable):
        Kube.connect(box.connections, "main").version()
    (ws.root / "cloud" / "terraform.tfstate").unlink()  # not launched: no key at all
    assert not server.accepts(other.ssh_public_key.read_text().split()[1])
    launched_with(ws, other.ssh_public_key.read_text() + ws.ssh_public_key.read_text())  # several keys, one a line
    assert Kube.connect(box.connections, "main").version().startswith("v1.")


def test_a_bastion_that_does_not_answer_fails_with_a_message_naming_it(box: Sandbox) -> None:
    server = _server(box)
    server.set_down()
    with pytest.raises(BastionUnreachable) as caught:
        Kube.connect(box.connections, "main").version()
    assert "the bastion ubuntu@127.0.0.1" in caught.value.message and "(bastion bastion)" in caught.value.message
    assert "SSH 22" in (caught.value.hint or "")
    server.set_down(False)  # back: the next call opens the forward
    assert Kube.connect(box.connections, "main").version().startswith("v1.")


def test_a_dropped_bastion_connection_is_made_again_on_the_same_local_ports(box: Sandbox) -> None:
    server = _server(box)
    first = box.connections.endpoint("kubernetes", "main")
    assert Kube(first).version().startswith("v1.")
    tunnel = box.connections.tunnel
    assert tunnel is not None and tunnel.connected
    server.set_down()  # every session dropped: the forward's listener runs over a dead connection
    deadline = time.monotonic() + 30
    while tunnel.connected and time.monotonic() < deadline:  # the client learns of the drop from its socket
        time.sleep(0.01)
    with pytest.raises(BastionUnreachable):
        box.connections.endpoint("kubernetes", "main")
    server.set_down(False)
    again = box.connections.endpoint("kubernetes", "main")
    assert again.port == first.port  # clients built before (cached per endpoint) keep working
    assert Kube(again).version().startswith("v1.")
    assert server.opened() == [("10.10.0.10", 6443)] * 2


def test_without_a_bastion_endpoint_the_error_says_to_run_the_cloud_phase(ws: Workspace) -> None:
    conns = Connections(target="real", ssh_key=ws.ssh_key, known_hosts=ws.root / "known_hosts")
    conns.tunnel = BastionTunnel(conns)
    conns.add("talos", "10.10.0.11", Endpoint("10.10.0.11", 50000))
    with pytest.raises(BastionUnreachable, match="no bastion address is known") as caught:
        conns.endpoint("talos", "10.10.0.11")
    assert "cloud phase" in (caught.value.hint or "")


def test_only_private_addresses_other_than_ssh_go_through_the_bastion(ws: Workspace) -> None:
    conns = Connections(target="real")
    tunnel = BastionTunnel(conns, key_path=ws.ssh_key)
    assert tunnel.behind("proxmox", "pve1", Endpoint("10.0.1.10", 8006)) == ("10.0.1.10", 8006)
    assert tunnel.behind("talos", "10.10.0.11", Endpoint("10.10.0.11", 50000)) == ("10.10.0.11", 50000)
    assert tunnel.behind("ssh", "pve1", Endpoint("10.0.1.10", 22, scheme="ssh")) is None  # hosts answer SSH on their public address
    assert tunnel.behind("proxmox", "pve1", Endpoint("129.159.1.2", 8006)) is None
    assert tunnel.behind("oci", "default", Endpoint("iaas.eu-frankfurt-1.oraclecloud.com", 443)) is None
    assert [is_private(a) for a in ("10.0.0.1", "172.16.5.5", "192.168.1.1", "100.64.0.7", "fd00::1")] == [True] * 5
    assert [is_private(a) for a in ("127.0.0.1", "8.8.8.8", "0.0.0.0", "example.com")] == [False] * 4
