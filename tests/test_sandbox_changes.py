"""A re-run does what changed: a spec edit that changes one node's machine config re-renders,
re-runs that node's VM step (its NoCloud user-data) and the Talos step, which leaves the running
node to the roll: that node's config step applies the new config over the authenticated API, the
cluster healthy before and after; nothing else runs, and a further run changes nothing."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from tierzero.cli.session import Session
from tierzero.sandbox.world import World
from tierzero.workspace import Workspace

from sandbox_runs import Events, starter_project

pytestmark = pytest.mark.slow

CP2 = '{name: cp-2, node: pve1, cores: 1, memory_gb: 2, disk_gb: 20, ip: 10.10.0.12/24, mac: "BC:24:11:00:00:12"}'
CP2_TUNED = CP2[:-1] + ', patches: [{machine: {sysctls: {net.core.somaxconn: "65535"}}}]}'


def _deploy(spec: Path) -> tuple[Events, dict[str, Any]]:
    events = Events()
    with Session(spec, "sandbox", emit=events) as runner:
        asyncio.run(runner.run())
        return events, {sid: r.outputs for sid, r in runner.state.records().items()}


def _applied_config(ws: Path, address: str) -> str:
    talos = World.open(Workspace(ws)).file("talos").load()
    assert talos is not None
    machine = next(m for m in talos["machines"].values() if m["address"] == address)
    return base64.b64decode(machine["config"]).decode()


def test_a_changed_machine_config_is_applied_to_the_running_node(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    _, first = _deploy(spec)
    assert first["platform/main/talos"]["stale"] == []
    assert {first[f"platform/main/config/cp-{i}"]["applied"] for i in (1, 2, 3)} == {False}  # they booted with it
    assert "somaxconn" not in _applied_config(tmp_path / ".tierzero", "10.10.0.12")

    text = spec.read_text()
    assert CP2 in text
    spec.write_text(text.replace(CP2, CP2_TUNED))
    events, second = _deploy(spec)
    assert sorted(events.started()) == ["gitops/main/push", "platform/main/config/cp-2", "platform/main/talos", "platform/main/vm/cp-2",
                                        "setup/render", "validate/checks"]
    assert second["platform/main/talos"]["stale"] == ["cp-2"]
    assert second["platform/main/config/cp-2"] == {"node": "cp-2", "config": second["platform/main/talos"]["configs"]["cp-2"],
                                                   "applied": True, "mode": "no_reboot"}
    assert second["platform/main/talos"]["configs"]["cp-2"] != first["platform/main/talos"]["configs"]["cp-2"]
    assert second["platform/main/talos"]["configs"]["cp-1"] == first["platform/main/talos"]["configs"]["cp-1"]
    assert "net.core.somaxconn: \"65535\"" in _applied_config(tmp_path / ".tierzero", "10.10.0.12")
    assert "somaxconn" not in _applied_config(tmp_path / ".tierzero", "10.10.0.11")

    events, _ = _deploy(spec)
    assert events.started() == ["gitops/main/push", "validate/checks"]  # the push looks at the remote every time


def test_an_edited_patch_file_is_rendered_and_applied_though_the_spec_is_unchanged(tmp_path: Path) -> None:
    spec = starter_project(tmp_path)
    text = spec.read_text()
    assert CP2 in text
    spec.write_text(text.replace(CP2, CP2[:-1] + ", patches: ['@patches/cp-2.yaml']}"))
    patch = tmp_path / "patches" / "cp-2.yaml"
    patch.parent.mkdir()
    patch.write_text('machine:\n  sysctls:\n    net.core.somaxconn: "1024"\n')
    _, first = _deploy(spec)
    assert 'net.core.somaxconn: "1024"' in _applied_config(tmp_path / ".tierzero", "10.10.0.12")

    patch.write_text('machine:\n  sysctls:\n    net.core.somaxconn: "65535"\n')  # the spec's text stays the same
    events, second = _deploy(spec)
    assert sorted(events.started()) == ["gitops/main/push", "platform/main/config/cp-2", "platform/main/talos", "platform/main/vm/cp-2",
                                        "setup/render", "validate/checks"]
    assert second["platform/main/talos"]["stale"] == ["cp-2"]
    assert second["platform/main/config/cp-2"]["applied"] is True and second["platform/main/config/cp-2"]["mode"] == "no_reboot"
    assert second["platform/main/talos"]["configs"]["cp-1"] == first["platform/main/talos"]["configs"]["cp-1"]
    assert 'net.core.somaxconn: "65535"' in _applied_config(tmp_path / ".tierzero", "10.10.0.12")
