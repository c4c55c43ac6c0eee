"""The minimal cloud phase against the OpenTofu twin: apply, publish endpoints, skip, destroy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tierzero.adapters.connections import Connections
from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.phases import cloud
from tierzero.spec import load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets

BLUEPRINT = Path(__file__).resolve().parents[2] / "src" / "tierzero" / "spec" / "blueprints" / "oci-free-tier.yaml"


async def test_cloud_phase_on_the_twin(tmp_path: Path) -> None:
    from tierzero.adapters.tofu import find_binary

    try:
        find_binary()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no OpenTofu/Terraform binary: {exc}")
    shutil.copy(BLUEPRINT, tmp_path / "tierzero.yaml")
    loaded = load_spec(tmp_path / "tierzero.yaml")
    ws = Workspace.beside(tmp_path / "tierzero.yaml")
    init_workspace(ws)
    conns = Connections(target="real")  # real wiring (endpoints published), twin layer
    conns.cloud.layer = "oci_twin"
    state = StateStore.open(ws.state_dir, "real")

    def runner() -> Runner:
        return Runner(cloud.steps(loaded.platform), spec=loaded.platform, workspace=ws, target="real", connections=conns,
                      secrets=WorkspaceSecrets(ws, tmp_path), state=state)

    first = await runner().run()
    out = state.get("cloud/oci").outputs
    assert first.ran == ["cloud/oci"] and set(out["instances"]) == {"a1-1", "a1-2", "bastion"}
    assert conns.endpoint("ssh", "pve1").host == out["instances"]["a1-1"]["public_ip"]
    # The QDevice witness is published too: a real run reaches it at the address the cloud reports,
    # as the platform image's user; the nodes reach its qnetd at its private address.
    witness = conns.endpoint("ssh", "bastion")
    bastion = out["instances"]["bastion"]
    assert (witness.host, witness.port) == (bastion["public_ip"], 22)
    assert witness.extra == {"user": "ubuntu", "address": bastion["private_ip"]}
    assert (await runner().run()).skipped == ["cloud/oci"]
    assert await runner().destroy() == ["cloud/oci"] and state.records() == {}
