"""Secrets bundles: talosctl's formats, key types and validity; oracle bundles round-trip unchanged."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tierzero.errors import InputError
from tierzero.render.talos import pki
from tierzero.render.talos.secrets import bundle_from_dict, generate_bundle, load_bundle

TOKEN = re.compile(r"^[0-9a-z]{6}\.[0-9a-z]{16}$")


@pytest.fixture(scope="module")
def fresh():
    return generate_bundle()


def test_token_and_secret_formats(fresh):
    assert TOKEN.match(fresh.bootstrap_token)
    assert TOKEN.match(fresh.trustd_token)
    assert fresh.bootstrap_token != fresh.trustd_token
    assert len(base64.urlsafe_b64decode(fresh.cluster_id)) == 32
    assert len(base64.b64decode(fresh.cluster_secret, validate=True)) == 32
    assert len(base64.b64decode(fresh.secretbox_secret, validate=True)) == 32
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", fresh.cluster_id)


@pytest.mark.parametrize(
    ("name", "organization", "key_type"),
    [
        ("etcd", "etcd", ec.EllipticCurvePrivateKey),
        ("k8s", "kubernetes", ec.EllipticCurvePrivateKey),
        ("k8saggregator", None, ec.EllipticCurvePrivateKey),
        ("os", "talos", ed25519.Ed25519PrivateKey),
    ],
)
def test_certificate_authorities(fresh, bundle, name, organization, key_type):
    for subject in (fresh, bundle):  # the fresh bundle looks like talosctl's
        pair = subject.certs[name]
        cert = pki.cert_from_pem(pair.crt)
        key = pki.key_from_pem(pair.key)
        assert isinstance(key, key_type)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert key.curve.name == "secp256r1"
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert orgs == ([organization] if organization else [])
        assert cert.subject == cert.issuer
        validity = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert validity == dt.timedelta(hours=87600)
        ext = cert.extensions
        assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is True
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        usage = ext.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.digital_signature
        assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
            cert.public_key()
        )
    assert fresh.certs[name].crt != bundle.certs[name].crt


def test_pem_labels_match_talosctl(fresh):
    assert fresh.os_ca.key.startswith(b"-----BEGIN ED25519 PRIVATE KEY-----\n")
    assert fresh.k8s_ca.key.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert fresh.service_account_key.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")
    assert isinstance(pki.key_from_pem(fresh.service_account_key), ec.EllipticCurvePrivateKey)
    assert fresh.certs["k8sserviceaccount"].crt is None


def test_fresh_ca_is_valid_now(fresh):
    cert = pki.cert_from_pem(fresh.k8s_ca.crt)
    now = dt.datetime.now(dt.timezone.utc)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now > dt.timedelta(days=3649)


def test_oracle_bundle_round_trips_as_data(talos_oracles, bundle):
    original = yaml.safe_load((talos_oracles / "stability" / "secrets.yaml").read_text())
    dumped = bundle.to_yaml()
    assert yaml.safe_load(dumped) == original
    assert list(yaml.safe_load(dumped)) == ["cluster", "secrets", "trustdinfo", "certs"]
    assert bundle_from_dict(yaml.safe_load(dumped)).to_yaml() == dumped


def test_fresh_bundle_round_trips(fresh, tmp_path):
    path = tmp_path / "secrets.yaml"
    path.write_text(fresh.to_yaml())
    assert load_bundle(path) == fresh


def test_unknown_secret_keys_are_kept(talos_oracles):
    data = yaml.safe_load((talos_oracles / "stability" / "secrets.yaml").read_text())
    data["secrets"]["aescbcencryptionsecret"] = "legacy"
    assert bundle_from_dict(data).to_dict()["secrets"]["aescbcencryptionsecret"] == "legacy"


@pytest.mark.parametrize("text", ["cluster: {}\n", "[]\n", "certs: 3\n"])
def test_broken_bundles_are_input_errors(tmp_path, text):
    path = tmp_path / "secrets.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="not a Talos secrets bundle"):
        load_bundle(path)
