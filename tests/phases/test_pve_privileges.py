"""tierzero's Proxmox role is computed from the API schema: every call tierzero makes has the rule
Proxmox VE 9.1 checks for it (shared/oracles/pve/apidata.json), the role passes every one of them,
and no privilege in it is spare; the VM and container settings tierzero sends need nothing beyond
it and nothing only root@pam may set. Adding a call without its privilege fails here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from spec_builder import build_spec
from tierzero.adapters.proxmox_privileges import CALLS, FROM_CODE, ROLE_PRIVILEGES, missing, privileges_at, rule_privileges
from tierzero.sandbox.pve_rules.access import vm_key_privileges

VALUES = {"node": "pve1", "vmid": 1000, "storage": "local-lvm", "image_storage": "local", "bridge": "vmbr0", "upid": "UPID:x"}


@pytest.fixture(scope="module")
def schema(oracles: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for node in nodes:
            for method, info in (node.get("info") or {}).items():
                out[(method, node["path"])] = info
            walk(node.get("children") or [])

    walk(json.loads((oracles / "pve" / "apidata.json").read_text()))
    return out


def rule_of(schema: dict[tuple[str, str], dict[str, Any]], call: tuple[str, str]) -> Any:
    """The rule Proxmox checks for a call: the schema's, or (where the schema says `user: all` and
    the code checks) the one tierzero copied from qemu-server / pve-container."""
    return CALLS[call] if call in FROM_CODE else (schema[call].get("permissions") or {}).get("check")


def test_every_call_is_in_the_schema_with_the_rule_copied_exactly(schema: dict[tuple[str, str], dict[str, Any]]) -> None:
    for call, rule in CALLS.items():
        assert call in schema, call
        assert schema[call].get("allowtoken", 1) == 1, f"{call} is not available to API tokens"
        if call not in FROM_CODE:
            assert rule == (schema[call].get("permissions") or {}).get("check"), call
        else:
            assert (schema[call].get("permissions") or {}).get("user") == "all", call


def test_the_role_passes_every_rule_and_no_privilege_is_spare(schema: dict[tuple[str, str], dict[str, Any]]) -> None:
    held = {"/": ROLE_PRIVILEGES}
    for call in CALLS:
        assert missing(rule_of(schema, call), held, VALUES) == [], call
    for spare in ROLE_PRIVILEGES:
        without = {"/": [p for p in ROLE_PRIVILEGES if p != spare]}
        needed_by = [c for c in CALLS if missing(rule_of(schema, c), without, VALUES)]
        assert needed_by, f"{spare} is in the role but no call needs it"


def test_an_or_takes_its_least_powerful_branch(schema: dict[tuple[str, str], dict[str, Any]]) -> None:
    """download-url: Sys.AccessNetwork on the node, not Sys.Modify on / (a 'root' privilege)."""
    assert "Sys.Modify" not in ROLE_PRIVILEGES and "Sys.AccessNetwork" in ROLE_PRIVILEGES
    rule = rule_of(schema, ("POST", "/nodes/{node}/storage/{storage}/download-url"))
    assert {"Sys.Modify", "Sys.AccessNetwork"} <= rule_privileges(rule)


def test_a_call_added_without_its_privilege_would_fail(schema: dict[tuple[str, str], dict[str, Any]]) -> None:
    """What the suite does when someone adds, say, snapshots: the rule is not met by the role."""
    snapshot = (schema[("POST", "/nodes/{node}/qemu/{vmid}/snapshot")].get("permissions") or {}).get("check")
    assert missing(snapshot, {"/": ROLE_PRIVILEGES}, VALUES) == ["/vms/1000: VM.Snapshot"]


def test_the_settings_tierzero_sends_need_only_the_role() -> None:
    """qemu-server 9.1.0 $check_vm_modify_config_perm (as the sandbox enforces it): every key of the
    Talos VM tierzero creates is in a group the role holds, none is root-only."""
    from tierzero.phases.platform_vm import desired_config, vm_inputs

    for arch in ("amd64", "arm64"):
        spec = build_spec("proxmox", {"clusters.0.arch": arch, "hypervisors.proxmox.allow_software_emulation": True})
        cluster = spec.clusters[0]
        node = cluster.control_planes[0]
        ctx = SimpleNamespace(spec=spec, outputs={})
        vm = vm_inputs(ctx, cluster, node, 1000, "local:import/x.qcow2", "0" * 64)  # type: ignore[arg-type]
        config = desired_config(vm, vm.image, "local:snippets/u.yaml")
        assert ("efidisk0" in config) == (arch == "arm64")
        for key, value in config.items():
            privs = vm_key_privileges(key, value)
            assert privs is not None, f"{key} is root-only"
            assert not privs or set(privs) & set(ROLE_PRIVILEGES), (key, privs)


def test_privileges_apply_down_the_tree_and_the_nearest_entry_wins() -> None:
    held = {"/": ["Sys.Audit"], "/vms/100": ["VM.Audit"]}
    assert privileges_at(held, "/vms/100") == {"VM.Audit"} and privileges_at(held, "/vms/101") == {"Sys.Audit"}
    assert privileges_at(held, "/vms/1000") == {"Sys.Audit"}  # /vms/100 is not a prefix of /vms/1000
