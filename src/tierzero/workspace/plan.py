"""The plan on disk (`.tierzero/render/` by default): render the spec (pure, `tierzero.render.plan`),
seal what must be encrypted with sops to the workspace's age recipient as soon as each file is
rendered, and write it all at once.

Sealing keeps a file's previous ciphertext when its content did not change, told by a keyed
digest kept beside it (`tierzero.workspace.sealing`), so the same spec and workspace give a
byte-identical plan and a re-plan runs no sops at all."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tierzero.adapters.sops import AgeKey
from tierzero.render.plan import Content, PlanContext, iter_rendered
from tierzero.render.sealing import Sealed
from tierzero.workspace.sealing import INDEX, Sealer
from tierzero.workspace.secrets import WorkspaceSecrets

if TYPE_CHECKING:
    from tierzero.spec.loader import LoadedSpec
    from tierzero.workspace.layout import Workspace


def make_context(loaded: LoadedSpec, workspace: Workspace, *, facts: Mapping[str, str] | None = None) -> PlanContext:
    secrets = WorkspaceSecrets(workspace, loaded.base_dir)
    return PlanContext(loaded, secrets, secrets.recipient(), dict(facts or {}))


@dataclass
class SealedPlan:
    """A rendered, sealed plan: `files` by path relative to the plan directory (the index
    `sealed.json` among them), the sealed paths whose previous ciphertext was kept, the SHA-256 of
    each whole-sealed file's plaintext (machine configs: what the platform phase fingerprints), and
    how many sops runs sealing took."""

    files: dict[str, bytes]
    reused: set[str] = field(default_factory=set)
    plaintext_sha256: dict[str, str] = field(default_factory=dict)
    sops_runs: int = 0


def render_sealed_plan(loaded: LoadedSpec, workspace: Workspace, *, previous: Path | None = None,
                       context: PlanContext | None = None) -> SealedPlan:
    """Render and seal every plan file. Unchanged sealed files keep their ciphertext from
    `previous` (default: the workspace's render directory)."""
    ctx = context or make_context(loaded, workspace)
    prev = previous if previous is not None else workspace.render_dir
    key = WorkspaceSecrets(workspace, loaded.base_dir).age_key() if workspace.age_key.exists() else None
    plan = seal_stream(iter_rendered(ctx), ctx.recipient, key, prev if prev.is_dir() else None, index=True)
    for path in plan.reused:
        parts = path.split("/")
        if parts[0] == "gitops" and len(parts) > 2:
            ctx.summary(parts[1]).reused += 1
    return plan


def render_plan(loaded: LoadedSpec, workspace: Workspace, *, previous: Path | None = None,
                context: PlanContext | None = None) -> dict[str, bytes]:
    """Every plan file, sealed, as {path relative to the plan directory: bytes}."""
    return render_sealed_plan(loaded, workspace, previous=previous, context=context).files


def seal_stream(rendered: Iterable[tuple[str, Content]], recipient: str, key: AgeKey | None, previous_dir: Path | None,
                *, index: bool = False) -> SealedPlan:
    """Seal files as the iterable yields them: each `Sealed` one is encrypted in the background
    while the next renders (or kept, when the digest index of `previous_dir` says it did not
    change). With `index`, the new index is one of the files."""
    files: dict[str, bytes] = {}
    digests: dict[str, str] = {}
    with Sealer(recipient, key, previous_dir) as sealer:
        for path, content in rendered:
            if isinstance(content, Sealed):
                sealer.add(path, content)
                if content.whole:
                    digests[path] = hashlib.sha256(content.plaintext).hexdigest()
            else:
                files[path] = content
        files.update(sealer.finish())
        if index and (data := sealer.index()) is not None:
            files[INDEX] = data
    return SealedPlan(dict(sorted(files.items())), set(sealer.reused), digests, sealer.sops_runs)


def seal(rendered: Mapping[str, Content], recipient: str, key: AgeKey | None, previous_dir: Path | None) -> tuple[dict[str, bytes], set[str]]:
    """The rendered files with every `Sealed` one encrypted, and the paths whose previous
    ciphertext was kept (a previous directory without an index is decrypted and compared)."""
    plan = seal_stream(rendered.items(), recipient, key, previous_dir)
    return plan.files, plan.reused


def write_plan(files: Mapping[str, bytes], out: Path) -> None:
    """Write the plan to `out` all at once: render into a sibling temp dir, then swap it in,
    so a failure never leaves a half-written plan."""
    out = out.resolve()
    if _holds_exactly(out, files):  # a re-plan that changes nothing writes nothing (and deletes nothing)
        return
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


def _holds_exactly(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Whether `directory` holds these files with these bytes and no other file (a symlink,
    even to the same bytes, is not one of them: the swap would put a file in its place)."""
    if not directory.is_dir():
        return False
    entries = list(directory.rglob("*"))
    if any(p.is_symlink() for p in entries):
        return False
    present = {str(p.relative_to(directory)) for p in entries if p.is_file()}
    if present != set(files):
        return False
    try:
        return all((directory / rel).read_bytes() == data for rel, data in files.items())
    except OSError:
        return False
