"""The minimal cloud phase against the OpenTofu twin: apply, publish endpoints, skip, destroy."""

from __future__ import annotations

from pathlib import Path

import pytest

from spec_builder import write_project

from tierzero.adapters.connections import Connections
from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.phases import cloud
from tierzero.spec import load_spec
from tierzero.workspace import Workspace
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.secrets import WorkspaceSecrets



async def test_cloud_phase_on_the_twin(tmp_path: Path) -> None:
    from tierzero.adapters.tofu import find_binary

    try:
        find_binary()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no OpenTofu/Terraform binary: {exc}")
    # the hosts' image named in the spec: cloud/host-image asks nothing of OCI (tests/phases/test_host_image.py imports one)
    write_project(tmp_path, "oci-free-tier", {"cloud.oci.host_image": {"image_ocid": "ocid1.image.oc1..debian"}})
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
    assert first.ran == ["cloud/host-image", "cloud/oci"] and set(out["instances"]) == {"a1-1", "a1-2", "bastion"}
    assert conns.endpoint("ssh", "pve1").host == out["instances"]["a1-1"]["public_ip"]
    # The QDevice witness is published too: a real run reaches it at the address the cloud reports,
    # as the platform image's user; the nodes reach its qnetd at its private address.
    witness = conns.endpoint("ssh", "bastion")
    bastion = out["instances"]["bastion"]
    assert (witness.host, witness.port) == (bastion["public_ip"], 22)
    assert witness.extra == {"user": "ubuntu", "address": bastion["private_ip"]}
    assert (await runner().run()).skipped == ["cloud/host-image", "cloud/oci"]
    assert await runner().destroy() == ["cloud/oci"] and state.records() == {}
