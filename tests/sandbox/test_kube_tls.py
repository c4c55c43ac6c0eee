"""The sandbox Kubernetes API keeps one serving certificate across starts (no pair per start)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import requests
from cryptography import x509

from tierzero.sandbox.kubernetes import KubeApiServer, KubeState, serving_pair


def _start(tls: Path) -> KubeApiServer:
    return KubeApiServer(KubeState(), tls_dir=tls).start()


def test_starts_reuse_one_pair_and_clean_the_old_per_port_ones(tmp_path: Path) -> None:
    tls = tmp_path / "kube-tls"
    tls.mkdir()
    (tls / "kube-41234.crt").write_text("old")
    (tls / "kube-41234.key").write_text("old")
    certs = []
    for _ in range(3):
        server = _start(tls)
        try:
            assert requests.get(f"{server.url}/version", verify=server.ca_file, timeout=30).status_code == 200
            certs.append(Path(server.ca_file).read_bytes())
        finally:
            server.stop()
    assert sorted(p.name for p in tls.iterdir()) == ["kube.crt", "kube.key"]
    assert certs[0] == certs[1] == certs[2]
    assert (tls / "kube.key").stat().st_mode & 0o077 == 0


def test_a_pair_about_to_expire_is_replaced(tmp_path: Path) -> None:
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    tls = tmp_path / "kube-tls"
    tls.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expiring")])
    now = dt.datetime.now(dt.timezone.utc)
    expiring = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(minutes=30))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .sign(key, hashes.SHA256()))
    (tls / "kube.crt").write_bytes(expiring.public_bytes(serialization.Encoding.PEM))
    (tls / "kube.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_file, _ = serving_pair(tls)
    renewed = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert renewed.not_valid_after_utc > now + dt.timedelta(hours=1)
    assert serving_pair(tls)[0].read_bytes() == cert_file.read_bytes()  # and kept from then on
