"""The secrets bundle talosctl calls `secrets.yaml`: generate, load and dump it."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets as rand
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tierzero.errors import InputError
from tierzero.render.talos import yamlio
from tierzero.render.talos.pem import PemPair

TOKEN_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
CERT_NAMES = ("etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os")


def _random_chars(count: int) -> str:
    return "".join(rand.choice(TOKEN_ALPHABET) for _ in range(count))


def _token() -> str:
    """A kubeadm-style token: six and sixteen lowercase alphanumerics joined by a dot."""
    return f"{_random_chars(6)}.{_random_chars(16)}"


@dataclass
class SecretsBundle:
    cluster_id: str
    cluster_secret: str
    bootstrap_token: str
    secretbox_secret: str
    trustd_token: str
    certs: dict[str, PemPair]
    # keys a bundle may carry that this code does not interpret (e.g. aescbcencryptionsecret)
    extra_secrets: dict[str, Any] = field(default_factory=dict)

    @property
    def os_ca(self) -> PemPair:
        return self.certs["os"]

    @property
    def k8s_ca(self) -> PemPair:
        return self.certs["k8s"]

    @property
    def etcd_ca(self) -> PemPair:
        return self.certs["etcd"]

    @property
    def aggregator_ca(self) -> PemPair:
        return self.certs["k8saggregator"]

    @property
    def service_account_key(self) -> bytes:
        return self.certs["k8sserviceaccount"].key

    def to_dict(self) -> dict[str, Any]:
        """The bundle in talosctl's key order, PEM material base64-encoded."""
        certs: dict[str, Any] = {}
        for name in CERT_NAMES:
            pair = self.certs[name]
            entry: dict[str, str] = {}
            if pair.crt is not None:
                entry["crt"] = _b64(pair.crt)
            entry["key"] = _b64(pair.key)
            certs[name] = entry
        return {
            "cluster": {"id": self.cluster_id, "secret": self.cluster_secret},
            "secrets": {
                "bootstraptoken": self.bootstrap_token,
                "secretboxencryptionsecret": self.secretbox_secret,
                **self.extra_secrets,
            },
            "trustdinfo": {"token": self.trustd_token},
            "certs": certs,
        }

    def to_yaml(self) -> str:
        return yamlio.dump_document(self.to_dict())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generate_bundle(now: dt.datetime | None = None) -> SecretsBundle:
    """A fresh bundle, equivalent to `talosctl gen secrets`."""
    from tierzero.render.talos import pki

    now = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    return SecretsBundle(
        cluster_id=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        cluster_secret=base64.b64encode(os.urandom(32)).decode(),
        bootstrap_token=_token(),
        secretbox_secret=base64.b64encode(os.urandom(32)).decode(),
        trustd_token=_token(),
        certs={
            "etcd": pki.new_ca("etcd", pki.new_ecdsa_key(), now),
            "k8s": pki.new_ca("kubernetes", pki.new_ecdsa_key(), now),
            "k8saggregator": pki.new_ca(None, pki.new_ecdsa_key(), now),
            "k8sserviceaccount": PemPair(None, pki.key_to_pem(pki.new_ecdsa_key())),
            "os": pki.new_ca("talos", pki.new_ed25519_key(), now),
        },
    )


def bundle_from_dict(data: Any, source: str = "secrets bundle") -> SecretsBundle:
    try:
        certs_raw = data["certs"]
        certs: dict[str, PemPair] = {}
        for name in CERT_NAMES:
            entry = certs_raw[name]
            crt = base64.b64decode(entry["crt"]) if entry.get("crt") else None
            certs[name] = PemPair(crt, base64.b64decode(entry["key"]))
        secrets = dict(data["secrets"])
        bundle = SecretsBundle(
            cluster_id=str(data["cluster"]["id"]),
            cluster_secret=str(data["cluster"]["secret"]),
            bootstrap_token=str(secrets.pop("bootstraptoken")),
            secretbox_secret=str(secrets.pop("secretboxencryptionsecret")),
            trustd_token=str(data["trustdinfo"]["token"]),
            certs=certs,
            extra_secrets=secrets,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{source}: not a Talos secrets bundle (missing or invalid {exc})",
            hint="create one with `tierzero talos gensecret` or `talosctl gen secrets`",
        ) from exc
    return bundle


def load_bundle(path: Path) -> SecretsBundle:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read secrets bundle {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from exc
    return bundle_from_dict(data, str(path))
