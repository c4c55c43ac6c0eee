"""Talos version contracts: which config shape a given Talos minor version expects."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tierzero.errors import InputError

SUPPORTED_CONTRACTS = ("v1.11", "v1.12", "v1.13", "v1.14", "v1.15")
DEFAULT_CONTRACT = "v1.14"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:-[0-9A-Za-z.]+)?$")


@dataclass(frozen=True, order=True)
class Contract:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Contract:
        match = _VERSION.match(text.strip())
        if not match:
            raise InputError(f"invalid Talos version {text!r}", hint="use a version such as v1.14 or 1.14.2")
        contract = cls(int(match.group(1)), int(match.group(2)))
        if str(contract) not in SUPPORTED_CONTRACTS:
            raise InputError(
                f"Talos version contract {contract} is not supported",
                hint=f"supported contracts: {', '.join(SUPPORTED_CONTRACTS)}",
            )
        return contract

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}"

    def at_least(self, minor: int) -> bool:
        return (self.major, self.minor) >= (1, minor)

    # Feature gates, named after what changes in the generated output.
    @property
    def legacy_feature_flags(self) -> bool:
        """machine.features.rbac/stableHostname/apidCheckExtKeyUsage are still written."""
        return not self.at_least(12)

    @property
    def multidoc_network(self) -> bool:
        """HostnameConfig and Registry*Config documents replace v1alpha1 fields."""
        return self.at_least(12)

    @property
    def grub_uki_cmdline(self) -> bool:
        return self.at_least(12)

    @property
    def empty_machine_network(self) -> bool:
        """An empty `machine.network: {}` is still written for older readers."""
        return not self.at_least(13)

    @property
    def multidoc_kubernetes(self) -> bool:
        """Kubernetes, discovery, resolver, install and sysctl settings live in their own documents."""
        return self.at_least(14)
