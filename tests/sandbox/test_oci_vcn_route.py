"""Issue 14: what the sandbox's VCN delivers from the bastion (OciState.vcn_route), read from the twin's state as
the cloud layer applied it, and the bastion failing a forward the VCN would lose as an unanswered connect does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tierzero.sandbox.oci import OciState


def _state(path: Path, **resources: Any) -> Path:
    """A twin state holding terraform_data resources `name=output value` (None: the resource is absent)."""
    doc = {"version": 4, "resources": [
        {"mode": "managed", "type": "terraform_data", "name": name,
         "instances": [{"index_key": 0, "attributes": {"output": {"value": value}}}]}
        for name, value in resources.items() if value is not None]}
    path.write_text(json.dumps(doc))
    return path


ROUTE = {"destination": "10.10.0.0/24", "target_instance": "a1-1", "target_private_ip": "10.0.1.10",
         "target_skips_source_dest_check": True, "ports": [6443, 8080, 50000], "source": "10.0.1.0/24"}
VCN = {"id": "ocid1.vcn.oc1..twin", "cidr": "10.0.0.0/16"}


def test_the_vm_network_is_reached_only_through_its_route_rule(tmp_path: Path) -> None:
    st = OciState(stack_state=_state(tmp_path / "s.json", vcn=VCN, vm_route=ROUTE))
    assert st.vcn_route("10.0.1.11", 8006) is None  # inside the VCN: local routing
    assert st.vcn_route("10.10.0.11", 50000) is None and st.vcn_route("10.10.0.30", 8080) is None
    assert "security list admits no TCP 22" in (st.vcn_route("10.10.0.11", 22) or "")
    assert "no route rule for 10.20.0.5" in (st.vcn_route("10.20.0.5", 6443) or "")


def test_without_a_route_rule_or_with_a_checking_vnic_the_packets_are_lost(tmp_path: Path) -> None:
    none = OciState(stack_state=_state(tmp_path / "a.json", vcn=VCN))
    assert "internet gateway drops a private destination" in (none.vcn_route("10.10.0.11", 50000) or "")
    checking = OciState(stack_state=_state(tmp_path / "b.json", vcn=VCN, vm_route={**ROUTE, "target_skips_source_dest_check": False}))
    assert "VNIC of a1-1 checks source/destination" in (checking.vcn_route("10.10.0.11", 50000) or "")


def test_nothing_is_judged_before_the_cloud_layer_made_the_vcn(tmp_path: Path) -> None:
    assert OciState(stack_state=tmp_path / "missing.json").vcn_route("10.10.0.11", 50000) is None


async def test_the_bastion_fails_a_forward_the_vcn_loses(tmp_path: Path) -> None:
    import asyncssh

    from tierzero.sandbox.bastion import BastionServer

    key = asyncssh.generate_private_key("ssh-ed25519")
    st = OciState(stack_state=_state(tmp_path / "s.json", vcn=VCN))  # no route rule to the VM network
    authorized = key.export_public_key().decode()
    server = BastionServer(lambda host, port: None, lambda: authorized, route=st.vcn_route).start()
    try:
        async with asyncssh.connect("127.0.0.1", server.port, username="ubuntu", client_keys=[key], known_hosts=None) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.create_connection(asyncssh.SSHTCPSession, "10.10.0.11", 50000)
    finally:
        server.stop()
    assert refused.value.code == asyncssh.OPEN_CONNECT_FAILED and refused.value.reason == "Connection timed out"
    assert [(c.host, c.port, c.opened) for c in server.channels] == [("10.10.0.11", 50000, False)]
    assert server.lost and "internet gateway drops" in server.lost[0]
