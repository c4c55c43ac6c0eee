"""Certificate authorities and leaf certificates shaped like the ones talosctl issues."""

from __future__ import annotations

import base64
import datetime as dt
import secrets as rand

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierzero.render.talos.pem import PemPair

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

CA_VALIDITY = dt.timedelta(hours=87600)  # talosctl: ten years of 365 days
CLIENT_VALIDITY = dt.timedelta(days=365)

_ED25519_PEM_LABEL = b"ED25519 PRIVATE KEY"



def new_ecdsa_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def new_ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def key_to_pem(key: PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return _pem(_ED25519_PEM_LABEL, der)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def key_from_pem(pem: bytes) -> PrivateKey:
    # Talos labels PKCS#8 Ed25519 keys "ED25519 PRIVATE KEY"; cryptography wants "PRIVATE KEY".
    normalised = pem.replace(_ED25519_PEM_LABEL, b"PRIVATE KEY")
    key = serialization.load_pem_private_key(normalised, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def cert_from_pem(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _pem(label: bytes, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN " + label + b"-----\n" + b"\n".join(lines) + b"\n-----END " + label + b"-----\n"


def _serial() -> int:
    return rand.randbits(128) or 1


def _signing_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _name(organization: str | None, common_name: str | None = None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def new_ca(organization: str | None, key: PrivateKey, now: dt.datetime) -> PemPair:
    """A self-signed CA: digitalSignature+certSign, server+client auth, CA:TRUE, ten years."""
    subject = _name(organization)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _signing_hash(key))  # type: ignore[arg-type]  # None for Ed25519 keys, as cryptography documents
    )
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), key_to_pem(key))


def new_client_cert(
    ca: PemPair, key: PrivateKey, *, organization: str, common_name: str | None, now: dt.datetime,
    validity: dt.timedelta = CLIENT_VALIDITY,
) -> PemPair:
    """A client-auth leaf certificate signed by `ca`."""
    if ca.crt is None:
        raise ValueError("the CA has no certificate")
    ca_cert = cert_from_pem(ca.crt)
    ca_key = key_from_pem(ca.key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(organization, common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now)
        .not_valid_after(now + validity)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, _signing_hash(ca_key))  # type: ignore[arg-type]  # None for Ed25519 keys, as cryptography documents
    )
    return PemPair(cert.public_bytes(serialization.Encoding.PEM), key_to_pem(key))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=False, encipher_only=False, decipher_only=False,
    )
