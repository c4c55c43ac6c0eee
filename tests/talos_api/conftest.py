"""Test PKI and machine configs for the Talos API stand-in, made with `cryptography` directly."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierzero.adapters.connections import Connections
from tierzero.sandbox.talos.server import TalosNodeServer, TalosSandboxRegistry, start_node


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_pem(key: Any) -> bytes:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if isinstance(key, ed25519.Ed25519PrivateKey):  # the label Talos writes for Ed25519 keys
        pem = pem.replace(b"PRIVATE KEY", b"ED25519 PRIVATE KEY")
    return pem


@dataclass(frozen=True)
class ClusterPKI:
    name: str
    ca_crt: bytes
    ca_key: bytes
    admin_crt: bytes
    admin_key: bytes

    def machine_config(self, machine_type: str = "controlplane", hostname: str | None = None) -> bytes:
        ca = {"crt": _b64(self.ca_crt), "key": "" if machine_type == "worker" else _b64(self.ca_key)}
        machine: dict[str, Any] = {"type": machine_type, "token": "abcdef.0123456789abcdef", "ca": ca}
        if hostname:
            machine["network"] = {"hostname": hostname}
        v1 = {
            "version": "v1alpha1",
            "machine": machine,
            "cluster": {"clusterName": self.name, "controlPlane": {"endpoint": "https://10.10.0.10:6443"}},
        }
        extra = {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "stable"}
        return yaml.safe_dump_all([v1, extra]).encode()

    def talosconfig(self, endpoints: list[str], nodes: list[str] | None = None) -> str:
        ctx = {
            "endpoints": endpoints,
            "nodes": nodes or endpoints[:1],
            "ca": _b64(self.ca_crt),
            "crt": _b64(self.admin_crt),
            "key": _b64(self.admin_key),
        }
        return yaml.safe_dump({"context": self.name, "contexts": {self.name: ctx}})


def make_pki(name: str, kind: str = "ed25519") -> ClusterPKI:
    def new_key() -> Any:
        return ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())

    def sign(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
        return builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talos")])
    ca = sign(
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True),
        ca_key,
    )
    admin_key = new_key()
    admin = sign(
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "os:admin")]))
        .issuer_name(ca_name).public_key(admin_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False),
        ca_key,
    )
    pem = serialization.Encoding.PEM
    return ClusterPKI(name, ca.public_bytes(pem), _key_pem(ca_key), admin.public_bytes(pem), _key_pem(admin_key))


@pytest.fixture(name="make_pki", scope="session")
def make_pki_fixture() -> Callable[..., ClusterPKI]:
    return make_pki


@pytest.fixture(scope="session")
def pki() -> ClusterPKI:
    return make_pki("alpha")


@pytest.fixture
def registry() -> TalosSandboxRegistry:
    return TalosSandboxRegistry()


@pytest.fixture
def connections() -> Connections:
    return Connections(target="sandbox")


StartNode = Callable[..., Awaitable[TalosNodeServer]]


@pytest.fixture
async def start(registry: TalosSandboxRegistry, connections: Connections) -> AsyncIterator[StartNode]:
    """Start stand-in nodes, register them as ("talos", address), stop them after the test."""
    started: list[TalosNodeServer] = []

    async def _start(address: str, **kwargs: Any) -> TalosNodeServer:
        kwargs.setdefault("reboot_seconds", 0.15)
        node, _ = await start_node(address, registry=registry, **kwargs)
        connections.add("talos", address, node.endpoint())
        started.append(node)
        return node

    yield _start
    for node in started:
        await node.stop()
