"""fakepve, configured to be a fresh Proxmox VE 9.1 install: `StockPve` is fakepve's `FakePve`
with the rules it lacks in front of it (subclass mixins; fakepve itself is not patched):
who may do what (`access`), storage and downloads (`storage`), node facts, the appliance index
and what runs in a VM (`nodes`), SDN zones and vnets (`sdn`). Each rule carries its source in its module's docstring and has a
test in tests/sandbox/test_pve_stock.py."""

from __future__ import annotations

from fakepve import FakePve

from tierzero.sandbox.pve_rules.access import AccessRules, vm_key_privileges
from tierzero.sandbox.pve_rules.nodes import APPLIANCES, GuestHooks, NodeRules, stock_interfaces
from tierzero.sandbox.pve_rules.sdn import SdnRules
from tierzero.sandbox.pve_rules.storage import StorageRules, normalize_filename, stock_storages


class StockPve(AccessRules, StorageRules, NodeRules, SdnRules, FakePve):  # type: ignore[misc]
    """A FakePve that starts as a fresh PVE 9.1 install and refuses what one refuses."""


__all__ = ["APPLIANCES", "GuestHooks", "StockPve", "normalize_filename", "stock_interfaces", "stock_storages", "vm_key_privileges"]
