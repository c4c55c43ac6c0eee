"""The whole path through the sandbox harness: hypervisors, platform and gitops against the
sandbox's stand-ins (SSH hosts, fakepve, the Talos gRPC stand-in, the Kubernetes API), with
the real Talos renderer and GitOps tree; then again on the finished platform, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from spec_builder import write_project
from tierzero.adapters.retry import Policy
from tierzero.adapters.ssh import close_all
from tierzero.engine.runner import Runner
from tierzero.engine.state import StateStore
from tierzero.phases import gitops, hypervisors, platform
from tierzero.workspace import plan
from tierzero.sandbox import harness
from tierzero.sandbox import fakepve, pve_hosts
from tierzero.spec import load_spec
from tierzero.workspace.keys import init_workspace
from tierzero.workspace.layout import Workspace

from .conftest import MemorySecrets

@pytest.mark.slow
async def test_oci_blueprint_end_to_end(tmp_path: Path):
    # The witness by address (on the nodes' LAN, outside the service CIDR 10.96.0.0/12 the spec check refuses):
    # the cloud phase, which publishes a cloud witness's address, is not run here.
    spec_file = write_project(tmp_path, "oci-free-tier", {"hypervisors.proxmox.qdevice.host": "10.10.0.250"})
    ws = Workspace.beside(spec_file)
    init_workspace(ws)  # before loading: the spec's files (the SSH public key) are read with it
    loaded = load_spec(spec_file)
    spec = loaded.platform
    secrets = MemorySecrets()
    box = harness.Sandbox(spec, ws)
    conns = box.start(only=["kubernetes", "internet", "git-forge", "flux", "image-factory", "talos", "pve-hosts", "fakepve", "guests"])
    conns.retry.wait = Policy(base=0.05, cap=0.5, deadline=30)
    try:
        plan.write_plan(plan.render_plan(loaded, ws), ws.render_dir)
        steps = hypervisors.steps(spec) + platform.steps(spec) + gitops.steps(spec)
        state = StateStore.open(ws.state_dir, "sandbox")
        await Runner(steps, spec=spec, workspace=ws, target="sandbox", connections=conns, secrets=secrets, state=state).run()
        await close_all(conns)
        health = state.get("platform/main/health").outputs
        assert health["etcd_members"] == ["cp-1", "cp-2", "cp-3"]
        ready = state.get("gitops/main/ready").outputs
        assert ready["ready"] is True and ready["revision"] == state.get("gitops/main/push").outputs["revision"]
        assert ready["kustomizations"] == ["apps", "flux-system", "infra-configs", "infra-controllers", "oci-cloud-controller-manager"]
        fake = box.context[fakepve.SERVER]
        hosts = box.context[pve_hosts.HOSTS]
        assert fake.creates() == 3 and hosts.cluster.members == ["pve1", "pve2"] and hosts.cluster.qdevice

        # Re-run every step on the finished platform: nothing is created or joined again.
        state.close()
        for f in ws.state_dir.iterdir():
            f.unlink()
        state = StateStore.open(ws.state_dir, "sandbox")
        before = len(hosts.commands)
        await Runner(steps, spec=spec, workspace=ws, target="sandbox", connections=conns, secrets=secrets, state=state).run()
        await close_all(conns)
        assert fake.creates() == 3
        assert not [c for _, c in hosts.commands[before:] if c.startswith(("pvecm create", "pvecm add", "pvecm qdevice", "pveum user token add"))]
        assert state.get("platform/main/bootstrap").outputs["bootstrapped"] is False
        state.close()
    finally:
        box.stop()
