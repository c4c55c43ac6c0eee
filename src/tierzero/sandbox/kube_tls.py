"""The Kubernetes API stand-in's serving certificate, kept across starts."""

from __future__ import annotations

from typing import Any

from tierzero.sandbox.http_server import self_signed


def serving_pair(base: Any, host: str = "127.0.0.1") -> tuple[Any, Any]:
    """(certificate, key) files in `base` for the stand-in's HTTPS: one pair, reused by every
    start while it is valid for another hour (a real API server keeps its serving certificate
    too), replaced when it is not. Pairs of older versions (one per port) are removed."""
    import datetime as dt
    import ipaddress

    from cryptography import x509

    from tierzero.workspace.layout import write_private, write_public

    base.mkdir(parents=True, exist_ok=True)
    for stale in [*base.glob("kube-*.crt"), *base.glob("kube-*.key")]:
        stale.unlink(missing_ok=True)
    cert_file, key_file = base / "kube.crt", base / "kube.key"
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        fresh = cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        if fresh and ipaddress.ip_address(host) in names.get_values_for_type(x509.IPAddress) and key_file.is_file():
            return cert_file, key_file
    except (OSError, ValueError, x509.ExtensionNotFound):
        pass
    cert_pem, key_pem = self_signed(host)
    write_private(key_file, key_pem)
    write_public(cert_file, cert_pem)
    return cert_file, key_file
