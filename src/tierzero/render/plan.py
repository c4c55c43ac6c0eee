"""`tierzero plan`: everything rendered from spec + workspace, as {relative path: bytes}.

The plan is composed of parts, each a pure function of the plan context; the GitOps trees
come first. Other parts (Talos configs, OpenTofu variables) register through `PARTS`.
Same spec + same workspace -> byte-identical files: no timestamps, sorted output, and
encrypted Secrets kept from the previous plan when their content did not change.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierzero.spec.loader import LoadedSpec
    from tierzero.workspace import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets


@dataclass
class ClusterSummary:
    cluster: str
    engine: str | None = None
    files: int = 0
    secrets: int = 0
    reused: int = 0
    addons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PlanContext:
    loaded: "LoadedSpec"
    workspace: "Workspace"
    secrets: "WorkspaceSecrets"
    previous: Path | None  # the previous plan's directory, for reusing unchanged ciphertext
    facts: Mapping[str, str] = field(default_factory=dict)
    clusters: dict[str, ClusterSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self, cluster: str) -> ClusterSummary:
        return self.clusters.setdefault(cluster, ClusterSummary(cluster))


Part = Callable[[PlanContext], dict[str, bytes]]


def gitops_part(ctx: PlanContext) -> dict[str, bytes]:
    from tierzero.render.gitops import render_gitops_tree

    out: dict[str, bytes] = {}
    recipient = ctx.secrets.recipient()
    for cluster in ctx.loaded.platform.clusters:
        summary = ctx.summary(cluster.name)
        if cluster.gitops is None:
            summary.notes.append("no gitops block: no GitOps tree rendered")
            continue
        prefix = f"gitops/{cluster.name}"
        previous = ctx.previous / prefix if ctx.previous else None
        result = render_gitops_tree(ctx.loaded.platform, cluster, ctx.secrets, recipient, previous, ctx.facts)
        out.update({f"{prefix}/{path}": data for path, data in result.files.items()})
        summary.engine = result.engine
        summary.files += len(result.files)
        summary.secrets += result.secrets
        summary.reused += result.reused
        summary.addons = result.addons
        summary.notes.extend(result.notes)
    return out


def talos_part(ctx: PlanContext) -> dict[str, bytes]:
    """Plan part: every node's machine config, SOPS-encrypted whole (they carry the cluster PKI)."""
    from concurrent.futures import ThreadPoolExecutor

    from tierzero.adapters.sops import encrypt_stable
    from tierzero.render.talos_spec import image_urls, machine_config, talosconfig

    platform = ctx.loaded.platform
    recipient = ctx.secrets.recipient()
    key = ctx.secrets.age_key()
    jobs: list[tuple[str, str]] = []
    for cluster in platform.clusters:
        talosconfig(cluster, ctx.secrets)
        for _, node in cluster.nodes():
            text = machine_config(platform, cluster, node.name, ctx.secrets, ctx.loaded.base_dir)
            jobs.append((f"talos/{cluster.name}/{node.name}.sops.yaml", text))
        ctx.summary(cluster.name).notes.append(f"{len(cluster.control_planes) + len(cluster.workers)} Talos machine configs (installer {image_urls(cluster)['installer']})")

    def encrypt(job: tuple[str, str]) -> tuple[str, bytes]:
        rel, text = job
        prev_path = ctx.previous / rel if ctx.previous else None
        previous = prev_path.read_bytes() if prev_path and prev_path.is_file() else None
        return rel, encrypt_stable(text.encode(), recipient, key, previous, fmt="binary")

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(encrypt, jobs))


def cloud_part(ctx: PlanContext) -> dict[str, bytes]:
    """`cloud/tierzero.auto.tfvars.json`: the OpenTofu layer's variables (Python never writes HCL)."""
    from tierzero.adapters.tofu_workspace import json_text
    from tierzero.render.tofu_vars import TFVARS_FILE, tfvars_for

    platform = ctx.loaded.platform
    if platform.oci is None:
        return {}
    data = tfvars_for(platform, base_dir=ctx.loaded.base_dir)
    return {f"cloud/{TFVARS_FILE}": json_text(data).encode()}


# (name, renderer) in output order.
PARTS: list[tuple[str, Part]] = [("gitops", gitops_part), ("talos", talos_part), ("cloud", cloud_part)]


def register_part(name: str, part: Part) -> None:
    """Add or replace a plan part (by name), keeping the order of first registration."""
    for i, (existing, _) in enumerate(PARTS):
        if existing == name:
            PARTS[i] = (name, part)
            return
    PARTS.append((name, part))


def make_context(loaded: "LoadedSpec", workspace: "Workspace", *, previous: Path | None = None, facts: Mapping[str, str] | None = None) -> PlanContext:
    from tierzero.workspace.secrets import WorkspaceSecrets

    secrets = WorkspaceSecrets(workspace, loaded.base_dir)
    prev = previous if previous is not None else workspace.render_dir
    return PlanContext(loaded, workspace, secrets, prev if prev.is_dir() else None, dict(facts or {}))


def render_all(loaded: "LoadedSpec", workspace: "Workspace", *, previous: Path | None = None, context: PlanContext | None = None) -> dict[str, bytes]:
    """Every plan file as {path relative to the plan directory: bytes}, sorted by path."""
    ctx = context or make_context(loaded, workspace, previous=previous)
    files: dict[str, bytes] = {}
    for name, part in PARTS:
        for path, data in part(ctx).items():
            if path in files:
                raise ValueError(f"plan part {name!r} renders {path}, which an earlier part already rendered")
            files[path] = data
    return dict(sorted(files.items()))


def write_plan(files: Mapping[str, bytes], out: Path) -> None:
    """Write the plan to `out` all at once: render into a sibling temp dir, then swap it in,
    so a failure never leaves a half-written plan."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.new-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel, data in files.items():
            path = tmp / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"plan path escapes the plan directory: {rel}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        tmp.mkdir(parents=True, exist_ok=True)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
