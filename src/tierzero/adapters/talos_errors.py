"""The Talos API client's error kinds, in a module of their own so that the phases can tell them
apart without loading gRPC."""

from __future__ import annotations

from tierzero.errors import OperationError

__all__ = ["TalosNotImplemented", "TalosTLSError", "TalosUnavailable"]


class TalosUnavailable(OperationError):
    """The Talos API is not answering (yet): a rebooting node, a port not open. Retryable."""


class TalosTLSError(TalosUnavailable):
    """The TLS handshake failed. Retryable only while a node may still be switching from
    maintenance to its configured certificates; otherwise a wrong talosconfig."""


class TalosNotImplemented(OperationError):
    """UNIMPLEMENTED: this node does not serve the call now. A node of Talos <= 1.12 in
    maintenance mode answers so to every admin-only call from a caller without a client
    certificate, `Version` included ("API is not implemented in maintenance mode": siderolabs/talos
    v1.12.11 internal/app/maintenance/server.go, assertAdminRole)."""
