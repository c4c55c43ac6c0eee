"""An unchanged deploy fingerprints the platform steps from the render step's outputs: nothing
is rendered or decrypted for it (the machine configs' digests come from `setup/render`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from spec_builder import build_spec
from tierzero.adapters.connections import Connections
from tierzero.engine.step import StepContext
from tierzero.phases.platform import PlatformHooks, config_digests
from tierzero.engine.state import fingerprint
from tierzero.phases.setup import render_inputs, renderer_digest
from tierzero.workspace import Workspace


class NoSecrets:
    """A store that fails any read: fingerprinting must not need one."""

    def get(self, name: str) -> str | None:
        raise AssertionError(f"read secret {name}")

    def get_or_create(self, name, generate):  # noqa: ANN001
        raise AssertionError(f"read secret {name}")

    def put(self, name: str, value: str) -> None:
        raise AssertionError(f"wrote secret {name}")

    def resolve(self, ref: str) -> str:
        raise AssertionError(f"resolved {ref}")


def _ctx(tmp_path: Path, configs: dict, changes: dict | None = None) -> StepContext:
    """A context whose `setup/render` outputs say it rendered `configs` from the starter spec;
    the context's own spec is the starter with `changes`."""
    outputs: dict = {"setup/secrets-bundle": {"bundles": ["talos/main/secrets-bundle"]}}
    ctx = StepContext(spec=build_spec(), workspace=Workspace(tmp_path / ".tierzero"), target="sandbox",
                      connections=Connections(target="sandbox"), secrets=NoSecrets(), outputs=outputs)
    outputs["setup/render"] = {"configs": configs, "inputs": fingerprint(render_inputs(ctx))}
    if changes:
        ctx.spec = build_spec(changes=changes)
    return ctx


def test_digests_come_from_the_render_step(tmp_path):
    ctx = _ctx(tmp_path, {f"main/cp-{i}": f"sha-{i}" for i in (1, 2, 3)})
    cluster = ctx.spec.clusters[0]
    assert config_digests(ctx, PlatformHooks(), cluster) == {"cp-1": "sha-1", "cp-2": "sha-2", "cp-3": "sha-3"}


def test_a_render_of_another_spec_is_not_used(tmp_path):
    """`deploy --only platform` after the spec changed: setup/render's outputs describe the old
    spec, so the configs are rendered from the current one (which reads the bundle)."""
    ctx = _ctx(tmp_path, {f"main/cp-{i}": f"sha-{i}" for i in (1, 2, 3)}, {"clusters.0.kubernetes_version": "1.35.0"})
    with pytest.raises(AssertionError, match="read secret"):
        config_digests(ctx, PlatformHooks(), ctx.spec.clusters[0])


def test_without_them_or_with_another_renderer_each_config_is_rendered(tmp_path):
    rendered: list[str] = []

    def machine_config(ctx, cluster, node):  # noqa: ANN001
        rendered.append(node)
        return f"config of {node}".encode()

    hooks = PlatformHooks(machine_config=machine_config)
    ctx = _ctx(tmp_path, {"main/cp-1": "sha-1"})  # another renderer: its configs, not the plan's
    cluster = ctx.spec.clusters[0]
    assert config_digests(ctx, hooks, cluster)["cp-2"] == hashlib.sha256(b"config of cp-2").hexdigest()
    assert rendered == ["cp-1", "cp-2", "cp-3"]
    with pytest.raises(AssertionError, match="read secret"):  # the default renderer, a node missing: it renders (and reads the bundle)
        config_digests(_ctx(tmp_path, {"main/cp-1": "sha-1"}), PlatformHooks(), cluster)


def test_the_renderer_digest_changes_with_the_render_code(tmp_path, monkeypatch):
    """A tierzero whose renderer differs re-runs setup/render, so the digests it hands on are fresh."""
    import shutil

    import tierzero.render

    copy = tmp_path / "render"
    shutil.copytree(Path(tierzero.render.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(tierzero.render, "__file__", str(copy / "__init__.py"))
    before = renderer_digest()
    assert before == renderer_digest() and len(before) == 64
    (copy / "talos" / "yamlio.py").write_text((copy / "talos" / "yamlio.py").read_text() + "\n# changed\n")
    assert renderer_digest() != before


def test_every_hypervisor_and_platform_step_fingerprints_without_secrets_or_processes(tmp_path, monkeypatch):
    """A no-op re-run computes every step's inputs before it skips the step: the stock Proxmox
    steps (API token, capability preflight, storage content, schematic, image) and the VMs read
    neither a secret (no sops, no render) nor start a process."""
    import subprocess

    from tierzero.phases import hypervisors, platform

    def no_process(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError(f"started a process: {args[:1]}")

    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    ctx = _ctx(tmp_path, {f"main/cp-{i}": f"sha-{i}" for i in (1, 2, 3)})
    ctx.outputs["platform/main/schematic"] = {"id": "a" * 64}  # what the schematic and image steps gave
    for host in ("pve1", "pve2"):
        ctx.outputs[f"platform/main/image/{host}"] = {"volid": "local:import/talos.qcow2"}
    steps = hypervisors.steps(ctx.spec) + platform.steps(ctx.spec)
    fingerprinted = {step.id: fingerprint(step.inputs(ctx)) for step in steps if step.inputs is not None}
    stock = {"hypervisors/api-token", "hypervisors/capabilities", "hypervisors/storage-content",
             "platform/main/schematic", "platform/main/image/pve1", "platform/main/vm/cp-1", "platform/main/vm/cp-3"}
    assert stock <= set(fingerprinted), sorted(stock - set(fingerprinted))
