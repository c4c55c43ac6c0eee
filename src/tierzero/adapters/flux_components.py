"""Flux's own manifests for the pinned version (`gotk-components.yaml`), from the first source
that has them, each copy checked against the recorded sha256 before it is used:

1. the workspace cache (`<workspace>/cache/flux/<version>/gotk-components.yaml`);
2. the spec's `gitops.flux.components_file`;
3. a `flux` CLI of exactly that version: `flux install --export` with the defaults renders
   the manifests embedded in the binary, offline (flux2 cmd/flux/install.go, version_utils.go
   `isEmbeddedVersion` @ v2.8.6);
4. with the spec's consent (`gitops.flux.download: true`) only: the flux CLI archive for this
   machine from the version's GitHub release, checked against the release's checksums file,
   then run as in 3. No release asset is gotk-components.yaml itself: `install.yaml` differs
   (six controllers, other args, no version label) and its digest is not recorded here.

A copy that passes is cached, so later runs need none of the sources. tierzero never ships
Flux's manifests: a package may not carry them (see `render.gitops.versions.FLUX_COMPONENTS`
for the recorded facts). The sandbox plays source 3 with its own stand-in CLI, trusted
through a digest only a sandbox `Connections` carries (`GitKnobs.extra_digests`); a real run
refuses extra digests outright.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tierzero.adapters.connections import Connections
from tierzero.errors import OperationError
from tierzero.render.gitops.versions import FLUX_CLI_RELEASE, FLUX_COMPONENTS

FILE_NAME = "gotk-components.yaml"
FetchBytes = Callable[[str], bytes]


@dataclass(frozen=True)
class Components:
    data: bytes
    sha256: str
    source: str  # where this copy came from, for the user
    vouched: str = ""  # what its digest matched: the recorded fact, or the sandbox's stand-in


def trusted_digests(version: str, connections: Connections) -> dict[str, str]:
    """sha256 -> what vouches for it. Only the recorded fact on a real target."""
    out = {}
    fact = FLUX_COMPONENTS.get(version)
    if fact is not None:
        out[fact.sha256] = f"recorded for Flux {version}"
    extra = connections.git.extra_digests.get(version)
    if extra:
        if connections.target == "real":
            raise OperationError("a real run was given an extra Flux components digest", hint="this is a tierzero bug: only the sandbox may add one")
        out[extra] = "the sandbox's stand-in flux CLI"
    if not out:
        raise OperationError(f"no gotk-components.yaml digest is recorded for Flux {version}",
                             hint=f"tierzero knows {', '.join(sorted(FLUX_COMPONENTS))}; pin one of them")
    return out


def _check(data: bytes, version: str, connections: Connections, where: str) -> Components:
    digest = hashlib.sha256(data).hexdigest()
    trusted = trusted_digests(version, connections)
    if digest not in trusted:
        fact = FLUX_COMPONENTS.get(version)
        want = f"{fact.sha256} ({fact.size:,} bytes)" if fact else ", ".join(trusted)
        raise _Mismatch(f"{where} has sha256 {digest} ({len(data):,} bytes); Flux {version}'s gotk-components.yaml has {want}")
    return Components(data, digest, where, trusted[digest])


class _Mismatch(Exception):
    pass


def cache_file(workspace_root: Path, version: str, connections: Connections) -> Path:
    base = connections.git.cache_dir or (workspace_root / "cache" / "flux")
    return base / version / FILE_NAME


def cached(workspace_root: Path, version: str, connections: Connections) -> Components | None:
    """The cached copy when it still checks out, else None."""
    path = cache_file(workspace_root, version, connections)
    try:
        return _check(path.read_bytes(), version, connections, f"the cache ({path})")
    except (FileNotFoundError, _Mismatch):
        return None


def _cli_output(cli: str, version: str) -> bytes:
    def run(*args: str) -> bytes:
        try:
            proc = subprocess.run([cli, *args], capture_output=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _Mismatch(f"{cli} {' '.join(args)} failed: {exc}") from None
        if proc.returncode != 0:
            raise _Mismatch(f"{cli} {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        return proc.stdout

    try:
        have = json.loads(run("version", "--client", "-o", "json")).get("flux")
    except ValueError:
        raise _Mismatch(f"{cli} version --client -o json did not print JSON") from None
    if have != version:
        raise _Mismatch(f"{cli} is flux {have}, not {version} (a different version would download other manifests)")
    return run("install", "--export")


def _download_cli(version: str, dest: Path, fetch: FetchBytes) -> Path:
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())
    bare = version.removeprefix("v")
    base = FLUX_CLI_RELEASE.format(version=version)
    archive = f"flux_{bare}_linux_{machine}.tar.gz"
    sums = fetch(base + f"flux_{bare}_checksums.txt").decode()
    want = next((line.split()[0] for line in sums.splitlines() if line.split()[-1:] == [archive]), None)
    if want is None:
        raise _Mismatch(f"the Flux {version} release lists no {archive}")
    blob = fetch(base + archive)
    if hashlib.sha256(blob).hexdigest() != want:
        raise _Mismatch(f"{archive} does not match the release's checksums file")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.extractfile("flux")
        if member is None:
            raise _Mismatch(f"{archive} holds no flux binary")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(member.read())
    dest.chmod(0o755)
    return dest


def obtain(workspace_root: Path, version: str, connections: Connections, *, components_file: Path | None = None,
           download: bool = False, fetch: FetchBytes | None = None) -> Components:
    """The checked manifests from the first source that has them (see the module docstring),
    cached for later runs. OperationError listing what each source said when none has them."""
    found = cached(workspace_root, version, connections)
    if found is not None:
        return found
    tried: list[str] = []
    candidates: list[tuple[str, Callable[[], bytes]]] = []
    if components_file is not None:
        candidates.append((f"gitops.flux.components_file ({components_file})", components_file.read_bytes))
    cli = str(connections.git.flux_cli) if connections.git.flux_cli else shutil.which("flux")
    if cli:
        candidates.append((f"`{cli} install --export`", lambda: _cli_output(cli, version)))
    else:
        tried.append("no `flux` CLI on PATH")
    if download:
        if fetch is None:
            from tierzero.adapters.http import fetcher_bytes

            fetch = fetcher_bytes(connections)
        dest = cache_file(workspace_root, version, connections).parent / "bin" / "flux"
        candidates.append((f"the flux CLI downloaded from {FLUX_CLI_RELEASE.format(version=version)}",
                           lambda: _cli_output(str(_download_cli(version, dest, fetch)), version)))
    else:
        tried.append("downloading is off (gitops.flux.download: false)")
    for where, read in candidates:
        try:
            found = _check(read(), version, connections, where)
        except (_Mismatch, OSError, OperationError) as exc:
            tried.append(str(exc.message if isinstance(exc, OperationError) else exc))
            continue
        from tierzero.workspace.layout import write_public

        write_public(cache_file(workspace_root, version, connections), found.data)
        return found
    raise OperationError(f"Flux {version}'s gotk-components.yaml is not available: " + "; ".join(tried),
                         hint=f"install the flux CLI {version} (fluxcd.io/flux/installation) and put it on PATH, or set "
                              "gitops.flux.components_file to the output of `flux install --export`, or allow gitops.flux.download")
