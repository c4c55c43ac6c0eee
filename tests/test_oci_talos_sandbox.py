"""Issue 15 in the sandbox: the oci-talos blueprint's image pipeline and instances, against the OCI stand-in
(Object Storage, image import work requests, Limits API, LaunchInstance booting Talos machines from user_data)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyrage
import pytest
from spec_builder import write_project

from tierzero.cli.session import Session
from tierzero.engine.runner import StepFailed
from tierzero.sandbox import oci
from tierzero.workspace.keys import load_age_identity
from tierzero.workspace.layout import Workspace

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


def _machine_secrets(spec_path: Path) -> tuple[list[str], list[str]]:
    """The cluster's secret values (keys, tokens; not the public certificates) from the workspace's secrets
    bundle, and every node's user_data (its machine config, base64) as the cloud layer is handed it."""
    import base64

    import yaml

    from tierzero.render.talos_spec import machine_config
    from tierzero.spec.loader import load_spec
    from tierzero.workspace.layout import Workspace
    from tierzero.workspace.secrets import WorkspaceSecrets

    store = WorkspaceSecrets(Workspace.beside(spec_path))
    bundle = yaml.safe_load(store.get("talos/main/secrets.yaml") or "")

    def leaves(node: object, key: str = "") -> list[str]:
        if isinstance(node, dict):
            return [v for k, child in node.items() for v in leaves(child, str(k))]
        return [node] if isinstance(node, str) and key not in ("crt", "id") and len(node) >= 16 else []

    spec = load_spec(spec_path).platform
    user_data = [base64.b64encode(machine_config(spec, spec.cluster(c.name), n.name, store).encode()).decode()
                 for c, n, _ in spec.talos_instances()]
    return leaves(bundle), user_data


def _files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    """Files under root (zip archives such as saved plans opened member by member) holding any needle."""
    import zipfile

    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if not path.is_file() or ".plugin-cache" in path.parts:
            continue
        blobs = [path.read_bytes()]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs += [archive.read(m) for m in archive.namelist()]
        hits = [n[:12] + "…" for n in needles if any(n.encode() in blob for blob in blobs)]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def test_no_machine_config_secret_rests_in_plaintext_and_a_rerun_resumes_from_the_sealed_state(tmp_path: Path) -> None:
    """The cloud layer's state holds each Talos node's user_data (as the oracle provider stores it). After a
    deploy no file in the project holds a cluster key, token or user_data in plaintext: not the state, its
    backups, the saved plans, nor the logs. A second deploy that runs the cloud layer again reads the sealed
    state: nothing is launched twice and no secret is made anew."""
    spec_path = write_project(tmp_path, "oci-talos")
    launch = "POST /20160918/instances"
    session = Session(spec_path, "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        assert session.sandbox is not None
        assert session.sandbox.context[oci.SERVER].state.requests.count(launch) == 2
    secret_values, user_data = _machine_secrets(spec_path)
    assert len(secret_values) >= 8 and len(user_data) == 2  # CA keys, tokens, etcd and service-account keys, secretbox
    cloud = tmp_path / ".tierzero" / "cloud"
    assert (cloud / "terraform.tfstate.age").is_file() and not (cloud / "terraform.tfstate").exists()
    assert not list(cloud.glob("*.out")) and not list(cloud.glob("*.backup"))
    assert _files_holding(tmp_path, secret_values + user_data) == {}
    assert _files_holding(tmp_path, [secret_values[0][:40]]) == {}  # not even a piece of the first
    before = (tmp_path / ".tierzero" / "secrets" / "talos" / "main" / "secrets.yaml.sops.yaml").read_bytes()

    session = Session(spec_path, "sandbox")
    with session as runner:
        runner.state.forget("cloud/oci")  # the layer runs again: plan against the sealed state, apply nothing new
        asyncio.run(runner.run())
        assert session.sandbox is not None
        requests = session.sandbox.context[oci.SERVER].state.requests
        outputs = runner.state.records()["cloud/oci"].outputs
    assert launch not in requests and "GET /20160918/instances" in requests  # no LaunchInstance: nothing duplicated
    assert sorted(outputs["instances"]) == ["talos-cp-1", "talos-w-1"]
    assert (tmp_path / ".tierzero" / "secrets" / "talos" / "main" / "secrets.yaml.sops.yaml").read_bytes() == before
    assert _machine_secrets(spec_path) == (secret_values, user_data)
    assert _files_holding(tmp_path, secret_values + user_data) == {}

    # destroy reads the sealed state too; it keeps the image and its object (free) and says how to remove them
    logs: list[dict] = []
    session = Session(spec_path, "sandbox", emit=lambda kind, **fields: logs.append(fields) if kind == "log" else None)
    with session as runner:
        asyncio.run(runner.destroy())
        assert session.sandbox is not None
        storage = session.sandbox.context[oci.SERVER].state.storage
        assert not runner.state.records()
        (image,) = storage.images.values()
        assert [o for (bucket, o) in storage.objects if bucket == "tierzero-images"]  # kept
    (kept,) = [f["message"] for f in logs if f.get("step") == "cloud/image/main"]
    assert f"oci compute image delete --image-id {image['id']} --force" in kept
    assert "oci os object delete --bucket-name tierzero-images --object-name oracle-talos-v1.13.9-arm64-" in kept
    state = json.loads(pyrage.decrypt((cloud / "terraform.tfstate.age").read_bytes(),
                                      [pyrage.x25519.Identity.from_str(load_age_identity(Workspace.beside(spec_path)))]))
    assert state["resources"] == []  # the OpenTofu layer was destroyed from its sealed state
    assert _files_holding(tmp_path, secret_values + user_data) == {}


def test_the_apis_certificates_name_the_network_load_balancer_created_before_the_instances(tmp_path: Path) -> None:
    """The load balancer's address exists only once the cloud layer made it: tierzero creates it first, so the
    machine configs the instances boot with name it (machine.certSANs for the Talos API,
    cluster.apiServer.certSANs for Kubernetes). A talosctl endpoint at that address passes TLS verification
    against the node's certificate with the talosconfig's CA and client certificate; another address does not."""
    import base64
    import socket
    import ssl

    import yaml

    from tierzero.adapters.talos_proto.tls_relay import load_cert_chain
    from tierzero.sandbox import talos as talos_standin

    spec_path = write_project(tmp_path, "oci-talos")
    session = Session(spec_path, "sandbox")
    with session as runner:
        asyncio.run(runner.run())
        nlb = runner.state.records()["cloud/oci"].outputs["network_load_balancers"]["main"]
        assert session.sandbox is not None
        machines = session.sandbox.context[talos_standin.MACHINES]
        configs = {m.hostname: yaml.safe_load_all(m.config.raw) for m in machines.machines.values() if m.config is not None}
        first = next(yaml.safe_load_all(next(m.config.raw for m in machines.machines.values() if m.config and m.config.control_plane)))
        endpoint = session.sandbox.connections.endpoint("talos", "10.0.1.11")
        doc = yaml.safe_load((tmp_path / ".tierzero" / "clusters" / "main" / "talosconfig").read_text())
        creds = doc["contexts"][doc["context"]]

        def handshake(name: str) -> None:
            ctx = ssl.create_default_context(cadata=base64.b64decode(creds["ca"]).decode())
            load_cert_chain(ctx, base64.b64decode(creds["crt"]), base64.b64decode(creds["key"]))
            with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname=name):
                    pass

        handshake(nlb)  # verified: the certificate names the load balancer's address
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            handshake("203.0.113.99")
    assert nlb == "203.0.113.200" and len(configs) == 2
    assert nlb in first["machine"]["certSANs"] and nlb in first["cluster"]["apiServer"]["certSANs"]
