"""Issue 15 in the sandbox: the oci-talos blueprint's image pipeline and instances, against the OCI stand-in
(Object Storage, image import work requests, Limits API, LaunchInstance booting Talos machines from user_data)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from spec_builder import write_project

from tierzero.cli.session import Session
from tierzero.engine.runner import StepFailed
from tierzero.sandbox import oci

pytestmark = pytest.mark.slow


def test_an_always_free_only_tenancy_stops_before_anything_is_uploaded(tmp_path: Path) -> None:
    """The spec claims an upgraded account, the tenancy is not: the Limits API says custom-image-count is 0."""
    spec_path = write_project(tmp_path, "oci-talos")
    session = Session(spec_path, "sandbox", sandbox_options={"oci_account": "always-free"})
    with session as runner:
        with pytest.raises(StepFailed) as failed:
            asyncio.run(runner.run())
        assert session.sandbox is not None
        standin = session.sandbox.context[oci.SERVER].state.storage
        records = runner.state.records()
    assert failed.value.step_id == "cloud/image/main"
    assert "custom-image-count" in failed.value.cause and "nothing was uploaded" in failed.value.cause
    assert "Pay As You Go" in (failed.value.hint or "") and "image_ocid" in (failed.value.hint or "")
    assert not standin.objects and not standin.buckets and standin.part_puts == 0 and not standin.images
    assert "cloud/oci" not in records or records["cloud/oci"].status != "done"


def test_the_image_is_imported_once_talos_boots_from_user_data_and_the_tenancy_outlives_the_process(tmp_path: Path) -> None:
    """One deploy imports the image with the capabilities Talos v1.13 documents and launches both instances,
    which boot Talos from their user_data. The OCI stand-in keeps buckets, objects and images in the sandbox
    world: a later deploy that forgets its image step looks the image up by name and reuses it, uploading nothing."""
    spec_path = write_project(tmp_path, "oci-talos")
    session = Session(spec_path, "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        records = runner.state.records()
        assert session.sandbox is not None
        standin = session.sandbox.context[oci.SERVER].state.storage
    assert {r.status for r in records.values()} == {"done"}
    first = records["cloud/image/main"].outputs
    assert first["imported"] is True and first["image_id"].startswith("ocid1.image.")
    assert "QCOW2 with UEFI_64 firmware" in first["recipe"]  # Talos v1.13's documented import
    (stored,) = standin.images.values()
    assert stored["lifecycleState"] == "AVAILABLE" and stored["launchOptions"]["firmware"] == "UEFI_64"
    assert standin.shapes[stored["id"]] == ["VM.Standard.A1.Flex"]
    assert [o for (bucket, o) in standin.objects if bucket == "tierzero-images"] == [first["object"]]
    # the twin launched both instances in OCI; each booted Talos from the machine config in its user_data
    assert sorted(i["displayName"] for i in standin.launched.values()) == ["talos-cp-1", "talos-w-1"]
    assert {i["privateIp"] for i in standin.launched.values()} == {"10.0.1.11", "10.0.1.21"}
    assert records["platform/main/health"].outputs["nodes_ready"] == ["cp-1", "w-1"]
    assert "talos_user_data" not in (tmp_path / ".tierzero" / "cloud" / "tierzero.auto.tfvars.json").read_text()

    session = Session(spec_path, "sandbox")
    with session as runner:
        assert session.sandbox is not None
        standin = session.sandbox.context[oci.SERVER].state.storage
        assert [i["id"] for i in standin.images.values()] == [first["image_id"]]  # restored from the world
        runner.state.forget("cloud/image/main")
        asyncio.run(runner.run())
        again = runner.state.records()["cloud/image/main"].outputs
        assert standin.part_puts == 0 and len(standin.images) == 1
    assert again["image_id"] == first["image_id"] and again["imported"] is False
