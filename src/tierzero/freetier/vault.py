"""Vault: the free tier counts HSM-protected key versions; software keys and DEFAULT vaults cost nothing.

Limits and prices come from the dated data (always_free.yaml vault_hsm_key_versions; prices.yaml
vault_hsm_key_version_month and virtual_private_vault_hour, both without a public list price so far).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierzero.freetier.findings import Assessment, Finding

if TYPE_CHECKING:
    from tierzero.freetier.usage import Usage


def assess_vault(usage: "Usage", out: "Assessment") -> None:
    limits, prices, hours = out.limits, out.prices, out.prices.hours_per_month
    allowed = int(limits["vault_hsm_key_versions"])
    extra = usage.hsm_key_versions[allowed:]
    if extra:
        out.over_count(
            "vault_hsm_key_versions", "charge",
            f"Vault HSM-protected key versions: {len(usage.hsm_key_versions)}, over the {allowed} free by {len(extra)}",
            extra, prices["vault_hsm_key_version_month"], "key versions",
            f"use protection_mode = \"SOFTWARE\" keys (free), or keep at most {allowed} HSM key versions")
    for vault in usage.private_vaults:
        price = prices["virtual_private_vault_hour"]
        month = None if price is None else price * hours
        out.charge(vault, month)
        out.findings.append(Finding(
            "virtual_private_vault", "charge", f"{vault}: a VIRTUAL_PRIVATE vault is never Always Free",
            1.0, "vaults", month, 'use vault_type = "DEFAULT" (a virtual vault, no charge)', (vault,)))
