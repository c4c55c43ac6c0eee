"""talosconfig and admin kubeconfig: certificates signed by the right CA with the right roles."""

from __future__ import annotations

import base64

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierzero.render.talos import pki
from tierzero.render.talos.client import admin_kubeconfig, talosconfig


def _cert(b64: str) -> x509.Certificate:
    return pki.cert_from_pem(base64.b64decode(b64))


def test_talosconfig(bundle):
    config = yaml.safe_load(talosconfig(bundle, "base", ["10.0.0.5"], ["10.0.0.11", "10.0.0.12"]))
    assert config["context"] == "base"
    ctx = config["contexts"]["base"]
    assert ctx["endpoints"] == ["10.0.0.5"]
    assert ctx["nodes"] == ["10.0.0.11", "10.0.0.12"]
    assert base64.b64decode(ctx["ca"]) == bundle.os_ca.crt
    cert = _cert(ctx["crt"])
    ca = pki.cert_from_pem(bundle.os_ca.crt)
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["os:admin"]
    assert isinstance(pki.key_from_pem(base64.b64decode(ctx["key"])), ed25519.Ed25519PrivateKey)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_talosconfig_without_nodes_omits_them(bundle):
    assert "nodes" not in yaml.safe_load(talosconfig(bundle, "c", ["a"]))["contexts"]["c"]


def test_admin_kubeconfig(bundle):
    config = yaml.safe_load(admin_kubeconfig(bundle, "base", "https://base:6443"))
    assert config["current-context"] == "admin@base"
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == "https://base:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == bundle.k8s_ca.crt
    (user,) = config["users"]
    cert = _cert(user["user"]["client-certificate-data"])
    cert.verify_directly_issued_by(pki.cert_from_pem(bundle.k8s_ca.crt))
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["admin"]
    key = pki.key_from_pem(base64.b64decode(user["user"]["client-key-data"]))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
