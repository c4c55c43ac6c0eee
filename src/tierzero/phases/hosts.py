"""Shared by the hypervisors and platform phases: SSH to a Proxmox host by its spec name, its
cluster address, and parsers for `pvecm` output."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tierzero.adapters.connections import Endpoint, UnknownEndpoint
from tierzero.adapters.ssh import BoundSsh, ssh_client
from tierzero.errors import OperationError

if TYPE_CHECKING:
    from tierzero.engine.step import StepContext
    from tierzero.spec.models import ProxmoxNode


def pve_node(ctx: "StepContext", name: str) -> "ProxmoxNode":
    node = ctx.spec.proxmox.get_node(name)
    if node is None:
        raise OperationError(f"no hypervisors.proxmox.nodes entry named {name!r}")
    return node


def host_ssh(ctx: "StepContext", name: str) -> BoundSsh:
    """SSH to a Proxmox node or the quorum witness, with the workspace key."""
    node = ctx.spec.proxmox.get_node(name)
    user = node.ssh.user if node else "root"
    key: Path | None = None
    if ctx.connections.ssh_key is None and node is not None:
        key = ctx.workspace.root.parent / node.ssh.private_key
    return ssh_client(ctx.connections, name, user=user, workspace_root=ctx.workspace.root, key_path=key, on_retry=ctx.retry)


def host_address(ctx: "StepContext", name: str) -> str:
    """The address other hosts reach this one at (corosync, pvecm add, qnetd)."""
    node = ctx.spec.proxmox.get_node(name)
    if node is not None and node.address:
        return node.address
    try:
        ep = ctx.connections.endpoint("ssh", name)
    except UnknownEndpoint:
        if re.fullmatch(r"[0-9.:a-fA-F]+", name):
            return name
        raise
    return str(ep.extra.get("address") or ep.host)


def witness_name(ctx: "StepContext") -> str:
    """The QDevice witness as an SSH target: its endpoint comes from the spec (an address) or
    from the cloud phase's outputs (a micro instance); nothing else knows where it is."""
    qdevice = ctx.spec.proxmox.qdevice
    if qdevice is None:
        raise OperationError("the spec has no hypervisors.proxmox.qdevice", hint="add a qdevice for a two-host cluster")
    name = qdevice.host
    try:
        ctx.connections.endpoint("ssh", name)
        return name
    except UnknownEndpoint:
        pass
    if not re.fullmatch(r"[0-9.:a-fA-F]+", name):
        raise OperationError(
            f"no address is known for the QDevice witness {name!r}: the cloud phase publishes it from its outputs",
            hint="run the cloud phase first (`tierzero deploy` runs it), or give hypervisors.proxmox.qdevice.host as an address",
        )
    wanted = Endpoint(name, qdevice.ssh_port, scheme="ssh", extra={"user": qdevice.ssh_user or "root", "address": name})
    found = ctx.connections.reach(wanted)
    if found is None:
        raise OperationError(f"the QDevice witness {name} is not reachable from here", hint="check hypervisors.proxmox.qdevice.host")
    ctx.connections.add("ssh", name, found)
    return name


@dataclass
class PvecmStatus:
    in_cluster: bool
    name: str | None = None
    quorate: bool = False
    members: list[str] = field(default_factory=list)  # addresses (status) or names (nodes)
    qdevice: bool = False
    expected_votes: int | None = None
    total_votes: int | None = None


_ROW = re.compile(r"^\s*(0x[0-9a-fA-F]+|\d+)\s+(\d+)\s+(.*?)\s*$")


def parse_pvecm(text: str, exit_status: int = 0) -> PvecmStatus:
    """Parse `pvecm status` or `pvecm nodes`; a node outside any cluster exits non-zero."""
    if exit_status != 0 or "does not exist - is this node part of a cluster" in text:
        return PvecmStatus(in_cluster=False)
    st = PvecmStatus(in_cluster=True)
    in_members = False
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not in_members:
            key, value = key.strip(), value.strip()
            if key == "Name":
                st.name = value
            elif key == "Quorate":
                st.quorate = value.lower() == "yes"
            elif key == "Expected votes":
                st.expected_votes = int(value)
            elif key == "Total votes":
                st.total_votes = int(value)
            elif key == "Flags" and "Qdevice" in value:
                st.qdevice = True
        if line.startswith("Membership information"):
            in_members = True
            continue
        match = _ROW.match(line) if in_members else None
        if match:
            who = match.group(3).replace("(local)", "").split()[-1]
            if who == "Qdevice":
                st.qdevice = True
            else:
                st.members.append(who)
    if "Quorate" not in text:  # `pvecm nodes` says nothing about quorum
        st.quorate = bool(st.members)
    return st
