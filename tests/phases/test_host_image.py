"""Issue 14, item 1: the Proxmox VE hosts' Debian arm64 image (step cloud/host-image) against the OCI stand-in
(Limits API, Object Storage, image import) and the Debian cloud image site's stand-in, through the real engine."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from memory_secrets import MemorySecrets
from spec_builder import write_project

from tierzero.engine.runner import Runner, StepFailed
from tierzero.engine.state import StateStore
from tierzero.phases.host_image import STEP, host_image_steps
from tierzero.render.debian_image import debian_image, host_image_changes, parse_sha512sums
from tierzero.sandbox import debian_cloud, harness, oci
from tierzero.spec import load_spec
from tierzero.workspace.layout import Workspace


def _run(tmp_path: Path, changes: dict[str, Any] | None = None, *, account: str | None = None,
         prepare: Any = None) -> tuple[Any, Any, Any, Any]:
    """The host image step alone, in a sandbox with the OCI and Debian stand-ins. Returns (outcome, storage,
    site, workspace): outcome is the step's outputs or the StepFailed."""
    spec_file = write_project(tmp_path, "oci-free-tier", changes or {"metadata.name": "homelab"})
    spec = load_spec(spec_file).platform
    ws = Workspace.beside(spec_file)
    ws.root.mkdir(parents=True, exist_ok=True)
    box = harness.Sandbox(spec, ws, persist=False, **({"oci_account": account} if account else {}))
    conns = box.start(only=["oci", "debian-cloud-images"])
    storage, site = box.context[oci.SERVER].state.storage, box.context[debian_cloud.SERVER].site
    if prepare is not None:
        prepare(storage, site)
    state = StateStore.open(ws.state_dir, "sandbox")
    try:
        try:
            asyncio.run(Runner(host_image_steps(spec), spec=spec, workspace=ws, target="sandbox", connections=conns,
                               secrets=MemorySecrets(), state=state).run())
            outcome: Any = state.get(STEP).outputs
        except StepFailed as failed:
            outcome = failed
    finally:
        state.close()
        box.stop()
    return outcome, storage, site, ws


def test_the_debian_image_is_checked_uploaded_imported_for_a1_and_its_object_removed(tmp_path: Path) -> None:
    out, storage, site, ws = _run(tmp_path)
    assert out["imported"] is True and out["name"] == "tierzero-debian-13-genericcloud-arm64"
    image = storage.images[out["image_id"]]
    assert image["lifecycleState"] == "AVAILABLE" and image["launchMode"] == "PARAVIRTUALIZED"
    assert image["launchOptions"]["firmware"] == "UEFI_64"
    assert (image["operatingSystem"], image["operatingSystemVersion"]) == ("Debian", "13")
    assert storage.shapes[out["image_id"]] == ["VM.Standard.A1.Flex"]
    # the sha512 is the one the site lists for this very file, and the file was fetched once
    listed = parse_sha512sums(site.files["/trixie/latest/SHA512SUMS"].decode())
    assert out["sha512"] == listed["debian-13-genericcloud-arm64.qcow2"]
    assert site.gets.count("/trixie/latest/debian-13-genericcloud-arm64.qcow2") == 1
    assert "/trixie/latest/SHA512SUMS.sign" not in site.gets and "NOT checked" in out["signature"]
    # imported: the object left the bucket (it counts toward the free 20 GB) and the local copy is gone
    assert image["sourceObject"][1:] == ["tierzero-images", "tierzero-debian-13-genericcloud-arm64.qcow2"]
    assert "tierzero-images" in storage.buckets and not [k for k in storage.objects if k[0] == "tierzero-images"]
    assert not list((ws.root / "images").glob("*.qcow2*"))


def test_an_image_already_there_is_reused_without_fetching_anything(tmp_path: Path) -> None:
    first, storage, _, _ = _run(tmp_path / "a")
    saved = storage.snapshot()

    def seeded(s: Any, _site: Any) -> None:  # the same tenancy, a later deploy from a fresh workspace
        s.restore(saved)
        from tierzero.sandbox.oci_storage import StoredObject  # as a run killed after the import but before the clean-up left it

        s.objects[("tierzero-images", "tierzero-debian-13-genericcloud-arm64.qcow2")] = StoredObject(b"QFI\xfb", {}, "etag", ("content-md5", "x"))

    again, storage2, site2, _ = _run(tmp_path / "b", prepare=seeded)
    assert again == {"image_id": first["image_id"], "name": first["name"], "imported": False}
    assert site2.gets == [] and len(storage2.images) == 1 and not storage2.objects


@pytest.mark.parametrize("account,seed,why", [
    ("always-free", 0, "it is 0 on Always-Free-only accounts"),
    ("pay-as-you-go", 25, "used up"),
])
def test_no_room_for_a_custom_image_stops_before_any_download(tmp_path: Path, account: str, seed: int, why: str) -> None:
    def full(storage: Any, _site: Any) -> None:
        for i in range(seed):  # a tenancy already holding as many custom images as its limit allows
            storage.images[f"ocid1.image.oc1..other{i}"] = {"id": f"ocid1.image.oc1..other{i}", "lifecycleState": "AVAILABLE",
                                                          "displayName": f"someone-else-{i}"}

    failed, storage, site, _ = _run(tmp_path, account=account, prepare=full)
    assert isinstance(failed, StepFailed) and failed.step_id == STEP
    assert "compute/custom-image-count leaves room for 0" in failed.cause and why in failed.cause
    assert "nothing was uploaded" in failed.cause and "cloud.oci.host_image.image_ocid" in (failed.hint or "")
    assert site.gets == [] and not storage.buckets and storage.part_puts == 0 and len(storage.images) == seed


def test_a_download_that_does_not_match_its_sums_line_is_deleted_and_never_uploaded(tmp_path: Path) -> None:
    def tamper(_storage: Any, site: Any) -> None:
        site.tampered.add("debian-13-genericcloud-arm64.qcow2")

    failed, storage, _, ws = _run(tmp_path, prepare=tamper)
    assert isinstance(failed, StepFailed) and "does not match its SHA512SUMS line" in failed.cause
    assert not storage.objects and storage.part_puts == 0 and not storage.images
    assert not list((ws.root / "images").glob("*"))


def test_an_image_ocid_in_the_spec_is_used_as_it_is(tmp_path: Path) -> None:
    ocid = "ocid1.image.oc1.eu-frankfurt-1.mydebian"
    out, storage, site, _ = _run(tmp_path, {"cloud.oci.host_image": {"image_ocid": ocid}})
    assert out == {"image_id": ocid, "imported": False} and site.gets == [] and not storage.images
    spec = load_spec(write_project(tmp_path / "p", "oci-free-tier", {"cloud.oci.host_image": {"image_ocid": ocid}})).platform
    assert host_image_changes(spec) == [f"Proxmox VE hosts: boot your image {ocid} (nothing is downloaded, uploaded or imported)"]


def test_the_release_follows_the_port_version_and_the_urls_are_debians() -> None:
    image = debian_image("bookworm", "generic")
    assert image.image_url == "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-arm64.qcow2"
    assert image.sums_url == "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS"
    assert image.signature_url.endswith("/bookworm/latest/SHA512SUMS.sign")
    line = "a" * 128 + "  debian-12-generic-arm64.qcow2\n-----BEGIN PGP SIGNATURE-----\n\n" + "b" * 128 + " *x.raw\n"
    assert parse_sha512sums(line) == {"debian-12-generic-arm64.qcow2": "a" * 128, "x.raw": "b" * 128}
    with pytest.raises(ValueError, match="no Debian cloud image is known for suite 'sid'"):
        debian_image("sid")


needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None, reason="gpg and gpgv: .ci/run installs them")


def _signing_key(home: Path, name: str) -> tuple[Any, Path]:
    """A throwaway ed25519 key in its own GNUPGHOME: (detached signer, binary keyring with its public key)."""
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519", "sign", "never"], env=env, check=True, timeout=60)
    keyring = home / "keyring.gpg"
    keyring.write_bytes(subprocess.run([*gpg, "--export", name], env=env, check=True, capture_output=True, timeout=60).stdout)

    def sign(data: bytes) -> bytes:
        return subprocess.run([*gpg, "--detach-sign", "--output", "-"], input=data, env=env, check=True, capture_output=True,
                              timeout=60).stdout

    return sign, keyring


@needs_gpg
def test_a_keyring_checks_the_sums_signature_with_gpgv_before_the_download(tmp_path: Path) -> None:
    signer, keyring = _signing_key(tmp_path / "gpg-publisher", "publisher")
    other, _ = _signing_key(tmp_path / "gpg-other", "other")
    (tmp_path / "good").mkdir()
    shutil.copy(keyring, tmp_path / "good" / "debian-cloud.gpg")
    spec = {"cloud.oci.host_image": {"keyring": "debian-cloud.gpg"}}

    out, _, site, _ = _run(tmp_path / "good", spec, prepare=lambda _s, site: setattr(site, "signer", signer))
    assert out["imported"] is True and "signature good by a key in debian-cloud.gpg" in out["signature"]
    assert site.gets.index("/trixie/latest/SHA512SUMS.sign") < site.gets.index("/trixie/latest/debian-13-genericcloud-arm64.qcow2")

    (tmp_path / "forged").mkdir()
    shutil.copy(keyring, tmp_path / "forged" / "debian-cloud.gpg")
    failed, storage, site, _ = _run(tmp_path / "forged", spec, prepare=lambda _s, site: setattr(site, "signer", other))
    assert isinstance(failed, StepFailed) and "is not good by a key in" in failed.cause
    assert "/trixie/latest/debian-13-genericcloud-arm64.qcow2" not in site.gets and not storage.images

    (tmp_path / "unsigned").mkdir()
    shutil.copy(keyring, tmp_path / "unsigned" / "debian-cloud.gpg")
    failed, _, site, _ = _run(tmp_path / "unsigned", spec)  # the stock site serves no signature
    assert isinstance(failed, StepFailed) and "no signature to check SHA512SUMS against" in failed.cause
    assert "/trixie/latest/debian-13-genericcloud-arm64.qcow2" not in site.gets
