"""What a stand-in Talos node needs beyond gRPC: reading the machine config it is given, and the
TLS certificates and contexts it serves (maintenance self-signed, then issued by the OS CA)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierzero.adapters.talos_proto.tls_relay import load_cert_chain, normalize_key_pem



class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class MachineConfigSummary:
    machine_type: str  # "controlplane", "init" or "worker"
    cluster_name: str
    os_ca_crt: bytes
    os_ca_key: bytes | None  # workers carry the CA certificate only
    hostname: str | None
    raw: bytes
    # machine.certSANs: extra names of the node's apid certificate, beside its addresses and hostname
    # (Talos v1alpha1 config reference, MachineConfig.certSANs; siderolabs/talos
    # internal/app/machined/pkg/controllers/secrets/api_cert_sans.go adds them to the node's own names).
    cert_sans: tuple[str, ...] = ()
    kubelet_image: str | None = None  # machine.kubelet.image (None: Talos' default for its release)
    # Talos API access from Kubernetes: machine.features.kubernetesTalosAPIAccess.enabled up to contract v1.13,
    # a KubeTalosAPIAccessConfig document from v1.14 (the official schemas of each contract)
    talos_api_access: bool = False

    @property
    def control_plane(self) -> bool:
        return self.machine_type in ("controlplane", "init")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: a restart parses every node's config


def parse_machine_config(data: bytes) -> MachineConfigSummary:
    try:
        docs = [d for d in yaml.load_all(data, Loader=_LOADER) if d]  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise ConfigError(f"failed to parse config: {err}") from None
    v1 = next((d for d in docs if isinstance(d, dict) and d.get("version") == "v1alpha1"), None)
    if v1 is None:
        raise ConfigError("failed to parse config: no v1alpha1 document")
    machine, cluster = v1.get("machine") or {}, v1.get("cluster") or {}
    machine_type = str(machine.get("type") or "")
    if machine_type not in ("controlplane", "init", "worker"):
        raise ConfigError(f"unknown machine type {machine_type!r}")
    ca = machine.get("ca") or {}
    try:
        crt = base64.b64decode(ca.get("crt") or "")
        key = base64.b64decode(ca.get("key") or "") or None
    except ValueError as err:
        raise ConfigError(f"machine.ca is not base64: {err}") from None
    if b"BEGIN CERTIFICATE" not in crt:
        raise ConfigError("machine.ca.crt is missing")
    if machine_type != "worker" and not key:
        raise ConfigError("machine.ca.key is required on control plane nodes")
    cluster_name = cluster.get("clusterName")
    hostname = (machine.get("network") or {}).get("hostname")
    for doc in docs:  # newer contracts move these into their own documents
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind == "HostnameConfig" and doc.get("hostname"):
            hostname = doc["hostname"]
        elif kind == "KubeClusterConfig" and doc.get("clusterName"):
            cluster_name = cluster_name or doc["clusterName"]
    if not cluster_name:
        raise ConfigError("cluster name is missing (cluster.clusterName or KubeClusterConfig)")
    sans = machine.get("certSANs") or []
    if not isinstance(sans, list) or not all(isinstance(n, str) for n in sans):
        raise ConfigError("machine.certSANs must be a list of strings")
    kubelet = (machine.get("kubelet") or {}).get("image")
    access = ((machine.get("features") or {}).get("kubernetesTalosAPIAccess") or {}).get("enabled") is True or any(
        isinstance(d, dict) and d.get("kind") == "KubeTalosAPIAccessConfig" for d in docs)
    return MachineConfigSummary(machine_type, str(cluster_name), crt, key, hostname, data, tuple(sans), str(kubelet) if kubelet else None,
                                talos_api_access=access)


# -- certificates --------------------------------------------------------------------------

def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _sign(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
    algorithm = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _sans(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue_server_cert(ca_crt_pem: bytes, ca_key_pem: bytes, names: list[str]) -> tuple[bytes, bytes]:
    """A P-256 server certificate for `names` (IPs or DNS names), signed by the given CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_crt_pem)
    ca_key = serialization.load_pem_private_key(normalize_key_pem(ca_key_pem), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    return _pem(_sign(builder, ca_key)), _key_pem(key)


def maintenance_cert(names: list[str]) -> tuple[bytes, bytes]:
    """A throwaway CA and a server certificate from it, as a node in maintenance mode has."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maintenance-ca")])
    ca = _sign(
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True),
        ca_key,
    )
    return issue_server_cert(_pem(ca), _key_pem(ca_key), names)


def server_context(crt: bytes, key: bytes, client_ca: bytes | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_alpn_protocols(["h2"])
    load_cert_chain(ctx, crt, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    return ctx
