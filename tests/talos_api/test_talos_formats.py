"""talosconfig parsing, kubeconfig extraction and machine config reading, without a network."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from tierzero.adapters.talos import extract_kubeconfig, parse_talosconfig
from tierzero.errors import InputError, OperationError
from tierzero.sandbox.talos.server import ConfigError, parse_machine_config


def test_talosconfig_current_context(pki) -> None:
    creds = parse_talosconfig(pki.talosconfig(["10.0.0.1", "10.0.0.2"], ["10.0.0.3"]))
    assert creds.context == "alpha"
    assert creds.endpoints == ("10.0.0.1", "10.0.0.2") and creds.nodes == ("10.0.0.3",)
    assert creds.ca_pem == pki.ca_crt and creds.crt_pem == pki.admin_crt
    assert b"ED25519 PRIVATE KEY" in creds.key_pem


@pytest.mark.parametrize(
    "text, message",
    [
        ("not: [valid", "not valid YAML"),
        ("context: x\ncontexts: {}\n", "no contexts"),
        ("context: x\ncontexts: {y: {ca: Zm9v}}\n", "no context 'x'"),
        ("contexts: {y: {ca: Zm9v, crt: Zm9v, key: Zm9v}}\n", "does not decode to PEM"),
    ],
)
def test_talosconfig_errors(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_talosconfig(text)


def _tarball(name: str, content: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def test_extract_kubeconfig() -> None:
    assert extract_kubeconfig(_tarball("kubeconfig", b"apiVersion: v1\n")) == b"apiVersion: v1\n"
    assert extract_kubeconfig(b"apiVersion: v1\n") == b"apiVersion: v1\n"
    with pytest.raises(OperationError, match="no `kubeconfig`"):
        extract_kubeconfig(_tarball("other", b"x"))


def test_parse_machine_config(pki) -> None:
    summary = parse_machine_config(pki.machine_config("controlplane", hostname="cp1"))
    assert summary.control_plane and summary.cluster_name == "alpha" and summary.hostname == "cp1"
    assert summary.os_ca_crt == pki.ca_crt and summary.os_ca_key == pki.ca_key
    worker = parse_machine_config(pki.machine_config("worker"))
    assert not worker.control_plane and worker.os_ca_key is None
    with pytest.raises(ConfigError, match="v1alpha1"):
        parse_machine_config(b"apiVersion: v1alpha1\nkind: HostnameConfig\n")


def test_wire_names_and_field_numbers_match_talos() -> None:
    from tierzero.adapters.talos_proto import common_pb2, machine_pb2

    service = machine_pb2.DESCRIPTOR.services_by_name["MachineService"]
    assert service.full_name == "machine.MachineService"
    assert {m.name for m in service.methods} == {
        "ApplyConfiguration", "Bootstrap", "EtcdMemberList", "EtcdRecover", "EtcdSnapshot", "Kubeconfig", "Reboot", "Reset",
        "ServiceList", "Upgrade", "Version",
    }
    assert service.methods_by_name["EtcdSnapshot"].server_streaming and service.methods_by_name["EtcdSnapshot"].output_type.full_name == "common.Data"
    assert service.methods_by_name["EtcdRecover"].client_streaming and service.methods_by_name["EtcdRecover"].input_type.full_name == "common.Data"
    assert service.methods_by_name["Kubeconfig"].output_type.full_name == "common.Data"
    assert service.methods_by_name["Kubeconfig"].server_streaming

    def numbers(message) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(machine_pb2.ApplyConfigurationRequest) == {"data": 1, "mode": 4, "dry_run": 5, "try_mode_timeout": 6}
    assert numbers(machine_pb2.ApplyConfiguration) == {"metadata": 1, "warnings": 2, "mode": 3, "mode_details": 4}
    assert numbers(machine_pb2.BootstrapRequest) == {"recover_etcd": 1, "recover_skip_hash_check": 2}
    assert numbers(machine_pb2.EtcdMember) == {"id": 2, "hostname": 3, "peer_urls": 4, "client_urls": 5, "is_learner": 6}
    assert numbers(machine_pb2.ResetRequest)["mode"] == 5
    # siderolabs/talos v1.12.11 api/machine/machine.proto
    assert numbers(machine_pb2.UpgradeRequest) == {"image": 1, "preserve": 2, "stage": 3, "force": 4, "reboot_mode": 5}
    assert numbers(machine_pb2.Upgrade) == {"metadata": 1, "ack": 2, "actor_id": 3}
    assert numbers(common_pb2.Data) == {"metadata": 1, "bytes": 2}
    assert machine_pb2.ApplyConfigurationRequest.Mode.Value("TRY") == 4
