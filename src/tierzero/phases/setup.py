"""Setup: the workspace keys exist, each cluster's Talos secrets bundle exists (generated
once, kept in the SecretStore as `talos/<cluster>/secrets.yaml`, the one the renderer reads,
never regenerated), and the spec is rendered into `.tierzero/render/` (when the renderer is
present)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierzero.engine.state import fingerprint
from tierzero.engine.step import Step, StepContext

if TYPE_CHECKING:
    from tierzero.spec.models import Platform


def bundle_secret_name(cluster: str) -> str:
    return f"talos/{cluster}/secrets.yaml"  # tierzero.render.talos_spec.secrets_bundle reads this one


def _unused_bundle_name(cluster: str) -> str:
    """Earlier versions also wrote a second, unrelated bundle here that nothing ever read."""
    return f"talos/{cluster}/secrets-bundle"


@dataclass(frozen=True)
class KeysInputs:
    workspace: str


@dataclass(frozen=True)
class BundlesInputs:
    clusters: tuple[str, ...]
    bundle: str = "secrets.yaml"  # the renderer's bundle (earlier versions made another): a changed input re-runs the step once


@dataclass(frozen=True)
class RenderInputs:
    spec: Platform
    bundles: tuple[str, ...]
    renderer: str  # the render code's digest: a tierzero that renders differently renders again
    # (name as the spec writes it, sha256) of each file the spec names (`@file` patches, the SSH
    # public key): an edited file renders again although the spec text is the same.
    files: tuple[tuple[str, str], ...] = ()


def spec_files(ctx: StepContext) -> dict[str, bytes]:
    """The files the spec names, read now from beside it (see `tierzero.spec.loader.read_referenced`)."""
    from tierzero.spec.loader import read_referenced

    return read_referenced(ctx.spec, ctx.workspace.root.parent)


def _file_digests(files: Mapping[str, bytes]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, hashlib.sha256(data).hexdigest()) for name, data in files.items()))


def renderer_digest() -> str:
    """SHA-256 over the files of `tierzero.render` (code and data): what the plan is a function
    of besides the spec and the stored secrets. Later phases fingerprint the render step's
    outputs instead of rendering again, so this step must re-run when the renderer changed."""
    from pathlib import Path

    import tierzero.render

    root = Path(tierzero.render.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".yml", ".json", ".txt", ".tf")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


async def _keys(ctx: StepContext, inputs: KeysInputs) -> Mapping[str, Any]:
    from tierzero.workspace.keys import init_workspace

    keys = init_workspace(ctx.workspace)
    return {"age_recipient": keys["age_recipient"], "ssh_public_key": keys["ssh_public_key"]}


async def _bundles(ctx: StepContext, inputs: BundlesInputs) -> Mapping[str, Any]:
    from tierzero.render.talos_spec import secrets_bundle

    names = []
    path_of = getattr(ctx.secrets, "path_of", None)  # a workspace store: files to tidy
    for cluster in ctx.spec.clusters:
        if cluster.name not in inputs.clusters:
            continue
        secrets_bundle(ctx.secrets, cluster)  # made once; an existing one is kept, so the cluster keeps its identity
        names.append(bundle_secret_name(cluster.name))
        if path_of is not None:
            unused = path_of(_unused_bundle_name(cluster.name))
            if unused.exists():
                unused.unlink()
                ctx.log(f"removed {unused.name}: a second Talos bundle of {cluster.name} that nothing read")
    return {"bundles": names}


def _spec_path(ctx: StepContext) -> Any:
    return ctx.workspace.root.parent / "tierzero.yaml"


async def _render(ctx: StepContext, inputs: RenderInputs) -> Mapping[str, Any]:
    from tierzero.spec import LoadedSpec
    from tierzero.workspace.plan import render_sealed_plan, write_plan

    files = spec_files(ctx)
    # What is rendered is what was read now: its fingerprint is what `rendered_configs` compares.
    inputs = RenderInputs(inputs.spec, inputs.bundles, inputs.renderer, _file_digests(files))
    loaded = LoadedSpec(inputs.spec, _spec_path(ctx), files=files)
    plan = render_sealed_plan(loaded, ctx.workspace)
    write_plan(plan.files, ctx.workspace.render_dir)
    digest = hashlib.sha256()
    for path, data in plan.files.items():
        digest.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    # SHA-256 of each machine config's plaintext, by "cluster/node": the platform phase
    # fingerprints these instead of rendering and decrypting again (the values it stored before).
    configs = {path.removeprefix("talos/").removesuffix(".sops.yaml"): sha for path, sha in plan.plaintext_sha256.items()
               if path.startswith("talos/") and path.endswith(".sops.yaml")}
    return {"files": len(plan.files), "digest": digest.hexdigest(), "dir": str(ctx.workspace.render_dir), "configs": configs,
            "inputs": fingerprint(inputs)}


def render_inputs(ctx: StepContext) -> RenderInputs:
    return RenderInputs(ctx.spec, tuple(ctx.output("setup/secrets-bundle").get("bundles", [])), _renderer(), _file_digests(spec_files(ctx)))


def rendered_configs(ctx: StepContext) -> Mapping[str, str] | None:
    """SHA-256 of each machine config's plaintext by "cluster/node", as `setup/render` rendered
    them, when it rendered what this run would (same spec, bundles and render code: say a later
    phase runs alone with `--only` after the spec changed, it did not); else None."""
    out = ctx.outputs.get("setup/render") or {}
    configs = out.get("configs")
    if not isinstance(configs, Mapping) or "setup/secrets-bundle" not in ctx.outputs:
        return None
    return configs if out.get("inputs") == fingerprint(render_inputs(ctx)) else None


_RENDERER: list[str] = []


def _renderer() -> str:
    if not _RENDERER:
        _RENDERER.append(renderer_digest())
    return _RENDERER[0]


def steps(spec: Platform) -> list[Step]:
    return [
        Step("setup/workspace-keys", "setup", "workspace age key and SSH key pair", _keys,
             inputs=lambda ctx: KeysInputs(str(ctx.workspace.root))),
        Step("setup/secrets-bundle", "setup", "Talos secrets bundle of every cluster", _bundles,
             inputs=lambda ctx: BundlesInputs(tuple(c.name for c in ctx.spec.clusters)), needs=("setup/workspace-keys",)),
        Step("setup/render", "setup", "render Talos configs, the GitOps tree and OpenTofu variables", _render,
             inputs=render_inputs,
             needs=("setup/secrets-bundle",)),
    ]
