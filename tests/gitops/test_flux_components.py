"""Where Flux's own manifests come from (`adapters.flux_components`): the cache, the spec's file,
a flux CLI of the pinned version, a consented download of that CLI; each copy checked against
the recorded digest, the sandbox's stand-in digest refused on the real target."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from tierzero.adapters import flux_components as fc
from tierzero.adapters.connections import Connections
from tierzero.errors import OperationError
from tierzero.render.gitops.versions import FLUX_COMPONENTS, FLUX_VERSION
from tierzero.sandbox.flux.cli import SANDBOX_DIGEST, manifest, write_program


def sandboxed(tmp_path: Path, cli: Path | None = None) -> Connections:
    conns = Connections(target="sandbox")
    conns.git.extra_digests[FLUX_VERSION] = SANDBOX_DIGEST
    conns.git.cache_dir = tmp_path / "cache"
    conns.git.flux_cli = cli or tmp_path / "no-such-flux"
    return conns


def test_the_recorded_fact_is_dated_and_sourced() -> None:
    fact = FLUX_COMPONENTS[FLUX_VERSION]
    assert fact.size == 282_465 and fact.sha256.startswith("4cef93f6") and fact.sha256.endswith("71ad53") and len(fact.sha256) == 64
    assert fact.components == ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")
    assert "2026-12-01" in fact.checked and "re-check" in fact.checked


def test_a_cli_of_the_pinned_version_is_run_checked_and_cached(tmp_path: Path) -> None:
    conns = sandboxed(tmp_path, write_program(tmp_path / "bin"))
    got = fc.obtain(tmp_path / "ws", FLUX_VERSION, conns)
    assert got.data == manifest() and got.sha256 == SANDBOX_DIGEST and "install --export" in got.source
    (tmp_path / "bin" / "flux").unlink()  # the next run needs no source at all
    again = fc.obtain(tmp_path / "ws", FLUX_VERSION, conns)
    assert again.data == got.data and again.source.startswith("the cache")


def test_a_copy_that_does_not_check_out_is_refused_naming_both_digests(tmp_path: Path) -> None:
    bad = tmp_path / "gotk-components.yaml"
    bad.write_bytes(manifest() + b"# edited\n")
    with pytest.raises(OperationError) as err:
        fc.obtain(tmp_path / "ws", FLUX_VERSION, sandboxed(tmp_path), components_file=bad)
    message = err.value.message
    assert f"has sha256 {hashlib.sha256(bad.read_bytes()).hexdigest()}" in message
    assert f"{FLUX_COMPONENTS[FLUX_VERSION].sha256} (282,465 bytes)" in message
    assert "downloading is off" in message and "flux install --export" in (err.value.hint or "")
    assert not fc.cache_file(tmp_path / "ws", FLUX_VERSION, sandboxed(tmp_path)).exists()


def test_the_sandbox_digest_is_refused_on_the_real_target(tmp_path: Path) -> None:
    real = Connections(target="real")
    file = tmp_path / "gotk-components.yaml"
    file.write_bytes(manifest())
    with pytest.raises(OperationError, match="sha256"):
        fc.obtain(tmp_path / "ws", FLUX_VERSION, real, components_file=file)  # only the recorded digest counts
    real.git.extra_digests[FLUX_VERSION] = SANDBOX_DIGEST
    with pytest.raises(OperationError, match="a real run was given an extra Flux components digest") as err:
        fc.trusted_digests(FLUX_VERSION, real)
    assert "only the sandbox may add one" in (err.value.hint or "")


def test_a_cli_of_another_version_is_not_used(tmp_path: Path) -> None:
    other = tmp_path / "flux"
    other.write_text("#!/bin/sh\necho '{\"flux\": \"v2.9.4\"}'\n")
    other.chmod(0o755)
    with pytest.raises(OperationError, match=r"is flux v2\.9\.4, not v2\.8\.6"):
        fc.obtain(tmp_path / "ws", FLUX_VERSION, sandboxed(tmp_path, other))


def test_a_download_happens_only_with_consent_and_is_checked_twice(tmp_path: Path) -> None:
    program = write_program(tmp_path / "payload").read_bytes()
    blob = io.BytesIO()
    with tarfile.open(fileobj=blob, mode="w:gz") as tar:
        info = tarfile.TarInfo("flux")
        info.size, info.mode = len(program), 0o755
        tar.addfile(info, io.BytesIO(program))
    archive = blob.getvalue()
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    name = f"flux_{FLUX_VERSION[1:]}_linux_{arch}.tar.gz"
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        if url.endswith("_checksums.txt"):
            return f"{hashlib.sha256(archive).hexdigest()}  {name}\n".encode()
        return archive

    conns = sandboxed(tmp_path)
    with pytest.raises(OperationError, match="downloading is off"):
        fc.obtain(tmp_path / "ws", FLUX_VERSION, conns, fetch=fetch)
    assert asked == []
    got = fc.obtain(tmp_path / "ws", FLUX_VERSION, conns, download=True, fetch=fetch)
    assert got.sha256 == SANDBOX_DIGEST and "downloaded from https://github.com/fluxcd/flux2/releases/download/" in got.source
    assert asked == [f"https://github.com/fluxcd/flux2/releases/download/{FLUX_VERSION}/flux_{FLUX_VERSION[1:]}_checksums.txt",
                     f"https://github.com/fluxcd/flux2/releases/download/{FLUX_VERSION}/{name}"]
    tampered = sandboxed(tmp_path / "t")

    def lying(url: str) -> bytes:
        return f"{'0' * 64}  {name}\n".encode() if url.endswith(".txt") else archive

    with pytest.raises(OperationError, match="does not match the release's checksums file"):
        fc.obtain(tmp_path / "ws2", FLUX_VERSION, tampered, download=True, fetch=lying)


def test_the_sandbox_flux_program_is_written_once_and_rewritten_when_it_is_not_whole(tmp_path: Path) -> None:
    """A sandbox start keeps the stand-in CLI its last start wrote (same stamp); one cut short,
    with another stamp or not executable is written again, and still answers with the manifest."""
    import subprocess

    program = write_program(tmp_path / "bin")
    first = program.stat()
    assert write_program(tmp_path / "bin").stat().st_ino == first.st_ino  # kept, not rewritten
    whole = program.read_bytes()
    for broken in (whole[: len(whole) // 2], whole.replace(b"# stamp: ", b"# stamp: x", 1)):
        program.write_bytes(broken)
        assert write_program(tmp_path / "bin").read_bytes() == whole
    program.chmod(0o644)
    assert write_program(tmp_path / "bin").read_bytes() == whole and program.stat().st_mode & 0o111
    assert subprocess.run([str(program), "install", "--export"], capture_output=True, check=True).stdout == manifest()
