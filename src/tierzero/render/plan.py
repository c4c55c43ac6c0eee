"""`tierzero plan`: everything rendered from spec + stored secrets, as {relative path: content}.

The plan is composed of parts, each a pure function of the plan context; the GitOps trees
come first. A part returns bytes, or `Sealed` plaintext for a file that must be SOPS-encrypted
(Kubernetes Secrets, machine configs): nothing here runs a program or writes a file;
`tierzero.workspace.plan` seals and writes. Same spec + same secrets -> the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tierzero.render.sealing import Sealed

if TYPE_CHECKING:
    from tierzero.engine.step import SecretStore
    from tierzero.spec.loader import LoadedSpec

Content = bytes | Sealed


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
    loaded: LoadedSpec
    secrets: SecretStore
    recipient: str  # the workspace's age recipient (`.sops.yaml` names it)
    facts: Mapping[str, str] = field(default_factory=dict)
    clusters: dict[str, ClusterSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self, cluster: str) -> ClusterSummary:
        return self.clusters.setdefault(cluster, ClusterSummary(cluster))


Part = Callable[[PlanContext], Iterable[tuple[str, Content]]]  # (path, content), as each file is rendered


def gitops_part(ctx: PlanContext) -> Iterable[tuple[str, Content]]:
    from tierzero.render.gitops import render_gitops_tree

    out: dict[str, Content] = {}
    for cluster in ctx.loaded.platform.clusters:
        summary = ctx.summary(cluster.name)
        if cluster.gitops is None:
            summary.notes.append("no gitops block: no GitOps tree rendered")
            continue
        prefix = f"gitops/{cluster.name}"
        result = render_gitops_tree(ctx.loaded.platform, cluster, ctx.secrets, ctx.recipient, ctx.facts)
        out.update({f"{prefix}/{path}": data for path, data in result.files.items()})
        out.update({f"{prefix}/{path}": sealed for path, sealed in result.secrets.items()})
        summary.engine = result.engine
        summary.files += len(result.files) + len(result.secrets)
        summary.secrets += len(result.secrets)
        summary.addons = result.addons
        summary.notes.extend(result.notes)
    return out.items()


def talos_part(ctx: PlanContext) -> Iterator[tuple[str, Content]]:
    """Every node's machine config, sealed whole (they carry the cluster PKI), one at a time: the
    caller may encrypt each while the next renders."""
    from tierzero.render.talos_spec import cluster_configs, ensure_talosconfig, image_urls

    platform = ctx.loaded.platform
    for cluster in platform.clusters:
        ensure_talosconfig(cluster, ctx.secrets)
        for node_name, text in cluster_configs(platform, cluster, ctx.secrets, ctx.loaded.files):
            yield f"talos/{cluster.name}/{node_name}.sops.yaml", Sealed(text.encode(), whole=True)
        ctx.summary(cluster.name).notes.append(f"{len(cluster.control_planes) + len(cluster.workers)} Talos machine configs (installer {image_urls(cluster)['installer']})")


def cloud_part(ctx: PlanContext) -> Iterable[tuple[str, Content]]:
    """`cloud/tierzero.auto.tfvars.json`: the OpenTofu layer's variables (Python never writes HCL)."""
    from tierzero.render.tofu_vars import TFVARS_FILE, json_text, tfvars_for

    platform = ctx.loaded.platform
    if platform.oci is None:
        return ()
    data = tfvars_for(platform, files=ctx.loaded.files)
    return [(f"cloud/{TFVARS_FILE}", json_text(data).encode())]


# (name, renderer) in output order.
PARTS: list[tuple[str, Part]] = [("gitops", gitops_part), ("talos", talos_part), ("cloud", cloud_part)]


def iter_rendered(ctx: PlanContext) -> Iterator[tuple[str, Content]]:
    """Every plan file as (path relative to the plan directory, bytes or Sealed), in the order the
    parts render them (each as soon as it is rendered)."""
    seen: set[str] = set()
    for name, part in PARTS:
        for path, data in part(ctx):
            if path in seen:
                raise ValueError(f"plan part {name!r} renders {path}, which an earlier part already rendered")
            seen.add(path)
            yield path, data
