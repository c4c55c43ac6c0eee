"""The plan on disk (`.tierzero/render/` by default): render the spec (pure, `tierzero.render.plan`),
seal what must be encrypted with sops to the workspace's age recipient, and write it all at once.

Sealing keeps a file's previous ciphertext when its content did not change (decrypt, compare,
keep), so the same spec and workspace give a byte-identical plan."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tierzero.adapters.sops import AgeKey, encrypt, encrypt_stable
from tierzero.render.plan import Content, PlanContext, render_all
from tierzero.render.sealing import SECRET_REGEX, Sealed
from tierzero.workspace.secrets import WorkspaceSecrets

if TYPE_CHECKING:
    from tierzero.spec.loader import LoadedSpec
    from tierzero.workspace.layout import Workspace


def make_context(loaded: LoadedSpec, workspace: Workspace, *, facts: Mapping[str, str] | None = None) -> PlanContext:
    secrets = WorkspaceSecrets(workspace, loaded.base_dir)
    return PlanContext(loaded, secrets, secrets.recipient(), dict(facts or {}))


def render_plan(loaded: LoadedSpec, workspace: Workspace, *, previous: Path | None = None,
                context: PlanContext | None = None) -> dict[str, bytes]:
    """Every plan file, sealed, as {path relative to the plan directory: bytes}. Unchanged sealed
    files keep their ciphertext from `previous` (default: the workspace's render directory)."""
    ctx = context or make_context(loaded, workspace)
    prev = previous if previous is not None else workspace.render_dir
    key = WorkspaceSecrets(workspace, loaded.base_dir).age_key() if workspace.age_key.exists() else None
    files, reused = seal(render_all(ctx), ctx.recipient, key, prev if prev.is_dir() else None)
    for path in reused:
        parts = path.split("/")
        if parts[0] == "gitops" and len(parts) > 2:
            ctx.summary(parts[1]).reused += 1
    return files


def seal(rendered: Mapping[str, Content], recipient: str, key: AgeKey | None, previous_dir: Path | None) -> tuple[dict[str, bytes], set[str]]:
    """The rendered plan with every `Sealed` file encrypted (in parallel: each is a sops run), and
    the paths whose previous ciphertext was kept."""

    def one(item: tuple[str, Sealed]) -> tuple[str, bytes, bool]:
        path, sealed = item
        candidate = previous_dir / path if previous_dir is not None else None
        old = candidate.read_bytes() if candidate is not None and candidate.is_file() else None
        fmt: Literal["binary", "yaml"] = "binary" if sealed.whole else "yaml"
        regex = None if sealed.whole else SECRET_REGEX
        if old is None or key is None:
            return path, encrypt(sealed.plaintext, recipient, fmt=fmt, encrypted_regex=regex), False
        out = encrypt_stable(sealed.plaintext, recipient, key, old, fmt=fmt, encrypted_regex=regex)
        return path, out, out is old

    to_seal = [(p, c) for p, c in rendered.items() if isinstance(c, Sealed)]
    files = {p: c for p, c in rendered.items() if isinstance(c, bytes)}
    reused: set[str] = set()
    if to_seal:
        with ThreadPoolExecutor(max_workers=min(8, len(to_seal))) as pool:
            for path, data, kept in pool.map(one, to_seal):
                files[path] = data
                if kept:
                    reused.add(path)
    return dict(sorted(files.items())), reused


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
